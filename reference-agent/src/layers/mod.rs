//! The seven layers of SPEC III as the reference agent runs them. Each module owns its
//! layer's state (`State`, a field of `agent::AgentInner`), its MTPSync handlers (called by
//! `services::agent`), its NATS and notification hooks, and its test-control actions
//! (`control`, called by `services::control`; docs/iut-contract.md).

use std::pin::Pin;

use futures::Stream;
use tonic::Status;

use crate::transport::sync::pb;

pub mod attribution;
pub mod commitment;
pub mod discovery;
pub mod identity;
pub mod negotiation;
pub mod settlement;
pub mod verification;

/// Server-streaming half of the bidirectional `Negotiate` and `Commit` RPCs.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::Frame, Status>> + Send>>;
