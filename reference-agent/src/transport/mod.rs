//! Transports at the edge of the sans-IO core (BIND V): MTPSync = gRPC over mutual TLS 1.3
//! (`sync`), MTPAsync = NATS JetStream with application-layer encryption (`nats`).

pub mod nats;
pub mod sync;

use std::sync::OnceLock;

/// Deliberate transport defects of this process (`test_faults`, `crate::faults`): the
/// codecs and TLS configurations below have no `Agent` at hand. Set once, by the agent.
static TEST_FAULTS: OnceLock<Vec<String>> = OnceLock::new();

/// Switches on the transport defects named in `names` (first call wins; empty is a no-op).
pub fn set_test_faults(names: &[String]) {
    if !names.is_empty() {
        let _ = TEST_FAULTS.set(names.to_vec());
    }
}

/// Whether the transport defect `name` is switched on.
pub(crate) fn test_fault(name: &str) -> bool {
    debug_assert!(crate::faults::find(name).is_some(), "unknown fault {name}");
    TEST_FAULTS
        .get()
        .is_some_and(|f| f.iter().any(|n| n == name))
}
