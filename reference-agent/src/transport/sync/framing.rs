//! gRPC framing of MTP messages (BIND V-A "CBOR payloads within the gRPC envelope";
//! PROFILE G-09, G-41, G-49): `mtp.v1.Frame { cbor }` ↔ [`wire::Frame`], the per-RPC frame
//! types, `mtp-version` metadata, the `mtp-error-bin` trailer and `grpc-message`, the
//! MTP-code → gRPC-status mapping and its reverse, and deadlines.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::agility::negotiate_with_peer;
use mtp_protocol::crypto::{AlgorithmSupportProfile, CryptoError, NegotiatedSuite};
use mtp_protocol::error_record::MtpErrorRecord;
use mtp_protocol::errors::{Coded, ErrorCode, Severity, split_code};
use mtp_protocol::primitives::CborObject;
use mtp_protocol::profile::PROTOCOL_VERSION;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::wire::{self, WireError};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};

use super::pb;

/// Request/response header carrying the protocol version (PROFILE G-49).
pub const VERSION_HEADER: &str = "mtp-version";
/// Header with the det-CBOR Algorithm Support Profile, first call of a connection (G-38).
pub const ALG_PROFILE_HEADER: &str = "mtp-alg-profile-bin";
/// Trailer of a failed call: det-CBOR `mtp-error` (PROFILE G-09, G-16).
pub const ERROR_TRAILER: &str = "mtp-error-bin";
/// Protocol Majors this agent speaks (PROFILE G-49).
pub const SUPPORTED_MAJORS: &[u64] = &[1];

/// Codes answered with INVALID_ARGUMENT: the received frame or object is invalid (G-09).
pub const INVALID_ARGUMENT_CODES: &[ErrorCode] = &[
    ErrorCode::SerializationMismatch,
    ErrorCode::MalformedUuid,
    ErrorCode::SchemaViolation,
    ErrorCode::MessageIntegrityFailure,
    ErrorCode::SignatureVerificationFailure,
    ErrorCode::ManifestSignatureInvalid,
    ErrorCode::OfferSignatureInvalid,
    ErrorCode::MandateSignatureInvalid,
    ErrorCode::EvidenceTampered,
    ErrorCode::ShapleyComputationDivergence,
];

/// The MTP RPCs (PROFILE G-09).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rpc {
    ResolveDid,
    Negotiate,
    Commit,
    Settle,
    Deliver,
    Verify,
    Notify,
    IndexQuery,
    IndexPublish,
    IndexRevoke,
}

impl Rpc {
    pub const ALL: [Rpc; 10] = [
        Rpc::ResolveDid,
        Rpc::Negotiate,
        Rpc::Commit,
        Rpc::Settle,
        Rpc::Deliver,
        Rpc::Verify,
        Rpc::Notify,
        Rpc::IndexQuery,
        Rpc::IndexPublish,
        Rpc::IndexRevoke,
    ];

    /// The gRPC path, e.g. `/mtp.v1.Agent/Notify`.
    pub fn path(self) -> &'static str {
        match self {
            Rpc::ResolveDid => "/mtp.v1.Agent/ResolveDid",
            Rpc::Negotiate => "/mtp.v1.Agent/Negotiate",
            Rpc::Commit => "/mtp.v1.Agent/Commit",
            Rpc::Settle => "/mtp.v1.Agent/Settle",
            Rpc::Deliver => "/mtp.v1.Agent/Deliver",
            Rpc::Verify => "/mtp.v1.Agent/Verify",
            Rpc::Notify => "/mtp.v1.Agent/Notify",
            Rpc::IndexQuery => "/mtp.v1.Index/Query",
            Rpc::IndexPublish => "/mtp.v1.Index/Publish",
            Rpc::IndexRevoke => "/mtp.v1.Index/Revoke",
        }
    }

    /// Frame types a client may send on this RPC (PROFILE G-09 table).
    pub fn request_types(self) -> &'static [&'static str] {
        match self {
            Rpc::ResolveDid => &["did_resolution_request"],
            Rpc::Negotiate => &[
                "nim",
                "proposal",
                "counterproposal",
                "acceptance",
                "rejection",
                "termination",
            ],
            Rpc::Commit => &["mandate_draft", "mandate"],
            Rpc::Settle => &["settlement_notice"],
            Rpc::Deliver => &["delivery", "delivery_request"],
            Rpc::Verify => &["receipt", "attribution_record"],
            Rpc::Notify => &["notification", "error"],
            Rpc::IndexQuery => &["index_query"],
            Rpc::IndexPublish => &["manifest", "offer", "request"],
            Rpc::IndexRevoke => &["offer_revocation"],
        }
    }

    /// Frame types a server may answer with on this RPC (PROFILE G-09 table).
    pub fn response_types(self) -> &'static [&'static str] {
        match self {
            Rpc::ResolveDid => &["did_resolution_response"],
            Rpc::Negotiate => &["counterproposal", "acceptance", "rejection", "termination"],
            Rpc::Commit => &["mandate_signature"],
            Rpc::Deliver => &["ack", "delivery"],
            Rpc::IndexQuery => &["index_response"],
            Rpc::Settle | Rpc::Verify | Rpc::Notify | Rpc::IndexPublish | Rpc::IndexRevoke => {
                &["ack"]
            }
        }
    }
}

/// Direction of a frame on an RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// A received frame or call that cannot be processed.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// Not one deterministic CBOR frame (0101/0103/0200) or hash mismatch (0108).
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("frame type {got:?} is not allowed as a {direction:?} of {rpc:?}")]
    UnexpectedType {
        rpc: Rpc,
        direction: Direction,
        got: String,
    },
    #[error("missing {VERSION_HEADER} metadata (PROFILE G-49)")]
    MissingVersion,
    #[error("protocol version {0:?} has no supported Major (PROFILE G-49)")]
    UnsupportedVersion(String),
    #[error("invalid ack body: {0}")]
    BadAck(&'static str),
    /// The peer's `mtp-alg-profile-bin` is malformed (0200), invalid or has no algorithm in
    /// common with this agent's (0106; PROFILE G-38, BIND-X-I06).
    #[error("algorithm negotiation: {0}")]
    AlgorithmProfile(mtp_protocol::crypto::CryptoError),
}

impl Coded for FramingError {
    fn code(&self) -> ErrorCode {
        match self {
            FramingError::Wire(e) => e.code(),
            FramingError::UnexpectedType { .. } | FramingError::BadAck(_) => {
                ErrorCode::SchemaViolation
            }
            FramingError::MissingVersion | FramingError::UnsupportedVersion(_) => {
                ErrorCode::ProtocolVersionUnsupported
            }
            FramingError::AlgorithmProfile(e) => e.code(),
        }
    }
    fn requirement(&self) -> Option<&'static str> {
        match self {
            FramingError::Wire(e) => e.requirement(),
            FramingError::AlgorithmProfile(e) => e.requirement(),
            _ => None,
        }
    }
}

/// Wraps a frame into the protobuf message.
pub fn encode(frame: &wire::Frame) -> Result<pb::Frame, WireError> {
    use crate::transport::test_fault;
    if test_fault("sign-non-ml-dsa")
        && let Some(relabelled) = relabel_signature(frame)
    {
        return Ok(pb::Frame {
            cbor: relabelled.encode()?,
        });
    }
    let mut cbor = if test_fault("frame-hash-stale") {
        let mut stale = frame.clone();
        if let Value::Map(entries) = &frame.body {
            let unsigned = Value::Map(
                entries
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_text(), Some("signature" | "signatures")))
                    .cloned()
                    .collect(),
            );
            stale.hash = mtp_protocol::crypto::sha256(&mtp_protocol::cbor::to_vec(&unsigned)?);
        }
        stale.encode()?
    } else {
        frame.encode()?
    };
    if test_fault("frame-keys-unsorted")
        && let Some(m) = mtp_protocol::cbor::mutate::reorder_map_keys(&cbor)
    {
        cbor = m;
    }
    Ok(pb::Frame { cbor })
}

/// Defect `sign-non-ml-dsa`: the frame's top-level `signature` announced as SLH-DSA
/// (SPEC-VIII-A-01; PROFILE G-39 allows it on none of the MTPSync objects signed here).
fn relabel_signature(frame: &wire::Frame) -> Option<wire::Frame> {
    let Value::Map(entries) = &frame.body else {
        return None;
    };
    let mut entries = entries.clone();
    let (_, Value::Map(sig)) = entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some("signature"))?
    else {
        return None;
    };
    let (_, alg) = sig
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some("algorithm"))?;
    *alg = Value::text("SLH-DSA-SHA2-192s");
    wire::Frame::new(&frame.frame_type, Value::Map(entries)).ok()
}

/// Strictly decodes and integrity-checks a protobuf frame (SPEC-VII-A-06, SPEC-VII-A-07).
pub fn decode(frame: &pb::Frame) -> Result<wire::Frame, FramingError> {
    let strict = wire::Frame::decode(&frame.cbor);
    let mut f = match strict {
        // Defect: a non-deterministic encoding is re-encoded and accepted.
        Err(_) if crate::transport::test_fault("accept-non-deterministic-cbor") => {
            match mtp_protocol::cbor::from_slice_lenient(&frame.cbor)
                .ok()
                .and_then(|v| mtp_protocol::cbor::to_vec(&v).ok())
            {
                Some(bytes) => wire::Frame::decode(&bytes)?,
                None => strict?,
            }
        }
        // Defect: the frame hash is not checked (any `hash` is accepted).
        Err(WireError::HashMismatch) if crate::transport::test_fault("frame-hash-unchecked") => {
            let v = mtp_protocol::cbor::from_slice(&frame.cbor).map_err(WireError::from)?;
            let t = v
                .get("type")
                .and_then(Value::as_text)
                .unwrap_or_default()
                .to_owned();
            wire::Frame::new(&t, v.get("body").cloned().unwrap_or(Value::Null))?
        }
        other => other?,
    };
    if crate::transport::test_fault("strip-unknown-fields")
        && let Value::Map(entries) = &mut f.body
    {
        entries.retain(|(k, _)| !k.as_text().is_some_and(|t| t.starts_with("x-")));
    }
    Ok(f)
}

/// [`decode`] plus the frame-type check for `rpc` and `direction` (PROFILE G-09).
pub fn decode_for(
    frame: &pb::Frame,
    rpc: Rpc,
    direction: Direction,
) -> Result<wire::Frame, FramingError> {
    let f = decode(frame)?;
    let allowed = match direction {
        Direction::Request => rpc.request_types(),
        Direction::Response => rpc.response_types(),
    };
    if !allowed.contains(&f.frame_type.as_str()) {
        return Err(FramingError::UnexpectedType {
            rpc,
            direction,
            got: f.frame_type,
        });
    }
    Ok(f)
}

/// Server side of a unary call: version metadata, then the frame (PROFILE G-09, G-49).
pub fn receive(request: &Request<pb::Frame>, rpc: Rpc) -> Result<wire::Frame, FramingError> {
    check_version(request.metadata())?;
    decode_for(request.get_ref(), rpc, Direction::Request)
}

/// Client side of a unary call: the response frame, checked for `rpc`.
pub fn receive_response(
    response: &Response<pb::Frame>,
    rpc: Rpc,
) -> Result<wire::Frame, FramingError> {
    check_version(response.metadata())?;
    decode_for(response.get_ref(), rpc, Direction::Response)
}

/// A request carrying `frame` and `mtp-version` (PROFILE G-49).
pub fn request(frame: &wire::Frame) -> Result<Request<pb::Frame>, WireError> {
    let mut r = Request::new(encode(frame)?);
    set_version(r.metadata_mut());
    Ok(r)
}

/// A response carrying `frame` and `mtp-version`.
pub fn response(frame: &wire::Frame) -> Result<Response<pb::Frame>, WireError> {
    let mut r = Response::new(encode(frame)?);
    set_version(r.metadata_mut());
    Ok(r)
}

/// `ack = { ok: bool, ref: bstr .size 32 }`; `ref` = hash of the acknowledged frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub ok: bool,
    pub reference: [u8; 32],
}

impl Ack {
    /// The positive ack of `frame`.
    pub fn of(frame: &wire::Frame) -> Ack {
        Ack {
            ok: true,
            reference: frame.hash,
        }
    }

    /// The `ack` frame.
    pub fn to_frame(&self) -> Result<wire::Frame, WireError> {
        // The encoder orders map keys deterministically (RFC 8949 §4.2.1).
        let body = Value::Map(vec![
            (Value::text("ok"), Value::Bool(self.ok)),
            (Value::text("ref"), Value::bytes(self.reference.to_vec())),
        ]);
        wire::Frame::new("ack", body)
    }

    /// Reads an `ack` frame; unknown keys are tolerated (PROFILE G-26).
    pub fn from_frame(frame: &wire::Frame) -> Result<Ack, FramingError> {
        if frame.frame_type != "ack" {
            return Err(FramingError::BadAck("frame type is not ack"));
        }
        let Value::Map(entries) = &frame.body else {
            return Err(FramingError::BadAck("body is not a map"));
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_text() == Some(k))
                .map(|(_, v)| v)
        };
        let ok = get("ok")
            .and_then(Value::as_bool)
            .ok_or(FramingError::BadAck("ok must be a bool"))?;
        let reference = get("ref")
            .and_then(Value::as_bytes)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(FramingError::BadAck("ref must be 32 bytes"))?;
        Ok(Ack { ok, reference })
    }
}

/// Sets `mtp-version: 1.0.0` (PROFILE G-49).
pub fn set_version(md: &mut MetadataMap) {
    md.insert(VERSION_HEADER, MetadataValue::from_static(PROTOCOL_VERSION));
}

/// Checks the call metadata: `mtp-version` (some listed version must have a supported
/// Major; Minor and Patch differences are tolerated, PROFILE G-49; several values or a
/// comma-separated list are accepted — a peer in a migration window lists both Majors,
/// SPEC-XII-03), then the peer's `mtp-alg-profile-bin` when present
/// ([`check_alg_profile`]; PROFILE G-38).
pub fn check_version(md: &MetadataMap) -> Result<(), FramingError> {
    check_protocol_version(md)?;
    check_alg_profile(md).map(|_| ())
}

/// The `mtp-version` half of [`check_version`] (PROFILE G-49).
pub fn check_protocol_version(md: &MetadataMap) -> Result<(), FramingError> {
    use crate::transport::test_fault;
    let mut seen = Vec::new();
    for v in md.get_all(VERSION_HEADER) {
        let Ok(text) = v.to_str() else {
            seen.push("<non-ASCII>".to_owned());
            continue;
        };
        for item in text.split(',').map(str::trim) {
            let supported = if test_fault("accept-any-major") {
                major_of(item).is_some()
            } else if test_fault("exact-version-only") {
                item == PROTOCOL_VERSION
            } else {
                major_of(item).is_some_and(|m| SUPPORTED_MAJORS.contains(&m))
            };
            if supported {
                return Ok(());
            }
            seen.push(item.to_owned());
            if test_fault("first-version-only") {
                break;
            }
        }
    }
    if seen.is_empty() {
        Err(FramingError::MissingVersion)
    } else {
        Err(FramingError::UnsupportedVersion(seen.join(",")))
    }
}

/// The Major of a `MAJOR.MINOR.PATCH` version.
fn major_of(v: &str) -> Option<u64> {
    let mut parts = v.split('.');
    let (Some(ma), Some(mi), Some(pa), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    num(mi)?;
    num(pa)?;
    num(ma)
}

/// Sets `mtp-alg-profile-bin` (det-CBOR alg-profile, PROFILE G-38).
pub fn set_alg_profile(md: &mut MetadataMap, alg_profile_cbor: &[u8]) {
    md.insert_bin(
        ALG_PROFILE_HEADER,
        MetadataValue::from_bytes(alg_profile_cbor),
    );
}

/// The raw `mtp-alg-profile-bin` bytes, if present and well-formed base64.
pub fn alg_profile(md: &MetadataMap) -> Option<Vec<u8>> {
    md.get_bin(ALG_PROFILE_HEADER)
        .and_then(|v| v.to_bytes().ok())
        .map(|b| b.to_vec())
}

/// This agent's Algorithm Support Profile: the baseline, as its DID Document's
/// `mtpAlgorithmSupport` says (agent.rs; PROFILE G-38).
pub fn own_alg_profile() -> AlgorithmSupportProfile {
    AlgorithmSupportProfile::baseline()
}

/// Algorithm Negotiation over gRPC (BIND-X-I01; PROFILE G-38): a peer's
/// `mtp-alg-profile-bin` must be a valid profile (baseline listed, nothing forbidden) with
/// an algorithm in common with [`own_alg_profile`] for every function; otherwise the call
/// is refused with 0106 (0200 when it is not a profile map) and no transaction begins
/// (BIND-X-I06). Labels this agent does not know are ignored (SPEC-VIII-B-01). Absent →
/// `Ok(None)`: the suite then follows the peer's DID Document.
pub fn check_alg_profile(md: &MetadataMap) -> Result<Option<NegotiatedSuite>, FramingError> {
    use crate::transport::test_fault;
    let Some(raw) = md.get_bin(ALG_PROFILE_HEADER) else {
        return Ok(None);
    };
    if test_fault("ignore-alg-profile") {
        return Ok(None);
    }
    let bytes = raw
        .to_bytes()
        .map_err(|_| {
            FramingError::AlgorithmProfile(CryptoError::MalformedProfile {
                reason: "not base64",
            })
        })?
        .to_vec();
    let own = own_alg_profile();
    let (peer, suite) =
        negotiate_with_peer(&own, &bytes).map_err(FramingError::AlgorithmProfile)?;
    if test_fault("alg-profile-strict") {
        let beyond = !peer.ignored.is_empty()
            || peer.signature.iter().any(|a| !own.signature.contains(a))
            || peer.kem.iter().any(|a| !own.kem.contains(a))
            || peer.hash.iter().any(|a| !own.hash.contains(a));
        if beyond {
            return Err(FramingError::AlgorithmProfile(
                CryptoError::NoCommonAlgorithm {
                    function: mtp_protocol::crypto::CryptoFunction::Signature,
                },
            ));
        }
    }
    Ok(Some(suite))
}

/// The gRPC status of a failed call with MTP `code` on `rpc` (PROFILE G-09); `None` for
/// Warning and Informational codes, which never fail a call.
pub fn grpc_code(code: ErrorCode, rpc: Rpc) -> Option<Code> {
    grpc_code_raw(code.as_u16(), rpc)
}

fn grpc_code_raw(code: u16, rpc: Rpc) -> Option<Code> {
    if code == ErrorCode::RoundTimeout.as_u16() && rpc == Rpc::Negotiate {
        return Some(Code::DeadlineExceeded);
    }
    if INVALID_ARGUMENT_CODES.iter().any(|c| c.as_u16() == code) {
        return Some(Code::InvalidArgument);
    }
    match split_code(code)?.1 {
        Severity::Fatal => Some(Code::FailedPrecondition),
        Severity::Recoverable => Some(Code::Unavailable),
        Severity::Warning | Severity::Informational => None,
    }
}

/// Like [`grpc_code`] for an error object. A Recoverable code escalated to Fatal
/// (severity 1, PROFILE G-17) must not be retried, so it is FAILED_PRECONDITION.
pub fn grpc_code_for_record(record: &MtpErrorRecord, rpc: Rpc) -> Option<Code> {
    if record.is_escalated() {
        return Some(Code::FailedPrecondition);
    }
    grpc_code_raw(record.code, rpc)
}

/// The failed-call status for `record`: the mapped code, `grpc-message` =
/// "`<4-digit code> <description>`", trailers `mtp-error-bin` (det-CBOR of the record) and
/// `mtp-version` (PROFILE G-09). `None` when the code never fails a call.
pub fn error_status(record: &MtpErrorRecord, rpc: Rpc) -> Option<Status> {
    let code = grpc_code_for_record(record, rpc)?;
    let mut md = MetadataMap::new();
    if let Ok(mut cbor) = record.try_to_cbor() {
        if crate::transport::test_fault("error-record-without-layer")
            && let Ok(Value::Map(mut entries)) = mtp_protocol::cbor::from_slice(&cbor)
        {
            entries.retain(|(k, _)| !matches!(k.as_text(), Some("layer" | "timestamp")));
            cbor = mtp_protocol::cbor::to_vec(&Value::Map(entries)).unwrap_or(cbor);
        }
        md.insert_bin(ERROR_TRAILER, MetadataValue::from_bytes(&cbor));
    }
    set_version(&mut md);
    Some(Status::with_metadata(
        code,
        format!("{:04} {}", record.code, record.description),
        md,
    ))
}

/// Identity and time of an error object about to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorContext {
    /// Type 0x9 MTP-UUID (SPEC-IX-01).
    pub error_id: MtpUuid,
    pub now: Timestamp,
    pub transaction_id: Option<MtpUuid>,
}

impl ErrorContext {
    /// From the system clock and OS randomness, the id's source field derived from
    /// `agent_did` (BIND-IX-I01).
    pub fn now(agent_did: &str) -> ErrorContext {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let now = Timestamp::from_unix_nanos(nanos);
        let mut random = [0u8; 17];
        if rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut random)
            .is_err()
        {
            // No OS randomness: still unique within this process (time ‖ counter).
            let mut input = nanos.to_be_bytes().to_vec();
            input.extend(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
            random.copy_from_slice(&mtp_protocol::crypto::sha256(&input)[..17]);
        }
        let ty = if crate::transport::test_fault("error-id-offer-nibble") {
            ObjectType::Offer
        } else {
            ObjectType::Error
        };
        ErrorContext {
            error_id: MtpUuid::new(ty, nanos, mtp_protocol::uuid::source_of(agent_did), random),
            now,
            transaction_id: None,
        }
    }

    pub fn with_transaction(mut self, transaction_id: MtpUuid) -> ErrorContext {
        self.transaction_id = Some(transaction_id);
        self
    }
}

/// The error object for a typed error; the description is its `Display` text.
pub fn error_record<E: Coded + fmt::Display + ?Sized>(
    err: &E,
    ctx: &ErrorContext,
) -> MtpErrorRecord {
    struct ByRef<'a, E: ?Sized>(&'a E);
    impl<E: Coded + ?Sized> Coded for ByRef<'_, E> {
        fn code(&self) -> ErrorCode {
            match self.0.code() {
                ErrorCode::MalformedUuid
                    if crate::transport::test_fault("malformed-uuid-as-schema") =>
                {
                    ErrorCode::SchemaViolation
                }
                c => c,
            }
        }
        fn requirement(&self) -> Option<&'static str> {
            self.0.requirement()
        }
    }
    MtpErrorRecord::from_coded(
        &ByRef(err),
        err.to_string(),
        ctx.error_id,
        ctx.transaction_id,
        ctx.now,
    )
}

/// The failed-call status for a typed error (see [`error_status`]). A Warning or
/// Informational code never fails a call; asked anyway, this answers INTERNAL.
pub fn status_for<E: Coded + fmt::Display + ?Sized>(
    err: &E,
    rpc: Rpc,
    ctx: &ErrorContext,
) -> Status {
    let record = error_record(err, ctx);
    error_status(&record, rpc).unwrap_or_else(|| {
        Status::internal(format!(
            "{:04} is not a failing code (PROFILE G-09)",
            record.code
        ))
    })
}

/// A failed call as the client reads it (PROFILE G-09).
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteError {
    pub grpc_code: Code,
    /// `grpc-message`.
    pub message: String,
    /// The MTP code: from the trailer's error object, else the `grpc-message` prefix.
    pub code: Option<u16>,
    /// The decoded `mtp-error-bin` trailer.
    pub record: Option<MtpErrorRecord>,
    /// Why a present `mtp-error-bin` could not be read.
    pub trailer_problem: Option<String>,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer failed the call: {:?}: {}",
            self.grpc_code, self.message
        )
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    pub fn from_status(status: &Status) -> RemoteError {
        let message = status.message().to_owned();
        let (record, trailer_problem) = match status.metadata().get_bin(ERROR_TRAILER) {
            None => (None, None),
            Some(v) => match v.to_bytes() {
                Err(_) => (None, Some("mtp-error-bin is not valid base64".to_owned())),
                Ok(bytes) => match MtpErrorRecord::from_cbor(&bytes) {
                    Ok(r) => (Some(r), None),
                    Err(e) => (None, Some(format!("mtp-error-bin: {e}"))),
                },
            },
        };
        let from_message = message
            .get(..4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .filter(|_| message.len() == 4 || message.as_bytes().get(4) == Some(&b' '))
            .and_then(|d| d.parse::<u16>().ok());
        RemoteError {
            grpc_code: status.code(),
            code: record.as_ref().map(|r| r.code).or(from_message),
            message,
            record,
            trailer_problem,
        }
    }

    /// The registry code, when the wire value is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code.and_then(ErrorCode::from_u16)
    }

    /// A failure before MTP (mTLS, pin, DID binding): UNAUTHENTICATED without trailer.
    pub fn is_transport_failure(&self) -> bool {
        self.grpc_code == Code::Unauthenticated && self.record.is_none()
    }

    /// Whether the gRPC status is the one PROFILE G-09 prescribes for the MTP code.
    pub fn status_matches_profile(&self, rpc: Rpc) -> bool {
        match (&self.record, self.code) {
            (Some(r), _) => grpc_code_for_record(r, rpc) == Some(self.grpc_code),
            (None, Some(c)) => grpc_code_raw(c, rpc) == Some(self.grpc_code),
            (None, None) => false,
        }
    }
}

/// `grpc-timeout` of a unary call within a negotiation: `round_timeout_ms` (PROFILE G-09).
pub fn round_deadline(round_timeout_ms: u64) -> Duration {
    Duration::from_millis(round_timeout_ms)
}

/// `grpc-timeout` of `Negotiate`: `round_timeout_ms × max_rounds` (PROFILE G-09).
pub fn negotiate_deadline(round_timeout_ms: u64, max_rounds: u64) -> Duration {
    Duration::from_millis(round_timeout_ms.saturating_mul(max_rounds))
}

/// Sets the call deadline (`grpc-timeout`).
pub fn with_deadline<T>(mut request: Request<T>, deadline: Duration) -> Request<T> {
    request.set_timeout(deadline);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> wire::Frame {
        wire::Frame::new("notification", Value::text("hello")).expect("frame")
    }

    #[test]
    fn status_mapping_follows_g09() {
        use ErrorCode as E;
        for &c in ErrorCode::ALL {
            for rpc in Rpc::ALL {
                let got = grpc_code(c, rpc);
                let want = if c == E::RoundTimeout && rpc == Rpc::Negotiate {
                    Some(Code::DeadlineExceeded)
                } else if INVALID_ARGUMENT_CODES.contains(&c) {
                    Some(Code::InvalidArgument)
                } else {
                    match c.severity() {
                        Severity::Fatal => Some(Code::FailedPrecondition),
                        Severity::Recoverable => Some(Code::Unavailable),
                        _ => None,
                    }
                };
                assert_eq!(got, want, "{c} {rpc:?}");
            }
        }
        assert_eq!(
            grpc_code(E::RoundTimeout, Rpc::Settle),
            Some(Code::Unavailable)
        );
        assert_eq!(
            grpc_code(E::UuidReuse, Rpc::Notify),
            Some(Code::FailedPrecondition)
        );
        assert_eq!(grpc_code(E::DuplicateDeliveryIgnored, Rpc::Notify), None);
        assert_eq!(grpc_code(E::CredentialApproachingExpiry, Rpc::Notify), None);
        assert_eq!(
            grpc_code(E::TransportSecurityFailure, Rpc::Notify),
            Some(Code::FailedPrecondition)
        );
    }

    #[test]
    fn hash_mismatch_is_0108_invalid_argument_with_trailer() {
        let f = frame();
        let mut bad = f.clone();
        bad.hash[0] ^= 1;
        let pb = encode(&bad).expect("encodes");
        let err = decode_for(&pb, Rpc::Notify, Direction::Request).expect_err("mismatch");
        assert_eq!(err.code(), ErrorCode::MessageIntegrityFailure);
        let ctx = ErrorContext::now("did:mtp:test");
        let status = status_for(&err, Rpc::Notify, &ctx);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with("0108 "),
            "{}",
            status.message()
        );
        let remote = RemoteError::from_status(&status);
        assert_eq!(remote.code, Some(108));
        let rec = remote.record.as_ref().expect("trailer");
        assert_eq!(rec.error_id, ctx.error_id);
        assert_eq!(rec.error_code(), Some(ErrorCode::MessageIntegrityFailure));
        assert!(remote.status_matches_profile(Rpc::Notify));
        assert!(!remote.is_transport_failure());
    }

    #[test]
    fn frame_types_and_ack() {
        let f = frame();
        let pb = encode(&f).expect("encodes");
        assert_eq!(
            decode_for(&pb, Rpc::Notify, Direction::Request).expect("ok"),
            f
        );
        let err = decode_for(&pb, Rpc::Settle, Direction::Request).expect_err("type");
        assert_eq!(err.code(), ErrorCode::SchemaViolation);
        let ack = Ack::of(&f).to_frame().expect("ack");
        let pb_ack = encode(&ack).expect("encodes");
        let back = decode_for(&pb_ack, Rpc::Notify, Direction::Response).expect("ack ok");
        assert_eq!(
            Ack::from_frame(&back).expect("reads"),
            Ack {
                ok: true,
                reference: f.hash
            }
        );
        // Garbage and truncation are typed errors, never panics.
        for bytes in [vec![], vec![0xff], pb.cbor[..pb.cbor.len() - 1].to_vec()] {
            assert!(decode(&pb::Frame { cbor: bytes }).is_err());
        }
    }

    #[test]
    fn versions() {
        let mut md = MetadataMap::new();
        assert!(matches!(
            check_version(&md),
            Err(FramingError::MissingVersion)
        ));
        set_version(&mut md);
        check_version(&md).expect("1.0.0");
        for (v, ok) in [
            ("1.4.2", true),
            ("2.0.0, 1.9.0", true),
            ("2.0.0", false),
            ("1.0", false),
            ("v1.0.0", false),
        ] {
            let mut md = MetadataMap::new();
            md.insert(VERSION_HEADER, v.parse().expect("ascii"));
            assert_eq!(check_version(&md).is_ok(), ok, "{v}");
        }
        let mut md = MetadataMap::new();
        md.insert(VERSION_HEADER, "3.0.0".parse().expect("ascii"));
        assert_eq!(
            check_version(&md).expect_err("3").code(),
            ErrorCode::ProtocolVersionUnsupported
        );
    }

    #[test]
    fn alg_profile_metadata() {
        let mut md = MetadataMap::new();
        assert_eq!(check_alg_profile(&md).expect("absent"), None);
        let full =
            mtp_protocol::cbor::to_vec(&AlgorithmSupportProfile::full().to_value()).expect("cbor");
        set_alg_profile(&mut md, &full);
        assert_eq!(
            check_alg_profile(&md).expect("full"),
            Some(NegotiatedSuite::baseline())
        );
        let only87 = Value::map([
            ("signature", Value::Array(vec![Value::text("ML-DSA-87")])),
            ("kem", Value::Array(vec![Value::text("ML-KEM-768")])),
            ("symmetric", Value::Array(vec![Value::text("AES-256-GCM")])),
            ("hash", Value::Array(vec![Value::text("SHA-256")])),
        ]);
        let mut md = MetadataMap::new();
        set_version(&mut md);
        set_alg_profile(&mut md, &mtp_protocol::cbor::to_vec(&only87).expect("cbor"));
        let e = check_version(&md).expect_err("no baseline");
        assert_eq!(e.code(), ErrorCode::AlgorithmNegotiationFailure);
        let mut md = MetadataMap::new();
        set_alg_profile(&mut md, &[0xff]);
        assert_eq!(
            check_alg_profile(&md).expect_err("garbage").code(),
            ErrorCode::SchemaViolation
        );
    }

    #[test]
    fn deadlines() {
        assert_eq!(round_deadline(1500), Duration::from_millis(1500));
        assert_eq!(negotiate_deadline(1000, 5), Duration::from_secs(5));
        assert_eq!(
            negotiate_deadline(u64::MAX, 2),
            Duration::from_millis(u64::MAX)
        );
    }
}
