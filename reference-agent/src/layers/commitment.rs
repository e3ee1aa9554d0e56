//! Commitment Layer (SPEC III-D): Mandates, multi-party signature collection, conditional Mandates and preconditions, supersession.

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}
