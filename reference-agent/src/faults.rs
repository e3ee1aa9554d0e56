//! Deliberate defects, switched on only by configuration (`test_faults`), so that the suite can
//! prove each of its checks fails against a broken agent. Never enabled by default; an agent
//! with any fault announces it in `hello` (`test_faults`) and in its log at start.

use serde::{Deserialize, Serialize};

/// One deliberate defect; the doc comment names the requirement it breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestFault {
    /// Accept an Offer whose signature does not verify (breaks SPEC-II-A-06).
    SkipOfferSignatureCheck,
    /// `codec_encode` sorts map keys length-first, RFC 7049 §3.9 style, instead of bytewise
    /// (breaks BIND-IV-A-02, RFC 8949 §4.2.1).
    LengthFirstMapKeys,
}

impl TestFault {
    pub const ALL: [TestFault; 2] = [
        TestFault::SkipOfferSignatureCheck,
        TestFault::LengthFirstMapKeys,
    ];

    /// The configuration spelling (`skip-offer-signature-check`).
    pub fn name(self) -> &'static str {
        match self {
            TestFault::SkipOfferSignatureCheck => "skip-offer-signature-check",
            TestFault::LengthFirstMapKeys => "length-first-map-keys",
        }
    }

    pub fn from_name(s: &str) -> Option<TestFault> {
        TestFault::ALL.into_iter().find(|f| f.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in TestFault::ALL {
            assert_eq!(TestFault::from_name(f.name()), Some(f));
            let yaml = serde_yaml::to_string(&f).unwrap();
            assert_eq!(yaml.trim(), f.name());
        }
    }
}
