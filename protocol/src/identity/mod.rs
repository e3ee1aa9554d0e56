//! Identity Layer (SPEC III-A, BIND II): did:mtp identifiers, Multikey public keys and
//! DID Documents.

pub mod did;
pub mod document;
pub mod multikey;

pub use did::{AnyDid, Did, DidError, DidUrl};
pub use document::{
    AgentDocumentParams, AlgorithmSupport, AsyncEndpoint, DidDocument, Relationship, Service,
    SyncEndpoint, VerificationMethod,
};
pub use multikey::{KeyType, Multikey, MultikeyError};
