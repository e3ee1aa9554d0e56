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
        name: "tls-server-no-client-auth",
        breaks: "BIND-V-A-02 BIND-V-A-04 SPEC-VII-A-05",
        description: "the MTPSync server accepts clients that present no certificate",
    },
    Fault {
        name: "tls-server-unpinned",
        breaks: "BIND-V-A-04 BIND-V-A-05 SPEC-VII-A-05",
        description: "the MTPSync server accepts any self-signed client certificate (no DID Document fingerprint check)",
    },
    Fault {
        name: "tls-client-unpinned",
        breaks: "BIND-V-A-04 BIND-V-A-05 SPEC-VII-A-05",
        description: "the MTPSync client accepts any self-signed server certificate (no DID Document fingerprint check)",
    },
    Fault {
        name: "tls-server-any-cipher",
        breaks: "SPEC-VIII-A-09 SPEC-VII-A-03 BIND-V-A-06",
        description: "the MTPSync server also accepts TLS_AES_128_GCM_SHA256 and TLS_CHACHA20_POLY1305_SHA256",
    },
    Fault {
        name: "tls-server-ecdh-groups",
        breaks: "SPEC-VIII-A-04 SPEC-VIII-A-05 BIND-X-I01",
        description: "the MTPSync server also accepts the X25519MLKEM768, X25519 and secp256r1 key exchange groups",
    },
    Fault {
        name: "frame-hash-unchecked",
        breaks: "SPEC-VII-A-07 SPEC-VII-A-08",
        description: "received MTPSync frames are accepted whatever their `hash` (no SHA-256 check)",
    },
    Fault {
        name: "sync-accept-plaintext",
        breaks: "SPEC-VII-A-03",
        description: "the MTPSync server also serves HTTP/2 without TLS on its port",
    },
    Fault {
        name: "nats-iv-constant",
        breaks: "BIND-VI-D-02",
        description: "sent MTPAsync envelopes all use the same payload and key-wrap IVs",
    },
    Fault {
        name: "nats-iv-reuse-accepted",
        breaks: "BIND-VI-D-03 BIND-VI-D-I01",
        description: "received MTPAsync envelopes are opened without tracking (content key, IV) pairs",
    },
    Fault {
        name: "malformed-uuid-as-schema",
        breaks: "SPEC-IX-03",
        description: "a malformed MTP-UUID in a received frame is reported as 0103 (schema) instead of 0102",
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
pub const AGILITY_FAULTS: &[Fault] = &[
    Fault {
        name: "ignore-alg-profile",
        breaks: "BIND-X-I06 BIND-X-I04",
        description: "a peer's mtp-alg-profile-bin is not checked: a profile without the baseline or with no algorithm in common is accepted instead of refused with 0106",
    },
    Fault {
        name: "alg-profile-strict",
        breaks: "SPEC-VIII-B-01 BIND-X-I05",
        description: "a peer profile listing an algorithm beyond this agent's own (ML-DSA-87, a future label) is refused with 0106 instead of negotiated down to the common one",
    },
    Fault {
        name: "accept-any-major",
        breaks: "SPEC-XII-03",
        description: "mtp-version is checked for form only: a call announcing another Major (2.0.0, 0.9.0) is accepted instead of refused with 0107",
    },
    Fault {
        name: "exact-version-only",
        breaks: "SPEC-XII-03",
        description: "only mtp-version 1.0.0 itself is accepted: a peer on another Minor or Patch of Major 1 (1.3.7) is refused with 0107",
    },
    Fault {
        name: "first-version-only",
        breaks: "SPEC-XII-03",
        description: "only the first version a peer lists is considered: a peer in a migration window announcing \"2.0.0, 1.0.0\" is refused with 0107",
    },
    Fault {
        name: "sign-non-ml-dsa",
        breaks: "SPEC-VIII-A-01",
        description: "signed MTPSync frames the agent sends announce their top-level signature as SLH-DSA-SHA2-192s",
    },
    Fault {
        name: "json-generic-conversion",
        breaks: "BIND-IV-C-03",
        description: "an object received in JSON form is converted by the generic RFC 8949 §6 rules (byte strings stay text) instead of the schema-directed conversion to deterministic CBOR, so its signature cannot verify",
    },
    Fault {
        name: "json-unverified",
        breaks: "BIND-IV-C-03",
        description: "an object received in JSON form is accepted without verifying its signature over the deterministic CBOR form",
    },
    Fault {
        name: "alg-profile-not-announced",
        breaks: "BIND-X-I01",
        description: "no signed alg_profile is sent on mtp.alg to a new peer: no explicit Algorithm Negotiation exchange over MTPAsync",
    },
    Fault {
        name: "alg-profile-bad-signature",
        breaks: "BIND-X-I01 SPEC-VIII-A-01",
        description: "the alg_profile announced on mtp.alg carries a signature that does not verify",
    },
];

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
