//! Attribution Layer (SPEC III-G): exact Shapley values for up to 10 contributors, a bounded-error approximation above, signed Attribution Records.

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}
