//! Deliberate defects, switched on only by configuration (`test_faults`), so that the suite can
//! prove each of its checks fails against a broken agent (`mtp-cert mutants`). Never enabled by
//! default; an agent with any defect announces it in `hello` (`test_faults`) and in its log.
//!
//! Each layer lists its own defects in a `FAULTS` table next to the code they break; this
//! module gathers them. A call site asks `agent.fault("name")`.

use crate::layers;

/// One deliberate defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The configuration spelling (`skip-offer-signature-check`): lower-case, dash-separated.
    pub name: &'static str,
    /// The requirement id(s) the defect breaks.
    pub breaks: &'static str,
    /// What the agent does wrong.
    pub description: &'static str,
}

/// Defects outside the layers (codec, transport, control).
pub const CORE_FAULTS: &[Fault] = &[Fault {
    name: "length-first-map-keys",
    breaks: "BIND-IV-A-02",
    description: "codec_encode sorts map keys length-first (RFC 7049 §3.9) instead of bytewise (RFC 8949 §4.2.1)",
}];

/// Every defect of the agent.
pub fn all() -> impl Iterator<Item = &'static Fault> {
    [
        CORE_FAULTS,
        layers::identity::FAULTS,
        layers::discovery::FAULTS,
        layers::negotiation::FAULTS,
        layers::commitment::FAULTS,
        layers::settlement::FAULTS,
        layers::verification::FAULTS,
        layers::attribution::FAULTS,
    ]
    .into_iter()
    .flatten()
}

/// The defect called `name`.
pub fn find(name: &str) -> Option<&'static Fault> {
    all().find(|f| f.name == name)
}

pub fn names() -> Vec<&'static str> {
    all().map(|f| f.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for f in all() {
            assert!(seen.insert(f.name), "duplicate fault {}", f.name);
            assert!(
                !f.name.is_empty()
                    && f.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                f.name
            );
            assert!(!f.breaks.is_empty() && !f.description.is_empty());
        }
        assert!(find("skip-offer-signature-check").is_some());
    }
}
