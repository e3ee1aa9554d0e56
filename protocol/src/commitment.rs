//! Commitment Layer objects (SPEC III-D; PROFILE G-01, G-19, G-48): the Transaction
//! Mandate, its preconditions and a pure precondition evaluator. Mandate *status*
//! (Pending/Active/Void/Superseded) is local state, kept by [`crate::state_machine`].

use crate::cbor::Value;
use crate::errors::{Coded, ErrorCode};
use crate::identity::Did;
use crate::primitives::Terms;
use crate::primitives::common::{
    AgentSignature, CborObject, Errors, Map, MapBuilder, MapReader, MultiSigned, ObjectError,
    Signed, ValidationError, check_encodable, index_path, join_path, read_agent_signatures,
    read_array, read_bytes, read_did, read_tdate, read_text, read_uuid, tdate_value, uuid_value,
};
use crate::primitives::json::{Hint, Kind};
use crate::primitives::request::DelegationLink;
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

/// Mandate contents (SPEC-III-D-1-01).
pub const MANDATE_REQ: &str = "SPEC-III-D-1-01";
/// Preconditions are machine-evaluable predicates (SPEC-III-D-2-02).
pub const PREDICATE_REQ: &str = "SPEC-III-D-2-02";
/// A successor references the original as predecessor (SPEC-III-D-3-02).
pub const PREDECESSOR_REQ: &str = "SPEC-III-D-3-02";
/// Deepest nesting of `all`/`any` predicates accepted (bounds recursion on peer input).
pub const MAX_PREDICATE_DEPTH: usize = 32;

// ---------------------------------------------------------------------------------------
// Predicates (PROFILE G-01)
// ---------------------------------------------------------------------------------------

/// Result of evaluating a predicate or precondition at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PredicateResult {
    Satisfied,
    /// Not (yet) satisfied.
    Pending,
    /// Not satisfied and its `expires` has passed (SPEC-III-D-2-05 → Void, 4101).
    Expired,
}

/// The predicate language of PROFILE G-01.
#[derive(Clone, Debug, PartialEq)]
pub enum PredicateKind {
    /// `{ op: "event", event: tstr, ? ref: mtp-uuid }`, e.g. `delivery_confirmed`.
    Event {
        event: String,
        reference: Option<MtpUuid>,
    },
    /// `{ op: "time_after", at: tdate }`: satisfied from `at` on (inclusive).
    TimeAfter { at: Timestamp },
    /// `{ op: "all", args: [+ predicate] }`.
    All(Vec<Predicate>),
    /// `{ op: "any", args: [+ predicate] }`.
    Any(Vec<Predicate>),
}

/// A machine-evaluable predicate (SPEC-III-D-2-02; PROFILE G-01).
#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    pub kind: PredicateKind,
    pub unknown: Map,
}

impl Predicate {
    pub fn event(event: impl Into<String>, reference: Option<MtpUuid>) -> Predicate {
        Predicate {
            kind: PredicateKind::Event {
                event: event.into(),
                reference,
            },
            unknown: Map::new(),
        }
    }

    pub fn time_after(at: Timestamp) -> Predicate {
        Predicate {
            kind: PredicateKind::TimeAfter { at },
            unknown: Map::new(),
        }
    }

    pub fn all(args: Vec<Predicate>) -> Predicate {
        Predicate {
            kind: PredicateKind::All(args),
            unknown: Map::new(),
        }
    }

    pub fn any(args: Vec<Predicate>) -> Predicate {
        Predicate {
            kind: PredicateKind::Any(args),
            unknown: Map::new(),
        }
    }

    /// Pure evaluation: `facts(event, ref)` says whether an event has been observed. Never
    /// returns `Expired` (expiry belongs to the [`Precondition`]).
    pub fn evaluate(
        &self,
        facts: &dyn Fn(&str, Option<&MtpUuid>) -> bool,
        now: Timestamp,
    ) -> PredicateResult {
        let ok = match &self.kind {
            PredicateKind::Event { event, reference } => facts(event, reference.as_ref()),
            PredicateKind::TimeAfter { at } => now >= *at,
            PredicateKind::All(args) => args
                .iter()
                .all(|a| a.evaluate(facts, now) == PredicateResult::Satisfied),
            PredicateKind::Any(args) => args
                .iter()
                .any(|a| a.evaluate(facts, now) == PredicateResult::Satisfied),
        };
        if ok {
            PredicateResult::Satisfied
        } else {
            PredicateResult::Pending
        }
    }

    pub fn from_value(v: &Value, path: &str) -> Result<Predicate, Vec<ValidationError>> {
        Predicate::decode(v, path, 0)
    }

    fn decode(v: &Value, path: &str, depth: usize) -> Result<Predicate, Vec<ValidationError>> {
        if depth > MAX_PREDICATE_DEPTH {
            return Err(vec![ValidationError::out_of_range(
                path,
                PREDICATE_REQ,
                format!("predicates nested deeper than {MAX_PREDICATE_DEPTH}"),
            )]);
        }
        let req = PREDICATE_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let op_path = join_path(path, "op");
        let op = errs.take(
            r.required("op", req)
                .and_then(|v| read_text(v, &op_path, req)),
        );
        let kind = match op {
            Some("event") => {
                let event = errs.take(
                    r.required("event", req)
                        .and_then(|v| read_text(v, &join_path(path, "event"), req)),
                );
                let reference = match r.optional("ref") {
                    Some(v) => {
                        let p = join_path(path, "ref");
                        match MtpUuid::from_value(v) {
                            Ok(id) => Some(id),
                            Err(e) => {
                                errs.push(
                                    ValidationError::invalid(p, req, e.to_string())
                                        .with_code(ErrorCode::MalformedUuid),
                                );
                                None
                            }
                        }
                    }
                    None => None,
                };
                event.map(|e| PredicateKind::Event {
                    event: e.to_owned(),
                    reference,
                })
            }
            Some("time_after") => errs
                .take(
                    r.required("at", req)
                        .and_then(|v| read_tdate(v, &join_path(path, "at"), req)),
                )
                .map(|at| PredicateKind::TimeAfter { at }),
            Some(op @ ("all" | "any")) => {
                let p = join_path(path, "args");
                let args = errs
                    .take(r.required("args", req).and_then(|v| read_array(v, &p, req)))
                    .and_then(|items| {
                        if items.is_empty() {
                            errs.push(ValidationError::out_of_range(
                                p.clone(),
                                req,
                                "args needs at least one predicate",
                            ));
                            return None;
                        }
                        let mut out = Vec::with_capacity(items.len());
                        for (i, item) in items.iter().enumerate() {
                            if let Some(a) = errs.take_all(Predicate::decode(
                                item,
                                &index_path(&p, i),
                                depth + 1,
                            )) {
                                out.push(a);
                            }
                        }
                        Some(out)
                    });
                args.map(|a| {
                    if op == "all" {
                        PredicateKind::All(a)
                    } else {
                        PredicateKind::Any(a)
                    }
                })
            }
            Some(other) => {
                errs.push(ValidationError::invalid(
                    op_path,
                    req,
                    format!(
                        "predicate op {other:?} is not event, time_after, all or any (PROFILE G-01)"
                    ),
                ));
                None
            }
            None => None,
        };
        let unknown = r.unknown();
        match kind {
            Some(kind) if errs.is_empty() => Ok(Predicate { kind, unknown }),
            _ => Err(errs.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        let b = match &self.kind {
            PredicateKind::Event { event, reference } => MapBuilder::new()
                .put("op", Value::text("event"))
                .put("event", Value::text(event.as_str()))
                .put_opt("ref", reference.as_ref().map(uuid_value)),
            PredicateKind::TimeAfter { at } => MapBuilder::new()
                .put("op", Value::text("time_after"))
                .put("at", tdate_value(*at)),
            PredicateKind::All(args) => MapBuilder::new().put("op", Value::text("all")).put(
                "args",
                Value::Array(args.iter().map(Predicate::to_value).collect()),
            ),
            PredicateKind::Any(args) => MapBuilder::new().put("op", Value::text("any")).put(
                "args",
                Value::Array(args.iter().map(Predicate::to_value).collect()),
            ),
        };
        b.extend_unknown(&self.unknown).build()
    }
}

/// `precondition = { id: tstr, predicate, expires: tdate }` (SPEC III-D-2; PROFILE G-01).
#[derive(Clone, Debug, PartialEq)]
pub struct Precondition {
    pub id: String,
    pub predicate: Predicate,
    pub expires: Timestamp,
    pub unknown: Map,
}

impl Precondition {
    /// `Satisfied` when the predicate holds at `now`; otherwise `Expired` once
    /// `now ≥ expires` (SPEC-III-D-2-05), else `Pending`. Satisfaction takes precedence: the
    /// caller evaluates at every observed event, and stops once a precondition is satisfied.
    pub fn evaluate(
        &self,
        facts: &dyn Fn(&str, Option<&MtpUuid>) -> bool,
        now: Timestamp,
    ) -> PredicateResult {
        match self.predicate.evaluate(facts, now) {
            PredicateResult::Satisfied => PredicateResult::Satisfied,
            _ if now >= self.expires => PredicateResult::Expired,
            _ => PredicateResult::Pending,
        }
    }

    pub fn from_value(v: &Value, path: &str) -> Result<Precondition, Vec<ValidationError>> {
        let req = PREDICATE_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let id = errs.take(
            r.required("id", req)
                .and_then(|v| read_text(v, &join_path(path, "id"), req)),
        );
        let predicate = errs
            .take(r.required("predicate", req))
            .and_then(|v| errs.take_all(Predicate::from_value(v, &join_path(path, "predicate"))));
        let expires = errs.take(
            r.required("expires", req)
                .and_then(|v| read_tdate(v, &join_path(path, "expires"), req)),
        );
        let unknown = r.unknown();
        match (id, predicate, expires) {
            (Some(id), Some(predicate), Some(expires)) if errs.is_empty() => Ok(Precondition {
                id: id.to_owned(),
                predicate,
                expires,
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("id", Value::text(self.id.as_str()))
            .put("predicate", self.predicate.to_value())
            .put("expires", tdate_value(self.expires))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// Combined status of a set of preconditions (SPEC-III-D-2-04, -05): `Satisfied` when all
/// are, `Expired` when any expired unsatisfied, else `Pending`. No preconditions = `Satisfied`.
pub fn evaluate_all(
    preconditions: &[Precondition],
    facts: &dyn Fn(&str, Option<&MtpUuid>) -> bool,
    now: Timestamp,
) -> PredicateResult {
    let mut result = PredicateResult::Satisfied;
    for p in preconditions {
        match p.evaluate(facts, now) {
            PredicateResult::Expired => return PredicateResult::Expired,
            PredicateResult::Pending => result = PredicateResult::Pending,
            PredicateResult::Satisfied => {}
        }
    }
    result
}

// ---------------------------------------------------------------------------------------
// Transaction Mandate (PROFILE G-01)
// ---------------------------------------------------------------------------------------

/// `{ agent_id: did-string, delegation_chain: [* delegation-link] }`: the authority of one
/// participant (SPEC-III-D-1-01; PROFILE G-01, G-04).
#[derive(Clone, Debug, PartialEq)]
pub struct DelegationAttestation {
    pub agent_id: Did,
    pub delegation_chain: Vec<DelegationLink>,
    pub unknown: Map,
}

impl DelegationAttestation {
    pub fn from_value(
        v: &Value,
        path: &str,
    ) -> Result<DelegationAttestation, Vec<ValidationError>> {
        let req = MANDATE_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let agent_id = errs.take(
            r.required("agent_id", req)
                .and_then(|v| read_did(v, &join_path(path, "agent_id"), req)),
        );
        let p = join_path(path, "delegation_chain");
        let chain = errs
            .take(
                r.required("delegation_chain", req)
                    .and_then(|v| read_array(v, &p, req)),
            )
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| {
                        errs.take_all(DelegationLink::from_value(l, &index_path(&p, i)))
                    })
                    .collect::<Vec<_>>()
            });
        let unknown = r.unknown();
        match (agent_id, chain) {
            (Some(agent_id), Some(delegation_chain)) if errs.is_empty() => {
                Ok(DelegationAttestation {
                    agent_id,
                    delegation_chain,
                    unknown,
                })
            }
            _ => Err(errs.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("agent_id", Value::text(self.agent_id.as_str()))
            .put(
                "delegation_chain",
                Value::Array(
                    self.delegation_chain
                        .iter()
                        .map(DelegationLink::to_value)
                        .collect(),
                ),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// A Transaction Mandate (SPEC III-D-1; PROFILE G-01, G-19, G-48).
///
/// `terms` travels as `bstr .cbor mtp-terms`: the exact deterministic CBOR bytes of the
/// fully signed Terms. They are kept verbatim ([`Mandate::terms_bytes`]) next to their
/// strict decoding ([`Mandate::terms`]). Signing input = deterministic CBOR without
/// `signatures`; every participant signs the same bytes, in `terms.participants` order;
/// a failed check is 4100 Mandate Signature Invalid.
///
/// Structural rules checked by `from_value` (besides the schema): `terms` decodes strictly
/// into valid Terms; `terms.offer_ref` ∈ `offer_refs` and `terms.request_ref` ∈
/// `request_refs`; one delegation attestation per participant; precondition ids unique;
/// `predecessor ≠ mandate_id`; `expiration ≤ terms.expiration` (PROFILE G-19).
#[derive(Clone, Debug, PartialEq)]
pub struct Mandate {
    pub mandate_id: MtpUuid,
    pub offer_refs: Vec<MtpUuid>,
    pub request_refs: Vec<MtpUuid>,
    terms_bytes: Vec<u8>,
    terms: Terms,
    pub delegation_attestations: Vec<DelegationAttestation>,
    pub preconditions: Option<Vec<Precondition>>,
    pub commitment_timestamp: Timestamp,
    pub expiration: Timestamp,
    pub predecessor: Option<MtpUuid>,
    pub signatures: Vec<AgentSignature>,
    pub unknown: Map,
}

/// Why a Mandate's embedded Terms are refused, or a contextual Mandate check failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MandateError {
    #[error("mandate expiration {mandate} is after the Terms expiration {terms} (PROFILE G-19)")]
    ExpiresAfterTerms {
        mandate: Timestamp,
        terms: Timestamp,
    },
    #[error("mandate expired at {expiration} before settlement initiation at {now}")]
    Expired {
        expiration: Timestamp,
        now: Timestamp,
    },
    #[error("precondition {id} expired at {expires}")]
    PreconditionExpired { id: String, expires: Timestamp },
    #[error("{0}")]
    Object(ObjectError),
}

impl Coded for MandateError {
    fn code(&self) -> ErrorCode {
        match self {
            MandateError::ExpiresAfterTerms { .. } => ErrorCode::SchemaViolation,
            MandateError::Expired { .. } => ErrorCode::MandateExpired,
            MandateError::PreconditionExpired { .. } => ErrorCode::PreconditionExpired,
            MandateError::Object(e) => e.code(),
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            MandateError::ExpiresAfterTerms { .. } => Some(MANDATE_REQ),
            MandateError::Expired { .. } => Some(MANDATE_REQ),
            MandateError::PreconditionExpired { .. } => Some("SPEC-III-D-2-05"),
            MandateError::Object(e) => e.requirement(),
        }
    }
}

impl Mandate {
    /// A new, unsigned Mandate over fully signed `terms` (their deterministic bytes are
    /// embedded). Fails when the Terms have no deterministic encoding or expire before
    /// `expiration` (PROFILE G-19).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mandate_id: MtpUuid,
        offer_refs: Vec<MtpUuid>,
        request_refs: Vec<MtpUuid>,
        terms: &Terms,
        delegation_attestations: Vec<DelegationAttestation>,
        preconditions: Option<Vec<Precondition>>,
        commitment_timestamp: Timestamp,
        expiration: Timestamp,
        predecessor: Option<MtpUuid>,
    ) -> Result<Mandate, MandateError> {
        let terms_bytes = terms.try_to_cbor().map_err(|e| {
            MandateError::Object(
                ValidationError::invalid("terms", MANDATE_REQ, e.to_string()).into(),
            )
        })?;
        if expiration > terms.expiration {
            return Err(MandateError::ExpiresAfterTerms {
                mandate: expiration,
                terms: terms.expiration,
            });
        }
        Ok(Mandate {
            mandate_id,
            offer_refs,
            request_refs,
            terms_bytes,
            terms: terms.clone(),
            delegation_attestations,
            preconditions,
            commitment_timestamp,
            expiration,
            predecessor,
            signatures: Vec::new(),
            unknown: Map::new(),
        })
    }

    /// The embedded Terms bytes, verbatim.
    pub fn terms_bytes(&self) -> &[u8] {
        &self.terms_bytes
    }

    /// The embedded Terms (strictly decoded from [`Mandate::terms_bytes`]).
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    /// Strict decoding of `bytes` as the embedded `mtp-terms` (BIND IV-A; PROFILE G-01).
    pub fn decode_terms(bytes: &[u8]) -> Result<Terms, ObjectError> {
        Terms::from_cbor(bytes)
    }

    /// `true` for a conditional Mandate (SPEC III-D-2).
    pub fn is_conditional(&self) -> bool {
        self.preconditions.as_ref().is_some_and(|p| !p.is_empty())
    }

    /// Precondition status at `now` (SPEC-III-D-2-04, -05); unconditional = `Satisfied`.
    pub fn preconditions_status(
        &self,
        facts: &dyn Fn(&str, Option<&MtpUuid>) -> bool,
        now: Timestamp,
    ) -> PredicateResult {
        evaluate_all(self.preconditions.as_deref().unwrap_or(&[]), facts, now)
    }

    /// Activation check (PROFILE G-19): at activation time `now` the Mandate must not have
    /// expired (else the transaction goes Committed → Void, 4102) and no precondition may
    /// have expired unsatisfied (4101).
    pub fn check_activation(
        &self,
        facts: &dyn Fn(&str, Option<&MtpUuid>) -> bool,
        now: Timestamp,
    ) -> Result<PredicateResult, MandateError> {
        if now >= self.expiration {
            return Err(MandateError::Expired {
                expiration: self.expiration,
                now,
            });
        }
        for p in self.preconditions.as_deref().unwrap_or(&[]) {
            if p.evaluate(facts, now) == PredicateResult::Expired {
                return Err(MandateError::PreconditionExpired {
                    id: p.id.clone(),
                    expires: p.expires,
                });
            }
        }
        Ok(self.preconditions_status(facts, now))
    }
}

fn read_uuid_list(
    r: &mut MapReader<'_>,
    key: &str,
    ty: ObjectType,
    req: &'static str,
    errs: &mut Errors,
) -> Option<Vec<MtpUuid>> {
    let path = r.child_path(key);
    let items = errs.take(r.required(key, req).and_then(|v| read_array(v, &path, req)))?;
    if items.is_empty() {
        errs.push(ValidationError::out_of_range(
            path.clone(),
            req,
            "at least one reference required",
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(id) = errs.take(read_uuid(item, &index_path(&path, i), ty, req)) {
            out.push(id);
        }
    }
    Some(out)
}

fn uuid_list_value(ids: &[MtpUuid]) -> Value {
    Value::Array(ids.iter().map(uuid_value).collect())
}

impl CborObject for Mandate {
    const NAME: &'static str = "mtp-mandate";

    /// PROFILE G-27. `terms` is a byte string (base64url in JSON); predicate hints cover
    /// `all`/`any` nesting up to 4 levels.
    fn json_hints() -> &'static [Hint] {
        static H: std::sync::OnceLock<Vec<Hint>> = std::sync::OnceLock::new();
        H.get_or_init(|| {
            let mut out = vec![
                Hint {
                    path: "mandate_id",
                    kind: Kind::Uuid,
                },
                Hint {
                    path: "offer_refs[]",
                    kind: Kind::Uuid,
                },
                Hint {
                    path: "request_refs[]",
                    kind: Kind::Uuid,
                },
                Hint {
                    path: "terms",
                    kind: Kind::Bytes,
                },
                Hint {
                    path: "preconditions[].expires",
                    kind: Kind::Tdate,
                },
                Hint {
                    path: "commitment_timestamp",
                    kind: Kind::Tdate,
                },
                Hint {
                    path: "expiration",
                    kind: Kind::Tdate,
                },
                Hint {
                    path: "predecessor",
                    kind: Kind::Uuid,
                },
                Hint {
                    path: "signatures[].value",
                    kind: Kind::Bytes,
                },
            ];
            let mut prefix = String::from("preconditions[].predicate");
            for _ in 0..5 {
                for (leaf, kind) in [("at", Kind::Tdate), ("ref", Kind::Uuid)] {
                    let path: &'static str = Box::leak(format!("{prefix}.{leaf}").into_boxed_str());
                    out.push(Hint { path, kind });
                }
                prefix.push_str(".args[]");
            }
            out
        })
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("mandate_id", uuid_value(&self.mandate_id))
            .put("offer_refs", uuid_list_value(&self.offer_refs))
            .put("request_refs", uuid_list_value(&self.request_refs))
            .put("terms", Value::Bytes(self.terms_bytes.clone()))
            .put(
                "delegation_attestations",
                Value::Array(
                    self.delegation_attestations
                        .iter()
                        .map(DelegationAttestation::to_value)
                        .collect(),
                ),
            )
            .put_opt(
                "preconditions",
                self.preconditions
                    .as_ref()
                    .map(|ps| Value::Array(ps.iter().map(Precondition::to_value).collect())),
            )
            .put(
                "commitment_timestamp",
                tdate_value(self.commitment_timestamp),
            )
            .put("expiration", tdate_value(self.expiration))
            .put_opt("predecessor", self.predecessor.as_ref().map(uuid_value))
            .put(
                "signatures",
                Value::Array(
                    self.signatures
                        .iter()
                        .map(AgentSignature::to_value)
                        .collect(),
                ),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let req = MANDATE_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        let mandate_id = errs
            .take(r.required("mandate_id", req))
            .and_then(|v| errs.take(read_uuid(v, "mandate_id", ObjectType::Mandate, req)));
        let offer_refs = read_uuid_list(&mut r, "offer_refs", ObjectType::Offer, req, &mut errs);
        let request_refs =
            read_uuid_list(&mut r, "request_refs", ObjectType::Request, req, &mut errs);
        let terms = errs.take(r.required("terms", req)).and_then(|v| {
            let bytes = errs.take(read_bytes(v, "terms", req))?;
            let terms = errs.take_all(
                Mandate::decode_terms(bytes).map_err(|e| e.nested_under("terms", MANDATE_REQ)),
            )?;
            Some((bytes.to_vec(), terms))
        });
        let attestations = errs
            .take(r.required("delegation_attestations", req))
            .and_then(|v| {
                let p = "delegation_attestations";
                let items = errs.take(read_array(v, p, req))?;
                if items.len() < 2 {
                    errs.push(ValidationError::out_of_range(
                        p,
                        req,
                        format!("{} attestations, at least 2 required", items.len()),
                    ));
                }
                Some(
                    items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, a)| {
                            errs.take_all(DelegationAttestation::from_value(a, &index_path(p, i)))
                        })
                        .collect::<Vec<_>>(),
                )
            });
        let preconditions = r.optional("preconditions").and_then(|v| {
            let p = "preconditions";
            let items = errs.take(read_array(v, p, "SPEC-III-D-2-01"))?;
            if items.is_empty() {
                errs.push(ValidationError::out_of_range(
                    p,
                    "SPEC-III-D-2-01",
                    "an unconditional Mandate omits preconditions instead of sending [] (PROFILE G-01)",
                ));
            }
            let out: Vec<Precondition> = items
                .iter()
                .enumerate()
                .filter_map(|(i, c)| errs.take_all(Precondition::from_value(c, &index_path(p, i))))
                .collect();
            for (i, c) in out.iter().enumerate() {
                if out.iter().take(i).any(|d| d.id == c.id) {
                    errs.push(ValidationError::invalid(
                        format!("preconditions[{i}].id"),
                        PREDICATE_REQ,
                        format!("duplicate precondition id {:?}", c.id),
                    ));
                }
            }
            Some(out)
        });
        let commitment_timestamp = errs
            .take(r.required("commitment_timestamp", req))
            .and_then(|v| errs.take(read_tdate(v, "commitment_timestamp", req)));
        let expiration = errs
            .take(r.required("expiration", req))
            .and_then(|v| errs.take(read_tdate(v, "expiration", req)));
        let predecessor = r.optional("predecessor").and_then(|v| {
            errs.take(read_uuid(
                v,
                "predecessor",
                ObjectType::Mandate,
                PREDECESSOR_REQ,
            ))
        });
        let signatures = errs
            .take(r.required("signatures", req))
            .and_then(|v| errs.take_all(read_agent_signatures(v, "signatures", 2, req)));
        let unknown = r.unknown();

        // Cross-field rules.
        if let (Some(id), Some(p)) = (&mandate_id, &predecessor)
            && id == p
        {
            errs.push(ValidationError::invalid(
                "predecessor",
                PREDECESSOR_REQ,
                "a Mandate cannot supersede itself",
            ));
        }
        if let Some((_, t)) = &terms {
            if let Some(refs) = &offer_refs
                && !refs.contains(&t.offer_ref)
            {
                errs.push(ValidationError::invalid(
                    "offer_refs",
                    req,
                    "does not include terms.offer_ref",
                ));
            }
            if let Some(refs) = &request_refs
                && !refs.contains(&t.request_ref)
            {
                errs.push(ValidationError::invalid(
                    "request_refs",
                    req,
                    "does not include terms.request_ref",
                ));
            }
            if let Some(atts) = &attestations {
                for p in &t.participants {
                    if !atts.iter().any(|a| a.agent_id == p.agent_id) {
                        errs.push(ValidationError::invalid(
                            "delegation_attestations",
                            req,
                            format!(
                                "no delegation attestation for participant {}",
                                p.agent_id.as_str()
                            ),
                        ));
                    }
                }
            }
            if let Some(exp) = expiration
                && exp > t.expiration
            {
                errs.push(ValidationError::invalid(
                    "expiration",
                    req,
                    format!(
                        "{exp} is after terms.expiration {} (PROFILE G-19)",
                        t.expiration
                    ),
                ));
            }
        }
        match (
            mandate_id,
            offer_refs,
            request_refs,
            terms,
            attestations,
            commitment_timestamp,
            expiration,
            signatures,
        ) {
            (
                Some(mandate_id),
                Some(offer_refs),
                Some(request_refs),
                Some((terms_bytes, terms)),
                Some(delegation_attestations),
                Some(commitment_timestamp),
                Some(expiration),
                Some(signatures),
            ) if errs.is_empty() => {
                check_encodable(v)?;
                Ok(Mandate {
                    mandate_id,
                    offer_refs,
                    request_refs,
                    terms_bytes,
                    terms,
                    delegation_attestations,
                    preconditions,
                    commitment_timestamp,
                    expiration,
                    predecessor,
                    signatures,
                    unknown,
                })
            }
            _ => Err(errs.into_object_error()),
        }
    }
}

impl Signed for Mandate {
    const SIGNATURE_FIELD: &'static str = "signatures";
    /// 4100 Mandate Signature Invalid (BIND XI).
    const SIGNATURE_CODE: ErrorCode = ErrorCode::MandateSignatureInvalid;
    /// PROFILE G-39 (b).
    const ALLOWS_SLH_DSA: bool = true;
}

impl MultiSigned for Mandate {
    /// The participants of the embedded Terms, in order (PROFILE G-01, G-02).
    fn signer_dids(&self) -> Vec<&str> {
        self.terms
            .participants
            .iter()
            .map(|p| p.agent_id.as_str())
            .collect()
    }
    fn signatures(&self) -> &[AgentSignature] {
        &self.signatures
    }
    fn signatures_mut(&mut self) -> &mut Vec<AgentSignature> {
        &mut self.signatures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(1_772_800_000 + s).unwrap()
    }

    fn id() -> MtpUuid {
        MtpUuid::new(ObjectType::Receipt, 1, [0; 6], [1; 17])
    }

    #[test]
    fn predicate_evaluation() {
        let delivered = Predicate::event("delivery_confirmed", Some(id()));
        let yes = |e: &str, r: Option<&MtpUuid>| e == "delivery_confirmed" && r == Some(&id());
        let no = |_: &str, _: Option<&MtpUuid>| false;
        assert_eq!(delivered.evaluate(&yes, t(0)), PredicateResult::Satisfied);
        assert_eq!(delivered.evaluate(&no, t(0)), PredicateResult::Pending);
        let after = Predicate::time_after(t(10));
        assert_eq!(after.evaluate(&no, t(9)), PredicateResult::Pending);
        assert_eq!(after.evaluate(&no, t(10)), PredicateResult::Satisfied);
        let all = Predicate::all(vec![delivered.clone(), after.clone()]);
        let any = Predicate::any(vec![delivered.clone(), after.clone()]);
        assert_eq!(all.evaluate(&yes, t(5)), PredicateResult::Pending);
        assert_eq!(all.evaluate(&yes, t(11)), PredicateResult::Satisfied);
        assert_eq!(any.evaluate(&no, t(5)), PredicateResult::Pending);
        assert_eq!(any.evaluate(&yes, t(5)), PredicateResult::Satisfied);
        let pre = Precondition {
            id: "p1".into(),
            predicate: delivered,
            expires: t(100),
            unknown: Map::new(),
        };
        assert_eq!(pre.evaluate(&no, t(99)), PredicateResult::Pending);
        assert_eq!(pre.evaluate(&no, t(100)), PredicateResult::Expired);
        assert_eq!(pre.evaluate(&yes, t(100)), PredicateResult::Satisfied);
        let pre2 = Precondition {
            id: "p2".into(),
            predicate: after,
            expires: t(50),
            unknown: Map::new(),
        };
        let both = [pre.clone(), pre2];
        assert_eq!(evaluate_all(&both, &yes, t(20)), PredicateResult::Satisfied);
        assert_eq!(evaluate_all(&both, &yes, t(5)), PredicateResult::Pending);
        assert_eq!(evaluate_all(&both, &no, t(60)), PredicateResult::Pending);
        let late = Precondition {
            id: "p3".into(),
            predicate: Predicate::time_after(t(70)),
            expires: t(50),
            unknown: Map::new(),
        };
        assert_eq!(
            evaluate_all(&[pre.clone(), late.clone()], &yes, t(20)),
            PredicateResult::Pending
        );
        assert_eq!(
            evaluate_all(&[pre, late], &yes, t(60)),
            PredicateResult::Expired
        );
        assert_eq!(evaluate_all(&[], &no, t(0)), PredicateResult::Satisfied);
    }

    #[test]
    fn predicate_round_trip_and_errors() {
        let p = Predicate {
            kind: PredicateKind::Any(vec![
                Predicate::event("x", None),
                Predicate::all(vec![
                    Predicate::time_after(t(1)),
                    Predicate::event("y", Some(id())),
                ]),
            ]),
            unknown: vec![(Value::text("x_note"), Value::text("n"))],
        };
        assert_eq!(Predicate::from_value(&p.to_value(), "").unwrap(), p);
        let bad = Value::map([("op", Value::text("not")), ("args", Value::Array(vec![]))]);
        let e = Predicate::from_value(&bad, "predicate").unwrap_err();
        assert_eq!(e[0].path, "predicate.op");
        assert_eq!(e[0].requirement, PREDICATE_REQ);
        let empty = Value::map([("op", Value::text("all")), ("args", Value::Array(vec![]))]);
        assert!(Predicate::from_value(&empty, "").is_err());
        // Deep nesting is refused, not a stack overflow.
        let mut deep = Value::map([("op", Value::text("event")), ("event", Value::text("e"))]);
        for _ in 0..(MAX_PREDICATE_DEPTH + 5) {
            deep = Value::map([
                ("op", Value::text("all")),
                ("args", Value::Array(vec![deep])),
            ]);
        }
        assert!(Predicate::from_value(&deep, "").is_err());
        let untagged = Value::map([
            ("op", Value::text("time_after")),
            ("at", Value::text(t(0).to_rfc3339())),
        ]);
        assert!(Predicate::from_value(&untagged, "").is_err());
    }

    #[test]
    fn mandate_error_codes() {
        assert_eq!(
            MandateError::Expired {
                expiration: t(0),
                now: t(1)
            }
            .code(),
            ErrorCode::MandateExpired
        );
        assert_eq!(
            MandateError::PreconditionExpired {
                id: "p".into(),
                expires: t(0)
            }
            .code(),
            ErrorCode::PreconditionExpired
        );
        assert_eq!(
            <Mandate as Signed>::SIGNATURE_CODE,
            ErrorCode::MandateSignatureInvalid
        );
    }
}
