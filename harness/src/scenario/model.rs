//! The scenario model: what `docs/scenarios.md` describes, as types. Built by
//! [`super::loader`]; every value here has been validated.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mtp_reports::model::{Ics, Layer, Level};

use super::template::{Template, TextTemplate, ValuePath};
use super::yaml::format_duration;

/// One certification scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// `AREA-TOPIC-NNN`, e.g. `DISC-OFFER-SIG-001`; unique across the suite.
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    /// Ids of `docs/requirements.yaml`.
    pub requirements: Vec<String>,
    pub layer: Layer,
    pub level: Level,
    pub tags: Vec<String>,
    /// All must hold for the scenario to apply to an IUT.
    pub ics: Vec<IcsCondition>,
    /// Whole-scenario budget; the IUT description's default when absent.
    pub timeout: Option<Duration>,
    /// Steps that bring the IUT to the state under test; any of them not passing makes the
    /// scenario inconclusive.
    pub setup: Vec<Step>,
    pub steps: Vec<Step>,
    /// Deliberate defects of the reference agent (`mtp_reference_agent::faults`) that must
    /// make this scenario fail: the proof that it can fail (`mtp-cert mutants`).
    pub killed_by: Vec<String>,
    /// Per-persona deviations of the harness's own Agent servers (`personas:`).
    pub personas: Vec<PersonaSpec>,
    /// Where the scenario was read from.
    pub file: PathBuf,
    pub line: usize,
}

impl Scenario {
    /// Setup steps, then the main steps.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.setup.iter().chain(&self.steps)
    }
}

/// `personas: {<name>: {tls: <variant>}}`: how a persona's Agent server deviates from the
/// TLS profile (PROFILE G-37). Only `unbound_certificate` is possible for a server: it
/// presents a valid self-signed ML-DSA-65 certificate that its DID Document does not name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonaSpec {
    pub name: String,
    pub tls: Option<TlsVariant>,
    pub line: usize,
}

/// Which ICS list a condition looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcsField {
    Roles,
    Algorithms,
    PriceUnits,
    VerificationMethods,
    Extensions,
    SettlementRails,
}

impl IcsField {
    pub const ALL: [IcsField; 6] = [
        IcsField::Roles,
        IcsField::Algorithms,
        IcsField::PriceUnits,
        IcsField::VerificationMethods,
        IcsField::Extensions,
        IcsField::SettlementRails,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IcsField::Roles => "roles",
            IcsField::Algorithms => "algorithms",
            IcsField::PriceUnits => "price_units",
            IcsField::VerificationMethods => "verification_methods",
            IcsField::Extensions => "extensions",
            IcsField::SettlementRails => "settlement_rails",
        }
    }

    pub fn from_name(s: &str) -> Option<IcsField> {
        IcsField::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The claimed values of this field.
    pub fn claimed(self, ics: &Ics) -> Vec<String> {
        match self {
            IcsField::Roles => ics.roles.iter().map(|r| r.name().to_owned()).collect(),
            IcsField::Algorithms => ics.algorithms.iter().map(|a| a.name().to_owned()).collect(),
            IcsField::PriceUnits => ics.price_units.clone(),
            IcsField::VerificationMethods => ics.verification_methods.clone(),
            IcsField::Extensions => ics.extensions.clone(),
            IcsField::SettlementRails => ics.settlement_rails.clone(),
        }
    }
}

/// `all` (the default for a plain list), `any` or `none` of the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcsOp {
    All,
    Any,
    None,
}

/// An ICS precondition: `roles: [provider]`, `algorithms: {any: [ML-DSA-87]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcsCondition {
    pub field: IcsField,
    pub op: IcsOp,
    pub values: Vec<String>,
    pub line: usize,
}

impl IcsCondition {
    /// `Err(reason)` when the ICS does not meet the condition.
    pub fn evaluate(&self, ics: &Ics) -> Result<(), String> {
        let claimed = self.field.claimed(ics);
        let has = |v: &String| claimed.iter().any(|c| c == v);
        let field = self.field.name();
        match self.op {
            IcsOp::All => match self.values.iter().find(|v| !has(v)) {
                None => Ok(()),
                Some(v) => Err(format!("the ICS does not claim `{v}` in {field}")),
            },
            IcsOp::Any => {
                if self.values.iter().any(has) {
                    Ok(())
                } else {
                    Err(format!(
                        "the ICS claims none of {field} {}",
                        self.values.join(", ")
                    ))
                }
            }
            IcsOp::None => match self.values.iter().find(|v| has(v)) {
                None => Ok(()),
                Some(v) => Err(format!("the ICS claims `{v}` in {field}")),
            },
        }
    }
}

/// One step: common fields and its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub line: usize,
    pub description: Option<String>,
    /// Hard budget for the step; default: `within` + 1 s for expectations, else the IUT
    /// description's `timeouts.step`.
    pub timeout: Option<Duration>,
    pub kind: StepKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    Control(ControlStep),
    Send(SendStep),
    Expect(ExpectStep),
    ExpectState(ExpectStateStep),
    ExpectAudit(ExpectAuditStep),
    Capture(CaptureStep),
    CheckVectors(CheckVectorsStep),
    Sleep(Duration),
}

impl StepKind {
    pub const NAMES: [&'static str; 8] = [
        "control",
        "send",
        "expect",
        "expect_state",
        "expect_audit",
        "capture",
        "check_vectors",
        "sleep",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Control(_) => "control",
            StepKind::Send(_) => "send",
            StepKind::Expect(_) => "expect",
            StepKind::ExpectState(_) => "expect_state",
            StepKind::ExpectAudit(_) => "expect_audit",
            StepKind::Capture(_) => "capture",
            StepKind::CheckVectors(_) => "check_vectors",
            StepKind::Sleep(_) => "sleep",
        }
    }
}

impl Step {
    /// The step's description, or one generated from its fields.
    pub fn summary(&self) -> String {
        if let Some(d) = &self.description {
            return d.clone();
        }
        match &self.kind {
            StepKind::Control(c) => format!("control {}", c.action),
            StepKind::Send(s) => {
                let mut out = format!("send {} on {}", s.frame, s.channel);
                if !s.faults.is_empty() {
                    let names: Vec<String> = s.faults.iter().map(|f| f.to_string()).collect();
                    out.push_str(&format!(" with {}", names.join(", ")));
                }
                out
            }
            StepKind::Expect(e) => match &e.what {
                Expectation::Message { frame, .. } => format!("expect message {frame}"),
                Expectation::Response { frame, .. } => format!("expect response {frame}"),
                Expectation::Error { codes, .. } => {
                    let codes: Vec<String> = codes.iter().map(|c| format!("{c:04}")).collect();
                    if codes.is_empty() {
                        "expect an error".to_owned()
                    } else {
                        format!("expect error {}", codes.join(" | "))
                    }
                }
                Expectation::Silence => "expect silence".to_owned(),
            },
            StepKind::ExpectState(s) => format!("expect state {}", s.state),
            StepKind::ExpectAudit(_) => "expect audit trail".to_owned(),
            StepKind::Capture(c) => {
                let names: Vec<&str> = c.values.iter().map(|(_, v)| v.name.as_str()).collect();
                format!("capture {}", names.join(", "))
            }
            StepKind::CheckVectors(v) => format!("check vectors {}", v.family),
            StepKind::Sleep(d) => format!("sleep {}", format_duration(*d)),
        }
    }
}

/// `name ← path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSpec {
    pub name: String,
    pub path: ValuePath,
}

/// Make the IUT act through the test-control interface.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlStep {
    /// An action of `protocol/wire/control.cddl`.
    pub action: String,
    /// A CBOR map.
    pub args: Template,
    /// Values taken from the action's result map.
    pub capture: Vec<CaptureSpec>,
    /// The action must fail with `kind = "mtp_error"` and one of these codes (empty: any).
    pub expect_error: Option<Vec<u16>>,
    /// Sent without waiting for its result: the step passes once the request is on its way
    /// and later steps observe the effects (an action that blocks until a protocol exchange
    /// with the harness ends, e.g. `supersede`). No `capture`, no `expect_error`.
    pub background: bool,
}

/// gRPC services of the wire profile (`protocol/wire/mtp/v1/*.proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcService {
    Agent,
    Index,
}

pub const AGENT_METHODS: [&str; 7] = [
    "ResolveDid",
    "Negotiate",
    "Commit",
    "Settle",
    "Deliver",
    "Verify",
    "Notify",
];
pub const INDEX_METHODS: [&str; 3] = ["Query", "Publish", "Revoke"];

/// Where a message travels.
#[derive(Clone, Debug, PartialEq)]
pub enum Channel {
    /// `grpc:Agent/Negotiate`
    Grpc {
        service: GrpcService,
        method: String,
    },
    /// `nats:<subject>`; the subject may use variables (`${subject_prefix}`).
    Nats { subject: TextTemplate },
}

impl Channel {
    /// Streaming RPCs carry several frames per call.
    pub fn is_stream(&self) -> bool {
        matches!(self, Channel::Grpc { method, .. } if method == "Negotiate" || method == "Commit")
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Grpc { service, method } => {
                let s = match service {
                    GrpcService::Agent => "Agent",
                    GrpcService::Index => "Index",
                };
                write!(f, "grpc:{s}/{method}")
            }
            Channel::Nats { subject } => write!(f, "nats:{subject}"),
        }
    }
}

/// What the harness does wrong on purpose when it sends a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    MissingSignature,
    BadSignature,
    WrongAlgorithm,
    /// Change this field after the signature was computed.
    TamperAfterSigning {
        field: ValuePath,
    },
    ReorderKeys,
    NonShortestInt,
    NonShortestFloat,
    IndefiniteLength,
    DuplicateKey,
    /// Add an unknown top-level field (default name `x-unknown`).
    UnknownField {
        name: String,
    },
    /// Give this field (default: the object's id) a malformed MTP-UUID.
    MalformedUuid {
        field: Option<ValuePath>,
    },
    /// Reuse an MTP-UUID already used (the captured variable, or the last one the harness sent).
    ReusedUuid {
        from: Option<String>,
    },
    /// Validity window in the past.
    Expired,
    /// Authority attestation that does not cover the action.
    AuthorityOutOfScope,
    /// Signed under a revoked credential.
    RevokedCredential,
    /// Resend the previous message byte for byte.
    Replay,
    /// Send although the message is wrong for the transaction's current state.
    WrongState,
    /// Wait this long before sending (or before replying).
    DelayMs(u64),
    /// Do not answer the IUT's next message.
    DropReply,
    /// Send over a fresh MTPSync connection with this deviant TLS profile (PROFILE G-37);
    /// the IUT must refuse the connection (observed as a refusal with code 0109).
    Tls(TlsVariant),
    /// NATS only: seal with the same content key and IVs as the persona's previous envelope
    /// (BIND VI-D; PROFILE G-40: the IUT refuses the repeated (key, IV) with 0104).
    ReusedIv,
    /// gRPC only: the frame `hash` is computed with this algorithm instead of SHA-256
    /// (SPEC VII-A, VIII; PROFILE G-09, G-41: refused with 0108).
    FrameHash(FrameHashAlg),
    /// gRPC `mtp-version` metadata of this call instead of `1.0.0` (PROFILE G-49); empty:
    /// no `mtp-version` at all.
    ProtocolVersion(String),
    /// gRPC `mtp-alg-profile-bin` metadata of this call: the persona's Algorithm Support
    /// Profile (PROFILE G-38), `(function, labels)`; functions not given list the baseline.
    AlgProfile(Vec<(String, Vec<String>)>),
    /// Sign with a persona key of this algorithm (`SLH-DSA-SHA2-192s`, `ML-DSA-87`, ...)
    /// that the persona's DID Document does not hold.
    SignWith(String),
}

/// The deviant TLS profiles of the `tls` send fault (PROFILE G-37).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVariant {
    /// No client certificate (BIND-V-A-02, BIND-V-A-04).
    NoClientCertificate,
    /// A valid self-signed ML-DSA-65 certificate that the persona's DID Document does not
    /// name (BIND-V-A-05).
    UnboundCertificate,
    /// TLS 1.2 only (BIND-V-A-01).
    Tls12Only,
    /// `TLS_AES_128_GCM_SHA256` only (SPEC-VIII-A-09).
    Aes128Only,
    /// `TLS_CHACHA20_POLY1305_SHA256` only (SPEC-VIII-A-09).
    Chacha20Only,
    /// Key exchange X25519 only (pre-quantum ECDH, SPEC-VIII-A-05).
    X25519Only,
    /// Key exchange X25519MLKEM768 only (hybrid with ECDH, refused by PROFILE G-37).
    HybridOnly,
    /// HTTP/2 without TLS (SPEC-VII-A-03).
    Plaintext,
}

impl TlsVariant {
    pub const ALL: [TlsVariant; 8] = [
        TlsVariant::NoClientCertificate,
        TlsVariant::UnboundCertificate,
        TlsVariant::Tls12Only,
        TlsVariant::Aes128Only,
        TlsVariant::Chacha20Only,
        TlsVariant::X25519Only,
        TlsVariant::HybridOnly,
        TlsVariant::Plaintext,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TlsVariant::NoClientCertificate => "no_client_certificate",
            TlsVariant::UnboundCertificate => "unbound_certificate",
            TlsVariant::Tls12Only => "tls12_only",
            TlsVariant::Aes128Only => "aes128_only",
            TlsVariant::Chacha20Only => "chacha20_only",
            TlsVariant::X25519Only => "x25519_only",
            TlsVariant::HybridOnly => "hybrid_only",
            TlsVariant::Plaintext => "plaintext",
        }
    }

    pub fn from_name(s: &str) -> Option<TlsVariant> {
        TlsVariant::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// Hash algorithms of the `frame_hash` send fault (not SHA-256, PROFILE G-09).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameHashAlg {
    Sha3_256,
    Sha512_256,
}

impl FrameHashAlg {
    pub const ALL: [FrameHashAlg; 2] = [FrameHashAlg::Sha3_256, FrameHashAlg::Sha512_256];

    pub fn name(self) -> &'static str {
        match self {
            FrameHashAlg::Sha3_256 => "sha3_256",
            FrameHashAlg::Sha512_256 => "sha512_256",
        }
    }

    pub fn from_name(s: &str) -> Option<FrameHashAlg> {
        FrameHashAlg::ALL.into_iter().find(|v| v.name() == s)
    }
}

impl Fault {
    pub const NAMES: [&'static str; 25] = [
        "missing_signature",
        "bad_signature",
        "wrong_algorithm",
        "tamper_after_signing",
        "reorder_keys",
        "non_shortest_int",
        "non_shortest_float",
        "indefinite_length",
        "duplicate_key",
        "unknown_field",
        "malformed_uuid",
        "reused_uuid",
        "expired",
        "authority_out_of_scope",
        "revoked_credential",
        "replay",
        "wrong_state",
        "delay_ms",
        "drop_reply",
        "tls",
        "reused_iv",
        "frame_hash",
        "protocol_version",
        "alg_profile",
        "sign_with",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Fault::MissingSignature => "missing_signature",
            Fault::BadSignature => "bad_signature",
            Fault::WrongAlgorithm => "wrong_algorithm",
            Fault::TamperAfterSigning { .. } => "tamper_after_signing",
            Fault::ReorderKeys => "reorder_keys",
            Fault::NonShortestInt => "non_shortest_int",
            Fault::NonShortestFloat => "non_shortest_float",
            Fault::IndefiniteLength => "indefinite_length",
            Fault::DuplicateKey => "duplicate_key",
            Fault::UnknownField { .. } => "unknown_field",
            Fault::MalformedUuid { .. } => "malformed_uuid",
            Fault::ReusedUuid { .. } => "reused_uuid",
            Fault::Expired => "expired",
            Fault::AuthorityOutOfScope => "authority_out_of_scope",
            Fault::RevokedCredential => "revoked_credential",
            Fault::Replay => "replay",
            Fault::WrongState => "wrong_state",
            Fault::DelayMs(_) => "delay_ms",
            Fault::DropReply => "drop_reply",
            Fault::Tls(_) => "tls",
            Fault::ReusedIv => "reused_iv",
            Fault::FrameHash(_) => "frame_hash",
            Fault::ProtocolVersion(_) => "protocol_version",
            Fault::AlgProfile(_) => "alg_profile",
            Fault::SignWith(_) => "sign_with",
        }
    }

    /// Faults that decide how (or whether) the message is signed; at most one per send.
    pub fn is_signature_fault(&self) -> bool {
        matches!(
            self,
            Fault::MissingSignature
                | Fault::BadSignature
                | Fault::WrongAlgorithm
                | Fault::SignWith(_)
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::TamperAfterSigning { field } => write!(f, "tamper_after_signing({field})"),
            Fault::UnknownField { name } => write!(f, "unknown_field({name})"),
            Fault::MalformedUuid { field: Some(p) } => write!(f, "malformed_uuid({p})"),
            Fault::ReusedUuid { from: Some(v) } => write!(f, "reused_uuid(${{{v}}})"),
            Fault::DelayMs(ms) => write!(f, "delay_ms({ms})"),
            Fault::ProtocolVersion(v) => write!(f, "protocol_version({v:?})"),
            Fault::AlgProfile(p) => {
                let parts: Vec<String> = p
                    .iter()
                    .map(|(k, v)| format!("{k}: [{}]", v.join(", ")))
                    .collect();
                write!(f, "alg_profile({{{}}})", parts.join("; "))
            }
            Fault::SignWith(a) => write!(f, "sign_with({a})"),
            Fault::Tls(v) => write!(f, "tls({})", v.name()),
            Fault::FrameHash(a) => write!(f, "frame_hash({})", a.name()),
            other => f.write_str(other.name()),
        }
    }
}

/// Send a protocol message as the counterparty (or index, registry, Principal).
#[derive(Clone, Debug, PartialEq)]
pub struct SendStep {
    /// Frame `type` (`offer`, `nim`, `proposal`, ...).
    pub frame: String,
    pub channel: Channel,
    /// The message body; the executor completes and signs it unless a fault says otherwise.
    pub template: Template,
    pub faults: Vec<Fault>,
    /// Which harness persona sends (`counterparty` by default).
    pub persona: String,
}

/// gRPC status codes (the names of `google.rpc.Code`).
pub const GRPC_STATUSES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// What an `expect` step waits for.
#[derive(Clone, Debug, PartialEq)]
pub enum Expectation {
    /// A message of this frame type arrives (stream, NATS, or a call into the harness).
    Message {
        frame: String,
        matches: Option<Template>,
    },
    /// The reply to the last message the harness sent has this frame type.
    Response {
        frame: String,
        matches: Option<Template>,
    },
    /// The IUT refuses: an MTP error with one of `codes` (empty: any) and, over gRPC, one of
    /// the `grpc_status` names (empty: any).
    Error {
        codes: Vec<u16>,
        grpc_status: Vec<String>,
    },
    /// Nothing arrives within the deadline.
    Silence,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExpectStep {
    pub what: Expectation,
    /// Where to listen; default: the channel of the last send.
    pub channel: Option<Channel>,
    /// Deadline; default: the IUT description's `timeouts.step`.
    pub within: Option<Duration>,
    /// Values taken from the matched message (`{type, body}`; for an error
    /// `{code, grpc_status, message}`).
    pub capture: Vec<CaptureSpec>,
}

/// The IUT's transaction state (control action `transaction`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectStateStep {
    pub transaction: TextTemplate,
    /// A state name of SPEC IV-A (`committed`).
    pub state: String,
    /// When given: exactly this sequence of states so far.
    pub history: Option<Vec<String>>,
    /// Poll until the state is reached, at most this long.
    pub within: Option<Duration>,
}

/// The IUT's audit trail (control action `audit`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectAuditStep {
    /// The transaction; absent: the agent trail.
    pub transaction: Option<TextTemplate>,
    /// Event names that must be present (PROFILE G-42/G-18 names).
    pub events: Vec<String>,
    /// Error codes that must be present in `error_code`.
    pub codes: Vec<u16>,
    /// The hash chain must verify (default true).
    pub chain_verifies: bool,
    /// Every transition entry has a timestamp, its G-18 triggering event and the Agents'
    /// DIDs, and the transition entries replay the transaction's history (SPEC-IV-B-02;
    /// checked by the live executor, `live::audit_chain::check_transitions`). Default false.
    pub transitions_complete: bool,
    pub within: Option<Duration>,
}

/// Where a `capture` step reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureRoot {
    /// The last message received from the IUT (`{type, body}`; an error: `{code, grpc_status, message}`).
    Received,
    /// The last control result map.
    Control,
    /// The last message the harness sent (`{type, body}`, before faults).
    Sent,
}

impl CaptureRoot {
    pub fn name(self) -> &'static str {
        match self {
            CaptureRoot::Received => "received",
            CaptureRoot::Control => "control",
            CaptureRoot::Sent => "sent",
        }
    }
    pub fn from_name(s: &str) -> Option<CaptureRoot> {
        [
            CaptureRoot::Received,
            CaptureRoot::Control,
            CaptureRoot::Sent,
        ]
        .into_iter()
        .find(|r| r.name() == s)
    }
}

/// `name ← root.path` for each value.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureStep {
    pub values: Vec<(CaptureRoot, CaptureSpec)>,
}

/// Codec operations of the test-control interface used by `check_vectors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorOp {
    Encode,
    Parse,
    Sign,
    Verify,
    /// `codec_verify` of the vector's object given in JSON form (BIND-IV-C-03; PROFILE
    /// G-27); only when listed, not part of [`VectorOp::ALL`].
    Json,
}

impl VectorOp {
    pub const ALL: [VectorOp; 4] = [
        VectorOp::Encode,
        VectorOp::Parse,
        VectorOp::Sign,
        VectorOp::Verify,
    ];
    pub fn name(self) -> &'static str {
        match self {
            VectorOp::Encode => "encode",
            VectorOp::Parse => "parse",
            VectorOp::Sign => "sign",
            VectorOp::Verify => "verify",
            VectorOp::Json => "json",
        }
    }
    pub fn from_name(s: &str) -> Option<VectorOp> {
        VectorOp::ALL
            .into_iter()
            .chain([VectorOp::Json])
            .find(|o| o.name() == s)
    }
}

/// Check the IUT's encodings, signatures and identifiers against `vectors/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckVectorsStep {
    /// A folder of `vectors/` (`credentials`, `cbor`, ...).
    pub family: String,
    /// Vector ids (`family/name`); empty: every vector of the family.
    pub ids: Vec<String>,
    pub operations: Vec<VectorOp>,
}

/// Actions of the test-control contract (`protocol/wire/control.cddl`, `action-name`).
pub const CONTROL_ACTIONS: &[&str] = &[
    "hello",
    "reset",
    "provision",
    "add_peer",
    "resolve_did",
    "publish_manifest",
    "publish_offer",
    "revoke_offer",
    "modify_offer",
    "create_request",
    "query_index",
    "set_policy",
    "negotiate",
    "commit",
    "supersede",
    "configure_rail",
    "settle",
    "deliver",
    "verify",
    "dispute",
    "resolve_dispute",
    "attribute",
    "revoke_credential",
    "delegate",
    "update_did",
    "transaction",
    "audit",
    "codec_encode",
    "codec_parse",
    "codec_sign",
    "codec_verify",
];

/// Variables every scenario may use without capturing them: `scenario_id` and `seed` from
/// the runner, the rest from the executor (the IUT's DID, the harness's DID and DID
/// Document (JSON-LD text), the NATS subject prefix of the IUT description).
pub const PREDEFINED_VARIABLES: [&str; 6] = [
    "scenario_id",
    "seed",
    "iut_did",
    "harness_did",
    "harness_did_document",
    "subject_prefix",
];
