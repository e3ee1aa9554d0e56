//! Error taxonomy (SPEC VI) and the MTP Error Code Registry (BIND XI).
//!
//! Codes are `LSCC` integers (BIND XI): `L` layer, `S` severity, `CC` condition
//! (PROFILE G-15: `CC` is 00–99, codes travel as CBOR unsigned integers, text is
//! always four digits). The 17 published codes are listed first; the *profile codes*
//! (PROFILE G-14) cover conditions the documents require an error for but the
//! published registry does not list. They are taken from ranges the published
//! registry leaves unused and are never presented as registry codes.

use std::fmt;

/// Protocol layer digit `L` of an error code (BIND XI; SPEC III order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Layer {
    CrossLayer = 0,
    Identity = 1,
    Discovery = 2,
    Negotiation = 3,
    Commitment = 4,
    Settlement = 5,
    Verification = 6,
    Attribution = 7,
}

impl Layer {
    pub const ALL: [Layer; 8] = [
        Layer::CrossLayer,
        Layer::Identity,
        Layer::Discovery,
        Layer::Negotiation,
        Layer::Commitment,
        Layer::Settlement,
        Layer::Verification,
        Layer::Attribution,
    ];

    pub fn from_digit(d: u8) -> Option<Layer> {
        Layer::ALL.get(d as usize).copied()
    }

    /// The wire/text name used in error objects and reports.
    pub fn name(self) -> &'static str {
        match self {
            Layer::CrossLayer => "cross_layer",
            Layer::Identity => "identity",
            Layer::Discovery => "discovery",
            Layer::Negotiation => "negotiation",
            Layer::Commitment => "commitment",
            Layer::Settlement => "settlement",
            Layer::Verification => "verification",
            Layer::Attribution => "attribution",
        }
    }
}

/// Severity digit `S` (SPEC VI, BIND XI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Severity {
    /// Terminates the transaction: → Failed, log, notify, reverse settlement (SPEC-VI-01).
    Fatal = 1,
    /// Retry up to [`crate::profile::RETRY_LIMIT`], then escalate to Fatal (SPEC-VI-02).
    Recoverable = 2,
    /// MUST be logged, SHOULD be surfaced (SPEC-VI-04, SPEC-VI-05).
    Warning = 3,
    /// Logging only (SPEC-VI-I05).
    Informational = 4,
}

impl Severity {
    pub fn from_digit(d: u8) -> Option<Severity> {
        match d {
            1 => Some(Severity::Fatal),
            2 => Some(Severity::Recoverable),
            3 => Some(Severity::Warning),
            4 => Some(Severity::Informational),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Recoverable => "recoverable",
            Severity::Warning => "warning",
            Severity::Informational => "informational",
        }
    }
}

macro_rules! registry {
    ($( $(#[$m:meta])* $name:ident = $code:literal, $published:literal, $desc:literal; )*) => {
        /// Every error code this suite knows: the published registry (BIND XI) and the
        /// profile codes (PROFILE G-14).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum ErrorCode {
            $( $(#[$m])* $name = $code, )*
        }

        impl ErrorCode {
            /// All codes, published and profile, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$name, )* ];

            /// Registry description (published text for BIND XI codes).
            pub fn description(self) -> &'static str {
                match self { $( ErrorCode::$name => $desc, )* }
            }

            /// `true` for the 17 codes published in BIND XI; `false` for profile codes.
            pub fn is_published(self) -> bool {
                match self { $( ErrorCode::$name => $published, )* }
            }

            /// Looks a numeric code up in the registry.
            pub fn from_u16(code: u16) -> Option<ErrorCode> {
                match code { $( $code => Some(ErrorCode::$name), )* _ => None }
            }
        }
    };
}

registry! {
    // ---- BIND XI, published ------------------------------------------------------
    /// 0100 Cross-Layer Fatal, MTP-UUID Reuse Detected (SPEC IX).
    UuidReuse = 100, true, "MTP-UUID Reuse Detected";
    /// 0101 Cross-Layer Fatal, Deterministic Serialization Mismatch (BIND IV-A).
    SerializationMismatch = 101, true, "Deterministic Serialization Mismatch";
    /// 1100 Identity Layer Fatal, Signature Verification Failure.
    SignatureVerificationFailure = 1100, true, "Signature Verification Failure";
    /// 1101 Identity Layer Fatal, Authority Attestation Invalid.
    AuthorityAttestationInvalid = 1101, true, "Authority Attestation Invalid";
    /// 1102 Identity Layer Fatal, Credential Revoked.
    CredentialRevoked = 1102, true, "Credential Revoked";
    /// 1200 Identity Layer Recoverable, DID Resolution Timeout.
    DidResolutionTimeout = 1200, true, "DID Resolution Timeout";
    /// 2100 Discovery Layer Fatal, Manifest Signature Invalid.
    ManifestSignatureInvalid = 2100, true, "Manifest Signature Invalid";
    /// 2200 Discovery Layer Recoverable, Index Unavailable.
    IndexUnavailable = 2200, true, "Index Unavailable";
    /// 3100 Negotiation Layer Fatal, Counterparty Rejected.
    CounterpartyRejected = 3100, true, "Counterparty Rejected";
    /// 3200 Negotiation Layer Recoverable, Round Timeout.
    RoundTimeout = 3200, true, "Round Timeout";
    /// 3201 Negotiation Layer Recoverable, Round Limit Exhausted.
    RoundLimitExhausted = 3201, true, "Round Limit Exhausted";
    /// 4100 Commitment Layer Fatal, Mandate Signature Invalid.
    MandateSignatureInvalid = 4100, true, "Mandate Signature Invalid";
    /// 4101 Commitment Layer Fatal, Precondition Expired.
    PreconditionExpired = 4101, true, "Precondition Expired";
    /// 5100 Settlement Layer Fatal, Settlement Reversal Failed.
    SettlementReversalFailed = 5100, true, "Settlement Reversal Failed";
    /// 5200 Settlement Layer Recoverable, Rail Temporarily Unavailable.
    RailTemporarilyUnavailable = 5200, true, "Rail Temporarily Unavailable";
    /// 6100 Verification Layer Fatal, Evidence Tampered.
    EvidenceTampered = 6100, true, "Evidence Tampered";
    /// 7100 Attribution Layer Fatal, Shapley Computation Divergence.
    ShapleyComputationDivergence = 7100, true, "Shapley Computation Divergence";

    // ---- Profile codes (PROFILE G-14) --------------------------------------------
    /// 0102 Malformed MTP-UUID (SPEC-IX-03).
    MalformedUuid = 102, false, "Malformed MTP-UUID";
    /// 0103 Schema Violation: a protocol object does not conform to its schema (BIND-VII-01).
    SchemaViolation = 103, false, "Schema Violation";
    /// 0104 AES-256-GCM IV Reuse (BIND VI-D "IV reuse under the same key is a Fatal error").
    IvReuse = 104, false, "AES-256-GCM IV Reuse";
    /// 0105 Undefined State Transition (SPEC-IV-01).
    UndefinedTransition = 105, false, "Undefined State Transition";
    /// 0106 Algorithm Negotiation Failure, including forbidden algorithms (BIND X).
    AlgorithmNegotiationFailure = 106, false, "Algorithm Negotiation Failure";
    /// 0107 Protocol Version Unsupported (SPEC XII; PROFILE G-49).
    ProtocolVersionUnsupported = 107, false, "Protocol Version Unsupported";
    /// 0108 Message Integrity Failure: per-message SHA-256 does not match (SPEC-VII-A; PROFILE G-41).
    MessageIntegrityFailure = 108, false, "Message Integrity Failure";
    /// 0109 Transport Security Failure: a TLS 1.3 handshake refused under the TLS profile —
    /// version, cipher suite, key-exchange group, missing or unpinned certificate (BIND V-A; PROFILE G-37).
    TransportSecurityFailure = 109, false, "Transport Security Failure";
    /// 0200 Transient Serialization Failure: incomplete or undecodable frame (SPEC VI; PROFILE G-17).
    TransientSerializationFailure = 200, false, "Transient Serialization Failure";
    /// 0400 Duplicate Delivery Ignored: byte-identical redelivery of a known object (PROFILE G-29).
    DuplicateDeliveryIgnored = 400, false, "Duplicate Delivery Ignored";
    /// 1300 Credential Approaching Expiration (SPEC VI Warning).
    CredentialApproachingExpiry = 1300, false, "Credential Approaching Expiration";
    /// 2101 Offer Signature Missing or Invalid at Discovery (SPEC II-A).
    OfferSignatureInvalid = 2101, false, "Offer Signature Missing or Invalid";
    /// 2102 Offer Revoked (SPEC III-B-3).
    OfferRevoked = 2102, false, "Offer Revoked";
    /// 2103 Required Extension Unsupported (SPEC XI).
    RequiredExtensionUnsupported = 2103, false, "Required Extension Unsupported";
    /// 2300 Manifest Approaching Staleness Threshold (SPEC VI Warning).
    ManifestApproachingStaleness = 2300, false, "Manifest Approaching Staleness Threshold";
    /// 3101 Negotiation Terminated by Offer Revocation (SPEC III-B-3).
    NegotiationTerminatedByRevocation = 3101, false, "Negotiation Terminated by Offer Revocation";
    /// 3300 Negotiation Approaching Round Limit (SPEC VI Warning).
    RoundLimitApproaching = 3300, false, "Negotiation Approaching Round Limit";
    /// 4102 Mandate Expired before settlement initiation (SPEC III-D-1, IV-A Void).
    MandateExpired = 4102, false, "Mandate Expired";
    /// 5101 Settlement Failed (other than a reversal failure) (SPEC IV-B Settling→Failed).
    SettlementFailed = 5101, false, "Settlement Failed";
    /// 6200 Verification Evidence Unavailable (Recoverable).
    VerificationEvidenceUnavailable = 6200, false, "Verification Evidence Unavailable";
}

impl ErrorCode {
    /// The numeric `LSCC` value.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// Layer digit `L` (BIND XI).
    pub fn layer(self) -> Layer {
        // Every registry code has a valid layer digit (checked by the registry tests).
        Layer::from_digit((self.as_u16() / 1000) as u8).unwrap_or(Layer::CrossLayer)
    }

    /// Severity digit `S` (BIND XI).
    pub fn severity(self) -> Severity {
        // Every registry code has a valid severity digit (checked by the registry tests).
        Severity::from_digit(((self.as_u16() / 100) % 10) as u8).unwrap_or(Severity::Fatal)
    }

    /// Condition code `CC`.
    pub fn condition(self) -> u8 {
        (self.as_u16() % 100) as u8
    }
}

impl fmt::Display for ErrorCode {
    /// Always four digits (PROFILE G-15): `0100`, `1100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.as_u16())
    }
}

/// Splits any `LSCC` value, known or not, into its digits. `None` when the value is not
/// a well-formed code (> 7499, or a severity digit outside 1–4). PROFILE G-15.
pub fn split_code(code: u16) -> Option<(Layer, Severity, u8)> {
    if code > 7499 {
        return None;
    }
    let layer = Layer::from_digit((code / 1000) as u8)?;
    let severity = Severity::from_digit(((code / 100) % 10) as u8)?;
    Some((layer, severity, (code % 100) as u8))
}

/// Implemented by every typed error of this crate: the registry code it maps to and,
/// where one applies, the requirement id it enforces.
pub trait Coded {
    fn code(&self) -> ErrorCode;
    /// The catalogue id of the requirement the failing input breaks, if any.
    fn requirement(&self) -> Option<&'static str> {
        None
    }
}

/// What to do after a Recoverable error (SPEC-VI-02; PROFILE G-08, G-17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Retry after the given back-off (milliseconds, before jitter).
    Retry { attempt: u32, backoff_ms: u64 },
    /// The retry limit is spent: handle the condition as Fatal. The error object keeps
    /// the Recoverable code and reports severity 1 (PROFILE G-17).
    Escalate,
}

/// Retry-then-escalate rule for Recoverable errors (SPEC-VI-02).
///
/// `failures` is the number of failed attempts so far (≥ 1). With the profile limit of 3
/// retries an operation is tried at most 4 times.
pub fn after_failure(code: ErrorCode, failures: u32) -> RetryDecision {
    if code.severity() != Severity::Recoverable || failures > crate::profile::RETRY_LIMIT {
        return RetryDecision::Escalate;
    }
    let backoff_ms = crate::profile::RETRY_BASE_BACKOFF_MS << (failures.saturating_sub(1)).min(16);
    RetryDecision::Retry {
        attempt: failures + 1,
        backoff_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_registry_is_exactly_bind_xi() {
        let published: Vec<u16> = ErrorCode::ALL
            .iter()
            .filter(|c| c.is_published())
            .map(|c| c.as_u16())
            .collect();
        assert_eq!(
            published,
            [
                100, 101, 1100, 1101, 1102, 1200, 2100, 2200, 3100, 3200, 3201, 4100, 4101, 5100,
                5200, 6100, 7100
            ]
        );
    }

    #[test]
    fn digits_are_consistent() {
        for &c in ErrorCode::ALL {
            let (l, s, cc) = split_code(c.as_u16()).expect("well formed");
            assert_eq!((l, s, cc), (c.layer(), c.severity(), c.condition()));
            assert_eq!(ErrorCode::from_u16(c.as_u16()), Some(c));
            assert_eq!(c.to_string().len(), 4);
        }
        assert_eq!(ErrorCode::UuidReuse.to_string(), "0100");
        assert_eq!(ErrorCode::RoundTimeout.severity(), Severity::Recoverable);
        assert_eq!(ErrorCode::RoundTimeout.layer(), Layer::Negotiation);
        assert!(split_code(7500).is_none());
        assert!(split_code(1500).is_none());
    }

    #[test]
    fn recoverable_retries_then_escalates() {
        let c = ErrorCode::RailTemporarilyUnavailable;
        assert!(matches!(
            after_failure(c, 1),
            RetryDecision::Retry { attempt: 2, .. }
        ));
        assert!(matches!(
            after_failure(c, 3),
            RetryDecision::Retry { attempt: 4, .. }
        ));
        assert_eq!(after_failure(c, 4), RetryDecision::Escalate);
        assert_eq!(
            after_failure(ErrorCode::UuidReuse, 1),
            RetryDecision::Escalate
        );
    }
}
