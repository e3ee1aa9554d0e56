//! The seven layers of SPEC III as the reference agent runs them. Each module owns its
//! layer's state (`State`, a field of `agent::AgentInner`) and its handlers.

pub mod identity;
pub mod discovery;
pub mod negotiation;
pub mod commitment;
pub mod settlement;
pub mod verification;
pub mod attribution;
