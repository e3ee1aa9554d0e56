//! Settlement Layer (SPEC III-E): the Settlement Interface (initiate, confirm, reverse, query
//! status) with an in-process ledger rail and a configurable failing rail; atomic and
//! proportional partial settlement; retry-then-escalate (SPEC VI).

use crate::config::RailConfig;

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}

impl State {
    pub fn new(rails: &[RailConfig]) -> State {
        let _ = rails;
        State {}
    }
}
