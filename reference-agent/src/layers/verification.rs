//! Verification Layer (SPEC III-F): delivery, the four verification methods, Receipts, disputes and revised Receipts.

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}
