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
pub const CORE_FAULTS: &[Fault] = &[
    Fault {
        name: "codec-uuid-lenient",
        breaks: "SPEC-IX-03, BIND-IX-01",
        description: "codec_parse accepts any 32-byte string as an MTP-UUID (version, type and reserved bits unchecked)",
    },
    Fault {
        name: "accept-non-deterministic-cbor",
        breaks: "BIND-IV-A-02",
        description: "an MTPSync frame that is not deterministic CBOR is re-encoded and accepted instead of refused with 0101",
    },
    Fault {
        name: "length-first-map-keys",
        breaks: "BIND-IV-A-02",
        description: "codec_encode sorts map keys length-first (RFC 7049 §3.9) instead of bytewise (RFC 8949 §4.2.1)",
    },
    Fault {
        name: "tls-client-no-certificate",
        breaks: "BIND-V-A-02 BIND-V-A-03 SPEC-VII-A-04",
        description: "the MTPSync client presents no certificate in the TLS handshake",
    },
    Fault {
        name: "tls-client-aes128",
        breaks: "BIND-V-A-06 SPEC-VII-A-02",
        description: "the MTPSync client offers only TLS_AES_128_GCM_SHA256",
    },
    Fault {
        name: "frame-hash-stale",
        breaks: "SPEC-VII-A-07",
        description: "sent MTPSync frames carry the hash of the body before it was signed",
    },
    Fault {
        name: "frame-keys-unsorted",
        breaks: "BIND-IV-A-01",
        description: "sent MTPSync frames have their map keys out of deterministic order",
    },
    Fault {
        name: "error-record-without-layer",
        breaks: "SPEC-VI-06",
        description: "the mtp-error-bin trailer object omits `layer` and `timestamp`",
    },
    Fault {
        name: "strip-unknown-fields",
        breaks: "SPEC-VII-B-03 SPEC-VII-B-04 SPEC-VII-B-05",
        description: "received MTPSync bodies lose their unregistered (`x-`) top-level keys before processing",
    },
    Fault {
        name: "nats-discovery-ignored",
        breaks: "SPEC-VII-A-01 BIND-V-B-I01",
        description: "opened MTPAsync discovery messages are acknowledged but never processed",
    },
    Fault {
        name: "error-id-offer-nibble",
        breaks: "SPEC-IX-01",
        description: "the error_id of sent error objects gets the Offer type nibble (0x1) instead of 0x9",
    },
    Fault {
        name: "skip-uuid-reservation",
        breaks: "SPEC-IX-04 SPEC-IX-05 SPEC-II-A-11 SPEC-II-A-12",
        description: "MTP-UUIDs are not bound to their object: a reused identifier is accepted",
    },
    Fault {
        name: "errors-not-audited",
        breaks: "SPEC-X-C-02 SPEC-VI-01",
        description: "raised errors are answered on the wire but not written to the audit trail",
    },
    Fault {
        name: "warnings-not-audited",
        breaks: "SPEC-VI-04 SPEC-VI-I04",
        description: "Warnings are surfaced as events but not written to the audit trail",
    },
    Fault {
        name: "messages-not-audited",
        breaks: "SPEC-X-C-02",
        description: "messages sent and received are not written to the audit trail",
    },
];

/// Defects of algorithm negotiation, protocol versioning and JSON conversion (BIND X, IV-C;
/// SPEC VIII-B, XII).
pub const AGILITY_FAULTS: &[Fault] = &[];

/// Every defect of the agent.
pub fn all() -> impl Iterator<Item = &'static Fault> {
    [
        CORE_FAULTS,
        AGILITY_FAULTS,
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
