//! Identity Layer (SPEC III-A, BIND II–III): did:mtp identifiers, Multikey public keys,
//! DID Documents and their resolution and updates, Verifiable Credentials, Authority
//! Delegation Certificates and chains, revocation, selective disclosure and
//! zero-knowledge authority proofs.

pub mod did;
pub mod document;
pub mod multikey;
pub mod resolution;

pub mod authority_proof;
pub mod credential;
pub mod delegation;
pub mod disclosure;
pub mod jsonld;
pub mod status_list;

pub use did::{AnyDid, Did, DidError, DidUrl};
pub use document::{
    AgentDocumentParams, AlgorithmSupport, AsyncEndpoint, DidDocument, Relationship, Service,
    SyncEndpoint, VerificationMethod,
};
pub use multikey::{KeyType, Multikey, MultikeyError};
