//! Negotiation Layer (SPEC III-C): single-round, multi-round, conditional and multi-party negotiation; strategies; the signed negotiation log in the Terms.

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}
