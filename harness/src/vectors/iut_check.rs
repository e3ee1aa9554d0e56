//! The IUT vector check (`mtp-cert vectors verify`, scenario step `check_vectors`): puts
//! corpus vectors to an implementation through the test-control `codec_*` actions
//! (`protocol/wire/control.cddl`) and decides, here in the harness, whether each answer is
//! right. Transport-free: anything that implements [`ControlInvoker`] will do.
//!
//! Per vector (its `codec` member, see [`super::doc`]) and operation:
//! - `encode`: `codec_encode {type, value}` must return exactly the corpus CBOR; for an
//!   invalid value it must be refused (`mtp_error`) with the expected code;
//! - `parse`: `codec_parse {type, cbor}` must accept valid bytes (and re-encode them
//!   identically) and refuse invalid ones with the expected code;
//! - `sign`: `codec_sign` of the corpus object without its signature must return the same
//!   object with a signature that verifies under the IUT's own assertion key (from the
//!   `hello` DID Document) — the harness verifies with `mtp_protocol::crypto`, it never
//!   asks the IUT whether its own signature is right;
//! - `verify`: `codec_verify` must accept the corpus's valid signatures and refuse the
//!   invalid ones with the expected code (multi-signed objects: the signers' DID Documents
//!   are first given to the IUT with `add_peer`).
//!
//! `unsupported_action` (and `bad_args` for a codec type outside the contract's list)
//! makes a check [`CheckStatus::Unsupported`], never a failure; an [`InvokeError`] of kind
//! `transport` (the control channel failed) stops the run with [`VectorError::Iut`]. A code matches when it is
//! the expected one; for a profile (unpublished) code, any code with the same layer and
//! severity digits matches (PROFILE G-14).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value as Json;

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm};
use mtp_protocol::errors::ErrorCode;
use mtp_protocol::identity::DidDocument;

use super::catalogue::{CONTRACT_CODEC_TYPES, codec_rule};
use super::signatures::slh_dsa_allowed;
use super::{VectorError, default_corpus};
use crate::scenario::VectorOp;

/// Something that invokes test-control actions on the IUT.
pub trait ControlInvoker: Send {
    fn invoke(
        &mut self,
        action: &str,
        args: Value,
    ) -> impl std::future::Future<Output = Result<Value, InvokeError>> + Send;
}

/// A test-control action that did not succeed (`ControlResponse.error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvokeError {
    /// `unsupported_action`, `bad_args`, `not_found`, `mtp_error`, `internal`.
    pub kind: String,
    /// The MTP error code when `kind` is `mtp_error`.
    pub code: Option<u16>,
    pub message: String,
}

impl InvokeError {
    /// The kind of a failure to reach the IUT at all (not an answer of the IUT): the check
    /// run stops with [`VectorError::Iut`] instead of counting failures.
    pub const TRANSPORT: &'static str = "transport";

    /// A transport failure (the control channel, not the IUT's answer).
    pub fn transport(message: impl Into<String>) -> InvokeError {
        InvokeError {
            kind: InvokeError::TRANSPORT.into(),
            code: None,
            message: message.into(),
        }
    }

    fn unsupported(&self) -> bool {
        self.kind == "unsupported_action"
    }
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "{} {:04}: {}", self.kind, c, self.message),
            None => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    Passed,
    Failed,
    /// The IUT does not implement the action or the codec type (not a failure).
    Unsupported,
}

/// One vector put to the IUT with one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorCheck {
    pub vector_id: String,
    pub operation: VectorOp,
    /// `status == Passed`.
    pub ok: bool,
    pub detail: String,
    pub status: CheckStatus,
}

impl VectorCheck {
    /// `status == Passed`.
    pub fn passed(&self) -> bool {
        self.status == CheckStatus::Passed
    }

    fn new(id: &str, op: VectorOp, status: CheckStatus, detail: impl Into<String>) -> Self {
        VectorCheck {
            vector_id: id.to_owned(),
            operation: op,
            ok: status == CheckStatus::Passed,
            detail: detail.into(),
            status,
        }
    }
}

impl std::fmt::Display for VectorCheck {
    /// `cbor/offer encode: failed: encoding differs ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.status {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "failed",
            CheckStatus::Unsupported => "unsupported",
        };
        write!(
            f,
            "{} {}: {status}: {}",
            self.vector_id,
            self.operation.name(),
            self.detail
        )
    }
}

/// Counts of a check run: `checked` excludes the unsupported checks.
pub fn summary(checks: &[VectorCheck]) -> (usize, usize, usize) {
    let passed = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Passed)
        .count();
    let failed = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .count();
    let unsupported = checks.len() - passed - failed;
    (passed, failed, unsupported)
}

/// `true` when `got` is the expected code: equal, listed in `also`, or (for a profile
/// code) of the same layer and severity (PROFILE G-14).
pub fn code_matches(expected: u16, also: &[u16], got: Option<u16>) -> bool {
    let Some(got) = got else {
        return false;
    };
    if got == expected || also.contains(&got) {
        return true;
    }
    let published = ErrorCode::from_u16(expected).is_some_and(ErrorCode::is_published);
    !published && got / 100 == expected / 100
}

/// [`check_iut_in`] on the default corpus ([`default_corpus`]).
pub async fn check_iut<C: ControlInvoker>(
    c: &mut C,
    family: &str,
    ids: &[String],
    ops: &[VectorOp],
) -> Result<Vec<VectorCheck>, VectorError> {
    check_iut_in(&default_corpus(), c, family, ids, ops).await
}

/// One vector as the check needs it.
struct Loaded {
    id: String,
    codec: Option<Json>,
    bytes: Option<Vec<u8>>,
}

fn corpus_err(path: &Path, what: impl Into<String>) -> VectorError {
    VectorError::Corpus {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn read_json(path: &Path) -> Result<Json, VectorError> {
    let bytes = std::fs::read(path).map_err(|source| VectorError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| corpus_err(path, e.to_string()))
}

/// The vector ids of `family` (or the listed `ids`) in manifest order.
fn select(dir: &Path, family: &str, ids: &[String]) -> Result<Vec<String>, VectorError> {
    let path = dir.join(super::manifest::FILE);
    let manifest = read_json(&path)?;
    let all: Vec<(String, String)> = manifest
        .get("vectors")
        .and_then(Json::as_array)
        .ok_or_else(|| corpus_err(&path, "no vectors array"))?
        .iter()
        .filter_map(|v| {
            Some((
                v.get("id")?.as_str()?.to_owned(),
                v.get("family")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    if ids.is_empty() {
        let out: Vec<String> = all
            .iter()
            .filter(|(_, f)| family.is_empty() || f == family)
            .map(|(i, _)| i.clone())
            .collect();
        if out.is_empty() {
            return Err(corpus_err(&path, format!("no vectors in family {family}")));
        }
        return Ok(out);
    }
    for id in ids {
        if !all.iter().any(|(i, _)| i == id) {
            return Err(corpus_err(&path, format!("no vector {id}")));
        }
    }
    Ok(ids.to_vec())
}

fn load(dir: &Path, id: &str) -> Result<Loaded, VectorError> {
    let doc = read_json(&dir.join(format!("{id}.json")))?;
    let cbor_path = dir.join(format!("{id}.cbor"));
    let bytes = if cbor_path.is_file() {
        Some(std::fs::read(&cbor_path).map_err(|source| VectorError::Io {
            path: cbor_path.clone(),
            source,
        })?)
    } else {
        None
    };
    Ok(Loaded {
        id: id.to_owned(),
        codec: doc.get("codec").cloned(),
        bytes,
    })
}

/// The IUT's DID and assertion keys, from `hello`.
struct Iut {
    did: String,
    keys: Vec<(String, PublicKey)>,
}

/// Session state of one check run.
struct Session {
    hello: Option<Result<Iut, String>>,
    peers: BTreeSet<String>,
}

fn op_name_listed(codec: &Json, op: VectorOp) -> bool {
    codec
        .get("operations")
        .and_then(Json::as_array)
        .is_some_and(|a| a.iter().any(|o| o.as_str() == Some(op.name())))
}

fn u16_of(v: Option<&Json>) -> Option<u16> {
    v.and_then(Json::as_u64).and_then(|c| u16::try_from(c).ok())
}

fn also_of(codec: &Json) -> Vec<u16> {
    codec
        .get("also")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_u64().and_then(|c| u16::try_from(c).ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::map(entries)
}

/// Wraps the invoker: a transport failure is kept aside (and given to the check as an
/// error) so that the run can stop with [`VectorError::Iut`] instead of counting failures.
struct Guard<'a, C> {
    inner: &'a mut C,
    transport: Option<String>,
}

impl<C: ControlInvoker> ControlInvoker for Guard<'_, C> {
    fn invoke(
        &mut self,
        action: &str,
        args: Value,
    ) -> impl std::future::Future<Output = Result<Value, InvokeError>> + Send {
        let Guard { inner, transport } = self;
        let name = action.to_owned();
        let fut = inner.invoke(action, args);
        async move {
            let r = fut.await;
            if let Err(e) = &r
                && e.kind == InvokeError::TRANSPORT
                && transport.is_none()
            {
                *transport = Some(format!("{name}: {e}"));
            }
            r
        }
    }
}

/// Runs the checks of `family` (or of the listed vector `ids`) for `ops` against the IUT,
/// reading the corpus under `dir`.
pub async fn check_iut_in<C: ControlInvoker>(
    dir: &Path,
    c: &mut C,
    family: &str,
    ids: &[String],
    ops: &[VectorOp],
) -> Result<Vec<VectorCheck>, VectorError> {
    let selected = select(dir, family, ids)?;
    let explicit = !ids.is_empty();
    let mut c = Guard {
        inner: c,
        transport: None,
    };
    let c = &mut c;
    let mut session = Session {
        hello: None,
        peers: BTreeSet::new(),
    };
    let mut out = Vec::new();
    for id in selected {
        let v = load(dir, &id)?;
        let Some(codec) = v.codec.clone() else {
            if explicit {
                for &op in ops {
                    out.push(VectorCheck::new(
                        &id,
                        op,
                        CheckStatus::Unsupported,
                        "the vector has no test-control codec form",
                    ));
                }
            }
            continue;
        };
        for &op in ops {
            // The JSON check applies to every vector that has a verify check.
            let listed = if op == VectorOp::Json {
                VectorOp::Verify
            } else {
                op
            };
            if !op_name_listed(&codec, listed) {
                continue;
            }
            let check = match op {
                VectorOp::Encode => encode(c, &v, &codec).await,
                VectorOp::Parse => parse(c, &v, &codec).await,
                VectorOp::Sign => sign(c, &mut session, &v, &codec).await,
                VectorOp::Verify => verify(dir, c, &mut session, &v, &codec).await?,
                VectorOp::Json => match json_verify(dir, c, &mut session, &v, &codec).await? {
                    Some(check) => check,
                    None => continue,
                },
            };
            if let Some(what) = c.transport.take() {
                return Err(VectorError::Iut { what });
            }
            out.push(check);
        }
    }
    Ok(out)
}

/// The codec type, and whether an IUT may not know it (outside the contract's list).
fn codec_type(codec: &Json) -> (String, bool) {
    let t = codec
        .get("type")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let extension = !CONTRACT_CODEC_TYPES.contains(&t.as_str());
    (t, extension)
}

/// An action error as a check: unsupported, or a failure.
fn refused_check(
    id: &str,
    op: VectorOp,
    e: &InvokeError,
    extension: bool,
    what: &str,
) -> VectorCheck {
    if e.unsupported() || (extension && e.kind == "bad_args") {
        VectorCheck::new(id, op, CheckStatus::Unsupported, format!("{what}: {e}"))
    } else {
        VectorCheck::new(id, op, CheckStatus::Failed, format!("{what}: {e}"))
    }
}

fn missing_bytes(id: &str, op: VectorOp) -> VectorCheck {
    VectorCheck::new(
        id,
        op,
        CheckStatus::Failed,
        "corpus: the vector has no .cbor file",
    )
}

async fn encode<C: ControlInvoker>(c: &mut C, v: &Loaded, codec: &Json) -> VectorCheck {
    let op = VectorOp::Encode;
    let (ty, ext) = codec_type(codec);
    let valid = codec.get("valid").and_then(Json::as_bool).unwrap_or(true);
    let value = match codec.get("text").and_then(Json::as_str) {
        Some(t) => Value::text(t),
        None => match v.bytes.as_deref().map(cbor::from_slice) {
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                return VectorCheck::new(
                    &v.id,
                    op,
                    CheckStatus::Failed,
                    format!("corpus: the .cbor is not deterministic: {e}"),
                );
            }
            None => return missing_bytes(&v.id, op),
        },
    };
    let answer = c
        .invoke(
            "codec_encode",
            map(vec![("type", Value::text(ty.as_str())), ("value", value)]),
        )
        .await;
    if valid {
        let Some(expected) = v.bytes.as_deref() else {
            return missing_bytes(&v.id, op);
        };
        match answer {
            Err(e) => refused_check(&v.id, op, &e, ext, "codec_encode refused a valid value"),
            Ok(r) => match r.get("cbor").and_then(Value::as_bytes) {
                None => VectorCheck::new(&v.id, op, CheckStatus::Failed, "result has no cbor"),
                Some(b) if b == expected => {
                    VectorCheck::new(&v.id, op, CheckStatus::Passed, "byte-identical")
                }
                Some(b) => VectorCheck::new(
                    &v.id,
                    op,
                    CheckStatus::Failed,
                    format!(
                        "encoding differs from the corpus (BIND-IV-A-06): got {} bytes, first \
                         difference at byte {}",
                        b.len(),
                        first_difference(b, expected)
                    ),
                ),
            },
        }
    } else {
        let expected = u16_of(codec.get("code")).unwrap_or(103);
        match answer {
            Ok(_) => VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("codec_encode accepted an invalid value (expected {expected:04})"),
            ),
            Err(e) if e.unsupported() || (ext && e.kind == "bad_args") => {
                VectorCheck::new(&v.id, op, CheckStatus::Unsupported, e.to_string())
            }
            Err(e) if e.kind == "mtp_error" && code_matches(expected, &also_of(codec), e.code) => {
                VectorCheck::new(&v.id, op, CheckStatus::Passed, format!("refused: {e}"))
            }
            Err(e) => VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("refused with {e}, expected mtp_error {expected:04}"),
            ),
        }
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

async fn parse<C: ControlInvoker>(c: &mut C, v: &Loaded, codec: &Json) -> VectorCheck {
    let op = VectorOp::Parse;
    let (ty, ext) = codec_type(codec);
    let Some(bytes) = v.bytes.clone() else {
        return missing_bytes(&v.id, op);
    };
    let valid = codec.get("valid").and_then(Json::as_bool).unwrap_or(true);
    let answer = c
        .invoke(
            "codec_parse",
            map(vec![
                ("type", Value::text(ty.as_str())),
                ("cbor", Value::Bytes(bytes.clone())),
            ]),
        )
        .await;
    let r = match answer {
        Err(e) => return refused_check(&v.id, op, &e, ext, "codec_parse failed"),
        Ok(r) => r,
    };
    let ok = r.get("ok").and_then(Value::as_bool);
    let code = r
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    if valid {
        if ok != Some(true) {
            return VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("a valid object was refused (code {code:?})"),
            );
        }
        if let (Some(t), Some(got)) = (
            codec.get("text").and_then(Json::as_str),
            r.get("text").and_then(Value::as_text),
        ) && t != got
        {
            return VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("text form {got} differs from {t}"),
            );
        }
        match r.get("reencoded").and_then(Value::as_bytes) {
            Some(re) if re == bytes.as_slice() => VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Passed,
                "accepted, re-encoded identically",
            ),
            Some(re) => VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!(
                    "re-encoding differs from the input (first difference at byte {})",
                    first_difference(re, &bytes)
                ),
            ),
            None => VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Passed,
                "accepted (no reencoded returned)",
            ),
        }
    } else {
        let expected = u16_of(codec.get("code")).unwrap_or(103);
        if ok != Some(false) {
            return VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("an invalid encoding was accepted (expected {expected:04})"),
            );
        }
        if code_matches(expected, &also_of(codec), code) {
            VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Passed,
                format!("refused with {:04}", code.unwrap_or_default()),
            )
        } else {
            VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("refused with {code:?}, expected {expected:04}"),
            )
        }
    }
}

async fn hello<C: ControlInvoker>(c: &mut C, s: &mut Session) -> Result<(), String> {
    if s.hello.is_none() {
        let r = match c.invoke("hello", Value::Map(Vec::new())).await {
            Err(e) => Err(format!("hello: {e}")),
            Ok(r) => (|| {
                let did = r
                    .get("did")
                    .and_then(Value::as_text)
                    .ok_or("hello: no did")?
                    .to_owned();
                let text = r
                    .get("did_document")
                    .and_then(Value::as_text)
                    .ok_or("hello: no did_document")?;
                let doc = DidDocument::from_json(text)
                    .map_err(|e| format!("hello: DID Document: {e}"))?;
                let keys = doc
                    .assertion_keys()
                    .into_iter()
                    .filter_map(|(id, alg, k)| PublicKey::from_bytes(alg, &k).ok().map(|k| (id, k)))
                    .collect::<Vec<_>>();
                if keys.is_empty() {
                    return Err("hello: the DID Document has no assertion key".to_owned());
                }
                Ok(Iut { did, keys })
            })(),
        };
        s.hello = Some(r);
    }
    match &s.hello {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(e.clone()),
        None => Err("hello: not run".into()),
    }
}

/// The signature field of a codec type.
fn signature_field(ty: &str) -> &'static str {
    match ty {
        "terms" | "mandate" => "signatures",
        _ => "signature",
    }
}

fn without(v: &Value, field: &str) -> Value {
    super::world::with_entry(v, field, None)
}

async fn sign<C: ControlInvoker>(
    c: &mut C,
    s: &mut Session,
    v: &Loaded,
    codec: &Json,
) -> VectorCheck {
    let op = VectorOp::Sign;
    let (ty, ext) = codec_type(codec);
    let field = signature_field(&ty);
    let Some(bytes) = v.bytes.as_deref() else {
        return missing_bytes(&v.id, op);
    };
    let object = match cbor::from_slice(bytes) {
        Ok(o) => o,
        Err(e) => {
            return VectorCheck::new(&v.id, op, CheckStatus::Failed, format!("corpus: {e}"));
        }
    };
    let unsigned = without(&object, field);
    let Ok(unsigned_bytes) = cbor::to_vec(&unsigned) else {
        return VectorCheck::new(&v.id, op, CheckStatus::Failed, "corpus: not encodable");
    };
    if let Err(e) = hello(c, s).await {
        let status = if e.contains("unsupported_action") {
            CheckStatus::Unsupported
        } else {
            CheckStatus::Failed
        };
        return VectorCheck::new(&v.id, op, status, e);
    }
    let answer = c
        .invoke(
            "codec_sign",
            map(vec![
                ("type", Value::text(ty.as_str())),
                ("cbor", Value::Bytes(unsigned_bytes.clone())),
            ]),
        )
        .await;
    let r = match answer {
        Err(e) => return refused_check(&v.id, op, &e, ext, "codec_sign failed"),
        Ok(r) => r,
    };
    let Some(signed_bytes) = r.get("cbor").and_then(Value::as_bytes) else {
        return VectorCheck::new(&v.id, op, CheckStatus::Failed, "result has no cbor");
    };
    let signed = match cbor::from_slice(signed_bytes) {
        Ok(x) => x,
        Err(e) => {
            return VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("the signed object is not deterministic CBOR: {e}"),
            );
        }
    };
    let input = match cbor::to_vec(&without(&signed, field)) {
        Ok(b) => b,
        Err(e) => return VectorCheck::new(&v.id, op, CheckStatus::Failed, e.to_string()),
    };
    if input != unsigned_bytes {
        return VectorCheck::new(
            &v.id,
            op,
            CheckStatus::Failed,
            "the IUT changed the object it signed (content other than the signature differs)",
        );
    }
    let Some(Ok(iut)) = &s.hello else {
        return VectorCheck::new(&v.id, op, CheckStatus::Failed, "hello: not run");
    };
    let sig = match signed.get(field) {
        Some(Value::Array(a)) => a
            .iter()
            .rev()
            .find(|x| x.get("agent").and_then(Value::as_text) == Some(iut.did.as_str()))
            .cloned(),
        Some(x) => Some(x.clone()),
        None => None,
    };
    let Some(sig) = sig else {
        return VectorCheck::new(
            &v.id,
            op,
            CheckStatus::Failed,
            format!("no signature by the IUT ({}) in `{field}`", iut.did),
        );
    };
    let label = sig
        .get("algorithm")
        .and_then(Value::as_text)
        .unwrap_or_default();
    let value = sig
        .get("value")
        .and_then(Value::as_bytes)
        .unwrap_or_default();
    let key_id = sig.get("key_id").and_then(Value::as_text);
    if label == SignatureAlgorithm::SlhDsaSha2_192s.label()
        && !codec_rule(&ty).is_some_and(slh_dsa_allowed)
    {
        return VectorCheck::new(
            &v.id,
            op,
            CheckStatus::Failed,
            "the IUT signed with SLH-DSA where PROFILE G-39 allows only ML-DSA",
        );
    }
    let candidates: Vec<&PublicKey> = iut
        .keys
        .iter()
        .filter(|(id, _)| key_id.is_none_or(|k| k == id))
        .map(|(_, k)| k)
        .collect();
    if candidates.is_empty() {
        return VectorCheck::new(
            &v.id,
            op,
            CheckStatus::Failed,
            format!("key_id {key_id:?} is not an assertion key of the IUT's DID Document"),
        );
    }
    let verified = candidates.iter().any(|k| {
        k.algorithm().label() == label
            && mtp_protocol::crypto::verify(label, k.as_bytes(), &input, value).is_ok()
    });
    if verified {
        VectorCheck::new(
            &v.id,
            op,
            CheckStatus::Passed,
            format!("{label} signature verifies under the IUT's key"),
        )
    } else {
        VectorCheck::new(
            &v.id,
            op,
            CheckStatus::Failed,
            format!(
                "the IUT's {label} signature does not verify under its assertion key over the \
                 deterministic CBOR without `{field}` (PROFILE G-02)"
            ),
        )
    }
}

async fn verify<C: ControlInvoker>(
    dir: &Path,
    c: &mut C,
    s: &mut Session,
    v: &Loaded,
    codec: &Json,
) -> Result<VectorCheck, VectorError> {
    let op = VectorOp::Verify;
    let (ty, ext) = codec_type(codec);
    let Some(bytes) = v.bytes.clone() else {
        return Ok(missing_bytes(&v.id, op));
    };
    let spec = codec.get("verify").cloned().unwrap_or(Json::Null);
    let expect_ok = spec.get("ok").and_then(Json::as_bool).unwrap_or(true);
    let mut args = vec![
        ("type", Value::text(ty.as_str())),
        ("cbor", Value::Bytes(bytes)),
    ];
    if let Some(pk) = spec.get("public_key") {
        let alg = pk.get("alg").and_then(Json::as_str).unwrap_or_default();
        let key = pk
            .get("key")
            .and_then(Json::as_str)
            .and_then(|h| hex::decode(h).ok())
            .unwrap_or_default();
        args.push((
            "public_key",
            map(vec![("alg", Value::text(alg)), ("key", Value::Bytes(key))]),
        ));
    }
    if let Some(peers) = spec.get("peers").and_then(Json::as_array) {
        for p in peers.iter().filter_map(Json::as_str) {
            if s.peers.contains(p) {
                continue;
            }
            let doc = read_json(&dir.join(format!("{p}.json")))?;
            let document = doc
                .pointer("/expected/did_document")
                .ok_or_else(|| corpus_err(&dir.join(format!("{p}.json")), "no did_document"))?;
            let text = serde_json::to_string(document)
                .map_err(|e| corpus_err(&dir.join(format!("{p}.json")), e.to_string()))?;
            match c
                .invoke("add_peer", map(vec![("document", Value::text(text))]))
                .await
            {
                Ok(_) => {
                    s.peers.insert(p.to_owned());
                }
                Err(e) => {
                    let status = if e.unsupported() {
                        CheckStatus::Unsupported
                    } else {
                        CheckStatus::Failed
                    };
                    return Ok(VectorCheck::new(
                        &v.id,
                        op,
                        status,
                        format!("add_peer {p}: {e}"),
                    ));
                }
            }
        }
    }
    let r = match c.invoke("codec_verify", map(args)).await {
        Err(e) => return Ok(refused_check(&v.id, op, &e, ext, "codec_verify failed")),
        Ok(r) => r,
    };
    let ok = r.get("ok").and_then(Value::as_bool);
    let code = r
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    Ok(if expect_ok {
        if ok == Some(true) {
            VectorCheck::new(&v.id, op, CheckStatus::Passed, "signature accepted")
        } else {
            VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("a valid signature was refused (code {code:?})"),
            )
        }
    } else {
        let expected = u16_of(spec.get("code")).unwrap_or(1100);
        if ok != Some(false) {
            VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("an invalid signature was accepted (expected {expected:04})"),
            )
        } else if code_matches(expected, &[], code) {
            VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Passed,
                format!("refused with {:04}", code.unwrap_or_default()),
            )
        } else {
            VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                format!("refused with {code:?}, expected {expected:04}"),
            )
        }
    })
}

// ---- JSON form (BIND-IV-C-03; PROFILE G-27) ------------------------------------------------

/// The schema-directed JSON form of a corpus object (PROFILE G-27), by codec type; `None`
/// when the object has none that converts back to the same deterministic CBOR (a byte
/// string inside an open map has no hint, PROFILE G-27).
fn json_form(ty: &str, bytes: &[u8]) -> Option<Json> {
    use mtp_protocol::primitives::CborObject;
    use mtp_protocol::primitives::json::{from_json, to_json};
    fn of<T: CborObject>(b: &[u8]) -> Option<Json> {
        let j = T::from_cbor(b).ok().and_then(|o| to_json(&o).ok())?;
        let back = from_json::<T>(&j).ok()?.try_to_cbor().ok()?;
        (back == b).then_some(j)
    }
    match ty {
        "offer" => of::<mtp_protocol::primitives::Offer>(bytes),
        "request" => of::<mtp_protocol::primitives::Request>(bytes),
        "terms" => of::<mtp_protocol::primitives::Terms>(bytes),
        "receipt" => of::<mtp_protocol::primitives::Receipt>(bytes),
        "mandate" => of::<mtp_protocol::commitment::Mandate>(bytes),
        "manifest" => of::<mtp_protocol::discovery::CapabilityManifest>(bytes),
        "offer_revocation" => of::<mtp_protocol::discovery::OfferRevocation>(bytes),
        "attribution_record" => of::<mtp_protocol::attribution::AttributionRecord>(bytes),
        "mtp_error" => of::<mtp_protocol::error_record::MtpErrorRecord>(bytes),
        "notification" => of::<mtp_protocol::error_record::Notification>(bytes),
        "dispute_initiation_record" => {
            of::<mtp_protocol::verification::DisputeInitiationRecord>(bytes)
        }
        _ => None,
    }
}

/// JSON text of `j` that differs from every canonical spelling: object members in reverse
/// key order (deterministic CBOR orders them bytewise), spaces, and the first ASCII
/// alphanumeric character of every string written as a `\uXXXX` escape.
fn unusual_json_text(j: &Json) -> String {
    fn string(s: &str) -> String {
        let plain = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        match s.chars().next() {
            Some(c) if c.is_ascii_alphanumeric() => {
                format!("\"\\u{:04x}{}", u32::from(c), &plain[2..])
            }
            _ => plain,
        }
    }
    match j {
        Json::String(s) => string(s),
        Json::Array(items) => {
            let inner: Vec<String> = items.iter().map(unusual_json_text).collect();
            format!("[ {} ]", inner.join(" , "))
        }
        Json::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .rev()
                .map(|(k, v)| format!("{} : {}", string(k), unusual_json_text(v)))
                .collect();
            format!("{{ {} }}", inner.join(" , "))
        }
        other => other.to_string(),
    }
}

/// `codec_verify {type, json}` (BIND-IV-C-03): the vector's valid object in JSON form, spelt
/// unlike any canonical form, must verify — after conversion to deterministic CBOR, whose
/// bytes (`cbor` in the result, when given) must be the corpus bytes — and the same JSON
/// with a member added after signing must be refused. `None`: no JSON check for this
/// vector (an invalid signature, or a type without a schema-directed JSON form).
async fn json_verify<C: ControlInvoker>(
    dir: &Path,
    c: &mut C,
    s: &mut Session,
    v: &Loaded,
    codec: &Json,
) -> Result<Option<VectorCheck>, VectorError> {
    let op = VectorOp::Json;
    let (ty, ext) = codec_type(codec);
    let Some(bytes) = v.bytes.clone() else {
        return Ok(Some(missing_bytes(&v.id, op)));
    };
    let spec = codec.get("verify").cloned().unwrap_or(Json::Null);
    if !spec.get("ok").and_then(Json::as_bool).unwrap_or(true) {
        return Ok(None);
    }
    let Some(json) = json_form(&ty, &bytes) else {
        return Ok(None);
    };
    let mut key_args = Vec::new();
    if let Some(pk) = spec.get("public_key") {
        let alg = pk.get("alg").and_then(Json::as_str).unwrap_or_default();
        let key = pk
            .get("key")
            .and_then(Json::as_str)
            .and_then(|h| hex::decode(h).ok())
            .unwrap_or_default();
        key_args.push((
            "public_key",
            map(vec![("alg", Value::text(alg)), ("key", Value::Bytes(key))]),
        ));
    }
    if let Some(peers) = spec.get("peers").and_then(Json::as_array) {
        for p in peers.iter().filter_map(Json::as_str) {
            if s.peers.contains(p) {
                continue;
            }
            let path = dir.join(format!("{p}.json"));
            let doc = read_json(&path)?;
            let document = doc
                .pointer("/expected/did_document")
                .ok_or_else(|| corpus_err(&path, "no did_document"))?;
            let text =
                serde_json::to_string(document).map_err(|e| corpus_err(&path, e.to_string()))?;
            match c
                .invoke("add_peer", map(vec![("document", Value::text(text))]))
                .await
            {
                Ok(_) => {
                    s.peers.insert(p.to_owned());
                }
                Err(e) => {
                    let status = if e.unsupported() {
                        CheckStatus::Unsupported
                    } else {
                        CheckStatus::Failed
                    };
                    return Ok(Some(VectorCheck::new(
                        &v.id,
                        op,
                        status,
                        format!("add_peer {p}: {e}"),
                    )));
                }
            }
        }
    }
    let call = |text: String| {
        let mut args = vec![
            ("type", Value::text(ty.as_str())),
            ("json", Value::text(text)),
        ];
        args.extend(key_args.iter().cloned());
        map(args)
    };
    let r = match c
        .invoke("codec_verify", call(unusual_json_text(&json)))
        .await
    {
        Err(e) => {
            return Ok(Some(refused_check(
                &v.id,
                op,
                &e,
                ext,
                "codec_verify of the JSON form failed",
            )));
        }
        Ok(r) => r,
    };
    if r.get("ok").and_then(Value::as_bool) != Some(true) {
        let code = r.get("code").and_then(Value::as_u64);
        return Ok(Some(VectorCheck::new(
            &v.id,
            op,
            CheckStatus::Failed,
            format!(
                "the valid object in JSON form was refused (code {code:?}): it must be converted to deterministic CBOR before verification"
            ),
        )));
    }
    if let Some(det) = r.get("cbor").and_then(Value::as_bytes)
        && det != bytes.as_slice()
    {
        return Ok(Some(VectorCheck::new(
            &v.id,
            op,
            CheckStatus::Failed,
            "the CBOR kept from the JSON form is not the deterministic encoding of the object",
        )));
    }
    let mut tampered = json.clone();
    if let Json::Object(m) = &mut tampered {
        m.insert(
            "x-json-tampered".into(),
            Json::String("added after signing".into()),
        );
    }
    let r = match c
        .invoke("codec_verify", call(unusual_json_text(&tampered)))
        .await
    {
        Err(e) => {
            return Ok(Some(refused_check(
                &v.id,
                op,
                &e,
                ext,
                "codec_verify of the tampered JSON form failed",
            )));
        }
        Ok(r) => r,
    };
    let code = r.get("code").and_then(Value::as_u64);
    Ok(Some(
        if r.get("ok").and_then(Value::as_bool) == Some(false) {
            VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Passed,
                format!("JSON form verified; tampered JSON form refused ({code:?})"),
            )
        } else {
            VectorCheck::new(
                &v.id,
                op,
                CheckStatus::Failed,
                "a JSON form with a member added after signing was accepted",
            )
        },
    ))
}

#[cfg(test)]
mod json_form_tests {
    use super::*;
    use mtp_protocol::primitives::json::from_json;

    /// Every valid signed corpus object survives its unusual JSON spelling: parsed back
    /// schema-directed, it re-encodes to the corpus bytes (PROFILE G-27).
    #[test]
    fn unusual_json_round_trips_to_the_corpus_bytes() {
        fn back<T: mtp_protocol::primitives::CborObject>(j: &Json) -> Vec<u8> {
            from_json::<T>(j).unwrap().try_to_cbor().unwrap()
        }
        let dir = default_corpus();
        for (id, ty) in [
            ("signatures/offer-mldsa65", "offer"),
            ("signatures/request-mldsa87", "request"),
            ("signatures/mandate-mldsa65", "mandate"),
        ] {
            let v = load(&dir, id).unwrap();
            let bytes = v.bytes.unwrap();
            let json = json_form(ty, &bytes).unwrap();
            let text = unusual_json_text(&json);
            let parsed: Json = serde_json::from_str(&text).unwrap();
            assert_eq!(
                parsed, json,
                "{id}: the unusual spelling is the same JSON value"
            );
            let det = match ty {
                "offer" => back::<mtp_protocol::primitives::Offer>(&parsed),
                "request" => back::<mtp_protocol::primitives::Request>(&parsed),
                _ => back::<mtp_protocol::commitment::Mandate>(&parsed),
            };
            if det != bytes {
                let a = mtp_protocol::cbor::from_slice(&det).unwrap();
                let b = mtp_protocol::cbor::from_slice(&bytes).unwrap();
                let (a, b) = (format!("{a:?}"), format!("{b:?}"));
                let i = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
                let lo = i.saturating_sub(200);
                panic!(
                    "{id}: differs at {i}: {} != {}",
                    &a[lo..(i + 100).min(a.len())],
                    &b[lo..(i + 100).min(b.len())]
                );
            }
        }
    }
}
