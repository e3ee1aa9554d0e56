//! Identity Layer (SPEC III-A): counterparty identity, delegation chain and revocation checks; credentials this agent holds.

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}
