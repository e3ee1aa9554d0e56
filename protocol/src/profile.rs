//! Numeric parameters the documents defer to the Technical Binding but never give
//! (PROFILE G-08, G-49). One place, so the reference agent and the harness agree.

/// Recoverable errors are retried this many times (4 attempts in all) before they are
/// escalated to Fatal (SPEC-VI-02).
pub const RETRY_LIMIT: u32 = 3;
/// Back-off before the first retry; doubles per retry (±20 % jitter is the caller's).
pub const RETRY_BASE_BACKOFF_MS: u64 = 500;

/// Credential revocation takes effect at most this long after status-list publication
/// (SPEC-III-A-3-01).
pub const CREDENTIAL_REVOCATION_LATENCY_S: u64 = 60;
/// Offer revocation reaches every index within this bound (SPEC-III-B-3-01).
pub const OFFER_REVOCATION_PROPAGATION_S: u64 = 60;
/// "One propagation cycle": an index removes a revoked Offer within this (SPEC-III-B-3-02).
pub const PROPAGATION_CYCLE_S: u64 = 30;

/// Default manifest staleness threshold (configurable, SPEC III-B-1).
pub const MANIFEST_STALENESS_S: u64 = 24 * 3600;
/// Warning 2300 is raised at this fraction of the staleness threshold (per mille).
pub const MANIFEST_STALENESS_WARNING_PERMILLE: u64 = 800;
/// Warning 1300 when a credential expires within min(7 days, 10 % of its validity).
pub const CREDENTIAL_EXPIRY_WARNING_MAX_S: u64 = 7 * 24 * 3600;

/// Accepted `round_timeout_ms` in a Negotiation Initiation Message.
pub const ROUND_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=3_600_000;
/// Accepted `max_rounds` in a Negotiation Initiation Message.
pub const MAX_ROUNDS_RANGE: std::ops::RangeInclusive<u64> = 1..=100;

/// Tolerance for timestamp comparisons (validity windows, expirations), seconds.
pub const CLOCK_SKEW_S: u64 = 30;
/// MTP-UUID timestamps further than this in the future draw a warning, not a rejection.
pub const UUID_FUTURE_WARNING_S: u64 = 300;

/// Human-readable description limit, in Unicode scalar values (BIND-VII-A-04; PROFILE G-53).
pub const HUMAN_DESCRIPTION_MAX_CHARS: usize = 4096;

/// Attribution is required from this many contributing Agents on (SPEC III-G).
pub const ATTRIBUTION_MIN_CONTRIBUTORS: usize = 3;
/// Exact Shapley computation is mandatory up to this many contributors (SPEC III-G-1).
pub const SHAPLEY_EXACT_MAX_CONTRIBUTORS: usize = 10;
/// Tolerance for "shares sum to 1" and for exact-Shapley recomputation (PROFILE G-23).
pub const SHAPLEY_EXACT_TOLERANCE: f64 = 1e-9;

/// The protocol version this profile implements (PROFILE G-49).
pub const PROTOCOL_VERSION: &str = "1.0.0";
/// Version of this wire profile document.
pub const PROFILE_VERSION: &str = "mtp-conformance-profile/1";
