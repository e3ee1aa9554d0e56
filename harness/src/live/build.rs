//! Completing a `send` template into the message a conforming peer would send: the fields
//! the template leaves out (ids as fresh MTP-UUIDs of the right type, the sender's DID,
//! timestamps, validity windows, the persona's authority attestation, the session fields of
//! negotiation and commitment messages) and the signature (PROFILE G-02). Template values
//! always win over the defaults.
//!
//! Written from `protocol/wire/mtp.cddl` and `docs/profile.md` (G-01, G-02, G-04, G-10,
//! G-16, G-43, G-48); nested objects (a NIM's Request and proposal) are completed and
//! signed here too.

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::sha256;
use mtp_protocol::errors::ErrorCode;
use mtp_protocol::primitives::common::tdate_value;
use mtp_protocol::taxonomy::{Classifier, DimensionKind};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::ObjectType;

use super::persona::Persona;
use super::session::{Session, Sessions, proposal_digest};
use super::values::{bytes32, merge, remove, set, set_default, tdate_in, text, without};

/// Frame types whose body carries one `signature: mtp-signature` (mtp.cddl).
pub const SINGLE_SIGNED: [&str; 18] = [
    "offer",
    "request",
    "nim",
    "proposal",
    "counterproposal",
    "acceptance",
    "rejection",
    "termination",
    "settlement_notice",
    "delivery_request",
    "delivery",
    "receipt",
    "attribution_record",
    "notification",
    "manifest",
    "offer_revocation",
    "alg_profile",
    "error",
];

/// How long the harness's objects stay valid.
const VALIDITY_S: i64 = 3_600;

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build {frame}: {reason}")]
    Missing { frame: String, reason: String },
    #[error("cannot encode {frame}: {reason}")]
    Encode { frame: String, reason: String },
}

fn missing(frame: &str, reason: impl Into<String>) -> BuildError {
    BuildError::Missing {
        frame: frame.to_owned(),
        reason: reason.into(),
    }
}

/// The persona's authority: its delegation chain from the harness's Principal.
#[derive(Clone, Debug)]
pub struct Authority {
    pub principal: String,
    /// `delegation-link` values, Principal first (PROFILE G-04).
    pub chain: Vec<Value>,
    /// The ADC texts of the chain (for the presentation).
    pub credentials: Vec<String>,
}

impl Authority {
    /// One link: `principal → subject`.
    pub fn single(principal: &str, subject: &str, adc_json: &str) -> Authority {
        Authority {
            principal: principal.to_owned(),
            chain: vec![Value::map([
                ("issuer", Value::text(principal)),
                ("subject", Value::text(subject)),
                ("credential", Value::text(adc_json)),
            ])],
            credentials: vec![adc_json.to_owned()],
        }
    }

    /// A JSON VP presenting the chain, held by `holder` (PROFILE G-04, G-35).
    pub fn presentation(&self, holder: &str) -> String {
        let creds: Vec<serde_json::Value> = self
            .credentials
            .iter()
            .filter_map(|c| serde_json::from_str(c).ok())
            .collect();
        serde_json::json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiablePresentation"],
            "holder": holder,
            "verifiableCredential": creds,
        })
        .to_string()
    }
}

/// Everything a builder may draw on.
pub struct BuildCtx<'a> {
    pub persona: &'a mut Persona,
    pub authority: &'a Authority,
    pub iut_did: &'a str,
    /// Offers the IUT published (control results), latest last.
    pub iut_offers: &'a [Value],
    /// The persona's own standing Offer.
    pub own_offer: Option<&'a Value>,
    pub sessions: &'a Sessions,
    /// The last message received on the channel of this send: `(type, body, hash)`.
    pub last_received: Option<&'a (String, Value, [u8; 32])>,
    /// The last object id the harness sent (`reused_uuid` without `from`).
    pub now: Timestamp,
    /// `expired`: validity windows in the past.
    pub expired: bool,
}

impl BuildCtx<'_> {
    fn uuid(&mut self, ty: ObjectType) -> Value {
        Value::bytes(self.persona.new_uuid(ty, self.now).as_bytes().to_vec())
    }

    fn me(&self) -> Value {
        Value::text(&self.persona.did)
    }

    /// The session a body belongs to: its `negotiation_id`, else the current one.
    fn session(&self, template: &Value) -> Option<&Session> {
        bytes32(template, "negotiation_id")
            .and_then(|id| self.sessions.get(&id))
            .or_else(|| self.sessions.current())
    }

    fn offer_for(&self, offer_ref: Option<[u8; 32]>) -> Option<&Value> {
        match offer_ref {
            Some(id) => self
                .iut_offers
                .iter()
                .rev()
                .find(|o| bytes32(o, "offer_id") == Some(id))
                .or_else(|| {
                    self.own_offer
                        .filter(|o| bytes32(o, "offer_id") == Some(id))
                }),
            None => self.iut_offers.last(),
        }
    }
}

/// A value for a quality dimension of `kind` (PROFILE G-43).
fn dimension_default(name: &str, kind: &DimensionKind) -> Value {
    match kind {
        DimensionKind::Enum(values) => Value::text(values.first().copied().unwrap_or("standard")),
        DimensionKind::Uint if name.contains("latency") => Value::from(1000u64),
        DimensionKind::Uint => Value::from(1u64),
        DimensionKind::Fraction => Value::Float(0.95),
        DimensionKind::Percent => Value::from(10u64),
        DimensionKind::NonNegativeNumber => Value::from(1u64),
        DimensionKind::Duration => Value::text("P30D"),
        DimensionKind::Mime => Value::text("application/json"),
        DimensionKind::Text => Value::text("standard"),
        DimensionKind::TextOrTextList => Value::text("as described"),
        DimensionKind::Bool => Value::Bool(false),
        DimensionKind::PriceSpec => Value::map([
            ("amount", Value::from(100u64)),
            ("unit", Value::text("USD")),
        ]),
        DimensionKind::Jurisdiction => Value::text("US"),
        DimensionKind::Object(members) => Value::map(
            members
                .iter()
                .map(|d| (d.name, dimension_default(d.name, &d.kind))),
        ),
    }
}

/// Every mandatory quality dimension of `value_type`'s category (PROFILE G-43).
pub fn default_quality(value_type: &str) -> Value {
    let Ok(c) = Classifier::parse(value_type) else {
        return Value::Map(vec![]);
    };
    Value::map(
        c.category()
            .mandatory_dimensions()
            .iter()
            .map(|d| (d.name, dimension_default(d.name, &d.kind))),
    )
}

fn price(amount: u64) -> Value {
    Value::map([
        ("amount", Value::from(amount)),
        ("unit", Value::text("USD")),
    ])
}

fn validity(now: Timestamp, expired: bool) -> Value {
    if expired {
        Value::map([
            ("not_before", tdate_in(now, -2 * VALIDITY_S)),
            ("not_after", tdate_in(now, -VALIDITY_S)),
        ])
    } else {
        Value::map([
            ("not_before", tdate_in(now, -60)),
            ("not_after", tdate_in(now, VALIDITY_S)),
        ])
    }
}

/// Signs `body` in place as `persona`: `signature` = ML-DSA-65 over det-CBOR of the map
/// without `signature` (PROFILE G-02; BIND-VII-A-06).
pub fn sign_single(body: &mut Value, persona: &Persona) -> Result<(), BuildError> {
    let input = cbor::to_vec(&without(body, &["signature"])).map_err(|e| BuildError::Encode {
        frame: "object".into(),
        reason: e.to_string(),
    })?;
    let sig = Value::map([
        ("algorithm", Value::text("ML-DSA-65")),
        ("key_id", Value::text(&persona.key_id)),
        ("value", Value::bytes(persona.signing.sign(&input))),
    ]);
    set(body, "signature", sig);
    Ok(())
}

/// An `agent-signature` by `persona` over `input` (Terms, Mandate; PROFILE G-02).
pub fn agent_signature(persona: &Persona, input: &[u8]) -> Value {
    agent_signature_with(&persona.did, &persona.key_id, &persona.signing, input)
}

/// An `agent-signature` by `did` with `key` (ML-DSA-65) over `input`.
pub fn agent_signature_with(
    did: &str,
    key_id: &str,
    key: &mtp_protocol::crypto::SigningKey,
    input: &[u8],
) -> Value {
    Value::map([
        ("agent", Value::text(did)),
        ("algorithm", Value::text(key.algorithm().label())),
        ("key_id", Value::text(key_id)),
        ("value", Value::bytes(key.sign(input))),
    ])
}

/// The persona's standing Offer (what the IUT, as requester, negotiates against).
pub fn standing_offer(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    complete_offer(ctx, template)
}

fn complete_offer(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    let vt = text(template, "value_type")
        .unwrap_or("inference.text")
        .to_owned();
    let base = Value::map([
        ("offer_id", ctx.uuid(ObjectType::Offer)),
        ("agent_id", ctx.me()),
        ("value_type", Value::text(&vt)),
        (
            "description",
            Value::map([
                ("human", Value::text(format!("{vt} offered by mtp-cert"))),
                ("machine", Value::Map(vec![])),
            ]),
        ),
        (
            "terms_template",
            Value::map([
                ("price", price(10)),
                (
                    "delivery",
                    Value::map([("method", Value::text("synchronous"))]),
                ),
                ("quality", default_quality(&vt)),
                (
                    "settlement",
                    Value::map([
                        ("rail", Value::text("ledger")),
                        ("timing", Value::text("on_verification")),
                    ]),
                ),
            ]),
        ),
        ("validity_window", validity(ctx.now, ctx.expired)),
    ]);
    let mut v = merge(base, template);
    if ctx.expired {
        set(&mut v, "validity_window", validity(ctx.now, true));
    }
    sign_single(&mut v, ctx.persona)?;
    Ok(v)
}

fn complete_request(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    let vt = text(template, "value_type")
        .unwrap_or("inference.text")
        .to_owned();
    let max = template
        .get("constraints")
        .and_then(|c| c.get("budget_ceiling"))
        .cloned()
        .unwrap_or_else(|| price(100));
    let base = Value::map([
        ("request_id", ctx.uuid(ObjectType::Request)),
        ("agent_id", ctx.me()),
        ("value_type", Value::text(&vt)),
        (
            "description",
            Value::map([
                ("human", Value::text(format!("{vt} requested by mtp-cert"))),
                ("machine", Value::Map(vec![])),
            ]),
        ),
        ("constraints", Value::Map(vec![])),
        (
            "authority_attestation",
            Value::map([
                ("principal_did", Value::text(&ctx.authority.principal)),
                ("scope", Value::Array(vec![Value::text(&vt)])),
                ("max_tx_value", max),
                (
                    "delegation_chain",
                    Value::Array(ctx.authority.chain.clone()),
                ),
                (
                    "proof",
                    Value::map([
                        ("type", Value::text("vc_presentation")),
                        (
                            "presentation",
                            Value::text(ctx.authority.presentation(&ctx.persona.did)),
                        ),
                    ]),
                ),
            ]),
        ),
    ]);
    let mut v = merge(base, template);
    if ctx.expired {
        let mut c = v.get("constraints").cloned().unwrap_or(Value::Map(vec![]));
        set(&mut c, "delivery_deadline", tdate_in(ctx.now, -VALIDITY_S));
        set(&mut v, "constraints", c);
    }
    sign_single(&mut v, ctx.persona)?;
    Ok(v)
}

/// Opening terms covering every mandatory Terms field (PROFILE G-47, G-48), from the Offer's
/// Terms Template when the harness knows the Offer.
fn baseline_terms(offer: Option<&Value>, now: Timestamp, expired: bool) -> Value {
    let tt = offer
        .and_then(|o| o.get("terms_template"))
        .cloned()
        .unwrap_or(Value::Map(vec![]));
    let vt = offer
        .and_then(|o| text(o, "value_type"))
        .unwrap_or("inference.text");
    let mut delivery = tt.get("delivery").cloned().unwrap_or(Value::Map(vec![]));
    set_default(&mut delivery, "method", Value::text("synchronous"));
    // Offers may use relative durations (G-12); Terms take dates only.
    for k in ["earliest", "latest"] {
        if matches!(delivery.get(k), Some(Value::Text(_))) {
            remove(&mut delivery, k);
        }
    }
    let mut settlement = tt
        .get("settlement")
        .cloned()
        .unwrap_or_else(|| Value::map([("rail", Value::text("ledger"))]));
    set_default(&mut settlement, "timing", Value::text("on_verification"));
    let expiration = if expired {
        tdate_in(now, -VALIDITY_S)
    } else {
        let horizon = now.add_secs(VALIDITY_S).unwrap_or(now);
        let not_after = offer
            .and_then(|o| o.get("validity_window"))
            .and_then(|w| w.get("not_after"))
            .and_then(|t| match t {
                Value::Tag(0, inner) => inner.as_text(),
                _ => None,
            })
            .and_then(|s| Timestamp::parse(s).ok());
        tdate_value(match not_after {
            Some(n) if n < horizon => n,
            _ => horizon,
        })
    };
    Value::map([
        (
            "price",
            tt.get("price").cloned().unwrap_or_else(|| price(10)),
        ),
        ("delivery", delivery),
        (
            "quality",
            tt.get("quality")
                .cloned()
                .unwrap_or_else(|| default_quality(vt)),
        ),
        (
            "dispute_resolution",
            Value::map([("method", Value::text("automated_arbitration"))]),
        ),
        ("settlement", settlement),
        (
            "verification",
            Value::map([("method", Value::text("attestation"))]),
        ),
        ("expiration", expiration),
    ])
}

fn complete_proposal(
    ctx: &mut BuildCtx<'_>,
    kind: &str,
    template: &Value,
    negotiation_id: Value,
    round: u64,
    base_terms: Value,
) -> Result<Value, BuildError> {
    let terms = merge(
        base_terms,
        template.get("terms").unwrap_or(&Value::Map(vec![])),
    );
    let mut v = merge(
        Value::map([
            ("type", Value::text(kind)),
            ("negotiation_id", negotiation_id),
            ("round", Value::from(round)),
            ("proposer", ctx.me()),
            ("timestamp", tdate_value(ctx.now)),
        ]),
        &without(template, &["terms"]),
    );
    set(&mut v, "terms", terms);
    if ctx.expired
        && let Some(Value::Map(_)) = v.get("terms")
    {
        let mut t = v.get("terms").cloned().unwrap_or(Value::Map(vec![]));
        set(&mut t, "expiration", tdate_in(ctx.now, -VALIDITY_S));
        set(&mut v, "terms", t);
    }
    sign_single(&mut v, ctx.persona)?;
    Ok(v)
}

fn complete_nim(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    let offer_ref = match template.get("offer_ref") {
        Some(v) => v.clone(),
        None => ctx
            .iut_offers
            .last()
            .and_then(|o| o.get("offer_id"))
            .cloned()
            .ok_or_else(|| missing("nim", "no offer_ref and no Offer of the IUT known"))?,
    };
    let negotiation_id = match template.get("negotiation_id") {
        Some(v) => v.clone(),
        None => ctx.uuid(ObjectType::Terms),
    };
    let offer = ctx.offer_for(offer_ref.as_bytes().and_then(|b| b.try_into().ok()));
    let base_terms = baseline_terms(offer, ctx.now, ctx.expired);
    let request_t = template
        .get("request")
        .cloned()
        .unwrap_or(Value::Map(vec![]));
    let request_t = match (text(&request_t, "value_type"), offer) {
        (None, Some(o)) => {
            let mut r = request_t.clone();
            if let Some(vt) = o.get("value_type") {
                set(&mut r, "value_type", vt.clone());
            }
            r
        }
        _ => request_t,
    };
    let request = if template
        .get("request")
        .and_then(|r| r.get("signature"))
        .is_some()
    {
        request_t
    } else {
        complete_request(ctx, &request_t)?
    };
    let proposal_t = template
        .get("proposal")
        .cloned()
        .unwrap_or(Value::Map(vec![]));
    let proposal = complete_proposal(
        ctx,
        "proposal",
        &proposal_t,
        negotiation_id.clone(),
        1,
        base_terms,
    )?;
    let mut v = merge(
        Value::map([
            ("type", Value::text("nim")),
            ("negotiation_id", negotiation_id),
            ("offer_ref", offer_ref),
            ("round_timeout_ms", Value::from(5_000u64)),
            ("max_rounds", Value::from(5u64)),
        ]),
        &without(template, &["request", "proposal"]),
    );
    set(&mut v, "request", request);
    set(&mut v, "proposal", proposal);
    Ok(v)
}

/// A proposal or counterproposal in the current session: the next round, the terms of the
/// last proposal with the template's changes.
fn complete_next_proposal(
    ctx: &mut BuildCtx<'_>,
    kind: &str,
    template: &Value,
) -> Result<Value, BuildError> {
    let (nid, round, base) = match ctx.session(template) {
        Some(s) => (
            Value::bytes(s.negotiation_id.to_vec()),
            s.round() + 1,
            s.current()
                .and_then(|p| p.get("terms"))
                .cloned()
                .unwrap_or(Value::Map(vec![])),
        ),
        None => (
            template
                .get("negotiation_id")
                .cloned()
                .ok_or_else(|| missing(kind, "no negotiation in progress"))?,
            1,
            Value::Map(vec![]),
        ),
    };
    let nid = template.get("negotiation_id").cloned().unwrap_or(nid);
    let round = template
        .get("round")
        .and_then(Value::as_u64)
        .unwrap_or(round);
    complete_proposal(ctx, kind, template, nid, round, base)
}

fn complete_acceptance(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    let s = ctx
        .session(template)
        .cloned()
        .ok_or_else(|| missing("acceptance", "no negotiation in progress"))?;
    let accepted = s
        .current()
        .cloned()
        .ok_or_else(|| missing("acceptance", "no proposal to accept"))?;
    let digest = proposal_digest(&accepted)
        .ok_or_else(|| missing("acceptance", "the proposal has no encoding"))?;
    let round = accepted.get("round").and_then(Value::as_u64).unwrap_or(1);
    let mut v = Value::map([
        ("type", Value::text("acceptance")),
        ("negotiation_id", Value::bytes(s.negotiation_id.to_vec())),
        ("round", Value::from(round)),
        ("accepted", Value::bytes(digest.to_vec())),
    ]);
    if let Some(input) = s.terms_signing_input(&accepted) {
        let mine = agent_signature(ctx.persona, &input);
        let own_proposal = text(&accepted, "proposer") == Some(ctx.persona.did.as_str());
        if own_proposal {
            // The proposer of the agreed proposal closes with every Terms signature
            // (PROFILE G-48).
            let mut sigs = s.terms_signatures.clone();
            sigs.insert(ctx.persona.did.clone(), mine);
            let ordered: Vec<Value> = s
                .participants
                .iter()
                .filter_map(|(d, _)| sigs.get(d).cloned())
                .collect();
            set(&mut v, "terms_signatures", Value::Array(ordered));
        } else {
            set(&mut v, "terms_signature", mine);
            if s.requester != ctx.persona.did {
                set(
                    &mut v,
                    "delegation_chain",
                    Value::Array(ctx.authority.chain.clone()),
                );
            }
        }
    }
    Ok(merge(v, template))
}

fn complete_rejection(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    let s = ctx.session(template);
    let nid = s
        .map(|s| Value::bytes(s.negotiation_id.to_vec()))
        .or_else(|| template.get("negotiation_id").cloned())
        .ok_or_else(|| missing("rejection", "no negotiation in progress"))?;
    let round = s.map(Session::round).unwrap_or(1).max(1);
    Ok(merge(
        Value::map([
            ("type", Value::text("rejection")),
            ("negotiation_id", nid),
            ("round", Value::from(round)),
            ("reason", Value::text("rejected by mtp-cert")),
        ]),
        template,
    ))
}

/// An `mtp-error` object (PROFILE G-16).
fn error_object(ctx: &mut BuildCtx<'_>, code: u16, transaction: Option<Value>) -> Value {
    let (severity, layer, description) = match ErrorCode::from_u16(code) {
        Some(c) => (
            c.severity() as u64,
            c.layer() as u64,
            c.description().to_owned(),
        ),
        None => (1, u64::from(code / 1000), format!("error {code:04}")),
    };
    let mut e = Value::map([
        ("error_id", ctx.uuid(ObjectType::Error)),
        ("code", Value::from(u64::from(code))),
        ("severity", Value::from(severity)),
        ("layer", Value::from(layer)),
        ("description", Value::text(description)),
        ("timestamp", tdate_value(ctx.now)),
    ]);
    if let Some(t) = transaction {
        set(&mut e, "transaction_id", t);
    }
    e
}

fn complete_termination(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    let nid = ctx
        .session(template)
        .map(|s| Value::bytes(s.negotiation_id.to_vec()))
        .or_else(|| template.get("negotiation_id").cloned())
        .ok_or_else(|| missing("termination", "no negotiation in progress"))?;
    let status = text(template, "status").unwrap_or("rejected").to_owned();
    let code = match status.as_str() {
        "timeout" => 3200,
        "exhausted" => 3201,
        "revoked" => 3101,
        _ => 3100,
    };
    let error = error_object(ctx, code, Some(nid.clone()));
    Ok(merge(
        Value::map([
            ("type", Value::text("termination")),
            ("negotiation_id", nid),
            ("status", Value::text(status)),
            ("error", error),
        ]),
        template,
    ))
}

fn complete_mandate_draft(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    let s = ctx
        .session(template)
        .cloned()
        .ok_or_else(|| missing("mandate_draft", "no negotiation in progress"))?;
    let terms = s.signed_terms.clone().ok_or_else(|| {
        missing(
            "mandate_draft",
            "no fully signed Terms yet (the closing Acceptance has not been exchanged)",
        )
    })?;
    let expiration = if ctx.expired {
        tdate_in(ctx.now, -VALIDITY_S)
    } else {
        s.terms_expiration()
            .unwrap_or_else(|| tdate_in(ctx.now, VALIDITY_S))
    };
    let attestations: Vec<Value> = s
        .participants
        .iter()
        .map(|(did, _)| {
            let chain = if *did == s.requester {
                s.request
                    .get("authority_attestation")
                    .and_then(|a| a.get("delegation_chain"))
                    .cloned()
            } else if *did == ctx.persona.did {
                Some(Value::Array(ctx.authority.chain.clone()))
            } else {
                s.chains.get(did).cloned()
            };
            Value::map([
                ("agent_id", Value::text(did)),
                (
                    "delegation_chain",
                    chain.unwrap_or(Value::Array(Vec::new())),
                ),
            ])
        })
        .collect();
    Ok(merge(
        Value::map([
            ("mandate_id", ctx.uuid(ObjectType::Mandate)),
            (
                "offer_refs",
                Value::Array(vec![Value::bytes(s.offer_ref.to_vec())]),
            ),
            (
                "request_refs",
                Value::Array(vec![Value::bytes(s.request_id.to_vec())]),
            ),
            ("terms", Value::Bytes(terms)),
            ("delegation_attestations", Value::Array(attestations)),
            ("commitment_timestamp", tdate_value(ctx.now)),
            ("expiration", expiration),
        ]),
        template,
    ))
}

/// The draft a Mandate signature or the final Mandate is about.
fn draft_of(ctx: &BuildCtx<'_>, template: &Value) -> Option<Value> {
    if let Some((t, body, _)) = ctx.last_received
        && t == "mandate_draft"
    {
        return Some(body.clone());
    }
    ctx.session(template).and_then(|s| s.draft.clone())
}

fn complete_mandate_signature(
    ctx: &mut BuildCtx<'_>,
    template: &Value,
) -> Result<Value, BuildError> {
    let draft = draft_of(ctx, template)
        .ok_or_else(|| missing("mandate_signature", "no mandate_draft received"))?;
    let input =
        cbor::to_vec(&without(&draft, &["signatures"])).map_err(|e| BuildError::Encode {
            frame: "mandate_draft".into(),
            reason: e.to_string(),
        })?;
    Ok(merge(
        Value::map([
            (
                "mandate_id",
                draft.get("mandate_id").cloned().unwrap_or(Value::Null),
            ),
            ("signature", agent_signature(ctx.persona, &input)),
        ]),
        template,
    ))
}

fn complete_mandate(ctx: &mut BuildCtx<'_>, template: &Value) -> Result<Value, BuildError> {
    let s = ctx.session(template).cloned();
    let draft = s
        .as_ref()
        .and_then(|s| s.draft.clone())
        .ok_or_else(|| missing("mandate", "no mandate_draft sent"))?;
    let input =
        cbor::to_vec(&without(&draft, &["signatures"])).map_err(|e| BuildError::Encode {
            frame: "mandate".into(),
            reason: e.to_string(),
        })?;
    let mut sigs = s
        .as_ref()
        .map(|s| s.mandate_signatures.clone())
        .unwrap_or_default();
    sigs.insert(
        ctx.persona.did.clone(),
        agent_signature(ctx.persona, &input),
    );
    let ordered: Vec<Value> = s
        .map(|s| {
            s.participants
                .iter()
                .filter_map(|(d, _)| sigs.get(d).cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut v = merge(draft, template);
    set(&mut v, "signatures", Value::Array(ordered));
    Ok(v)
}

/// Completes `template` into the body of a `frame` message (unsigned unless the frame has
/// nested signed objects, which are signed here). The top-level signature is added by
/// [`finish`].
pub fn complete(
    frame: &str,
    template: &Value,
    ctx: &mut BuildCtx<'_>,
) -> Result<Value, BuildError> {
    let now = ctx.now;
    let transaction = ctx
        .sessions
        .current()
        .map(|s| Value::bytes(s.negotiation_id.to_vec()));
    Ok(match frame {
        "offer" => {
            let mut v = complete_offer(ctx, template)?;
            remove(&mut v, "signature");
            v
        }
        "request" => {
            let mut v = complete_request(ctx, template)?;
            remove(&mut v, "signature");
            v
        }
        "nim" => complete_nim(ctx, template)?,
        "proposal" | "counterproposal" => {
            let mut v = complete_next_proposal(ctx, frame, template)?;
            remove(&mut v, "signature");
            v
        }
        "acceptance" => complete_acceptance(ctx, template)?,
        "rejection" => complete_rejection(ctx, template)?,
        "termination" => complete_termination(ctx, template)?,
        "mandate_draft" => complete_mandate_draft(ctx, template)?,
        "mandate_signature" => complete_mandate_signature(ctx, template)?,
        "mandate" => complete_mandate(ctx, template)?,
        "notification" => {
            let mut base = Value::map([
                ("type", Value::text("error")),
                ("timestamp", tdate_value(now)),
            ]);
            if let Some(t) = transaction.clone() {
                set(&mut base, "transaction_id", t);
            }
            merge(base, template)
        }
        "error" => {
            let code = template
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(103);
            merge(error_object(ctx, code, transaction), template)
        }
        "settlement_notice" => merge(
            Value::map([
                ("type", Value::text("settlement_initiated")),
                (
                    "settlement_id",
                    Value::text(format!(
                        "mtp-cert-{}",
                        hex::encode(ctx.persona.random::<8>())
                    )),
                ),
                ("amount", price(10)),
                ("timestamp", tdate_value(now)),
            ]),
            template,
        ),
        "delivery" => merge(
            Value::map([
                ("content_type", Value::text("text/plain")),
                ("payload", Value::bytes(b"delivered by mtp-cert".to_vec())),
                ("timestamp", tdate_value(now)),
            ]),
            template,
        ),
        "delivery_request" => merge(Value::map([("timestamp", tdate_value(now))]), template),
        "receipt" => merge(
            Value::map([
                ("receipt_id", ctx.uuid(ObjectType::Receipt)),
                ("outcome", Value::text("fulfilled")),
                (
                    "verification",
                    Value::map([
                        ("method", Value::text("attestation")),
                        ("evidence", Value::Map(vec![])),
                    ]),
                ),
                ("timestamp", tdate_value(now)),
            ]),
            template,
        ),
        "manifest" => merge(
            Value::map([
                ("manifest_id", ctx.uuid(ObjectType::Manifest)),
                ("agent_id", ctx.me()),
                ("manifest_version", Value::text("1.0.0")),
                ("revision", Value::from(1u64)),
                (
                    "value_types",
                    Value::Array(vec![Value::text("inference.text")]),
                ),
                ("offers", Value::Array(vec![])),
                ("capacity", Value::Map(vec![])),
                ("jurisdictions", Value::Map(vec![])),
                ("quality", Value::Map(vec![])),
                ("payment_rails", Value::Array(vec![Value::text("ledger")])),
                ("freshness", tdate_value(now)),
            ]),
            template,
        ),
        "offer_revocation" => {
            let offer_id = ctx
                .own_offer
                .and_then(|o| o.get("offer_id"))
                .cloned()
                .unwrap_or(Value::Null);
            merge(
                Value::map([
                    ("type", Value::text("offer_revocation")),
                    ("offer_id", offer_id),
                    ("agent_id", ctx.me()),
                    ("revoked_at", tdate_value(now)),
                ]),
                template,
            )
        }
        // PROFILE G-32: the persona's version history, optionally rotating its key.
        "did_resolution_response" => {
            super::registry::complete_response(ctx.persona, template, now)?
        }
        "did_resolution_request" => {
            merge(Value::map([("did", Value::text(ctx.iut_did))]), template)
        }
        "index_query" => merge(
            Value::map([("value_type", Value::text("inference.text"))]),
            template,
        ),
        "ack" => {
            let reference = ctx
                .last_received
                .map(|(_, _, h)| Value::bytes(h.to_vec()))
                .unwrap_or_else(|| Value::bytes(vec![0; 32]));
            merge(
                Value::map([("ok", Value::Bool(true)), ("ref", reference)]),
                template,
            )
        }
        _ => template.clone(),
    })
}

/// Adds the top-level signature of a single-signed frame (PROFILE G-02). Frames without
/// one (Mandate drafts, acks, queries, ...) are left unchanged.
pub fn finish(frame: &str, body: &mut Value, persona: &Persona) -> Result<(), BuildError> {
    if SINGLE_SIGNED.contains(&frame) {
        sign_single(body, persona)?;
    }
    Ok(())
}

/// The field naming the object's own MTP-UUID (`malformed_uuid` / `reused_uuid` default).
pub fn id_field(frame: &str) -> Option<&'static str> {
    Some(match frame {
        "offer" | "offer_revocation" => "offer_id",
        "request" => "request_id",
        "nim" | "proposal" | "counterproposal" | "acceptance" | "rejection" | "termination" => {
            "negotiation_id"
        }
        "mandate_draft" | "mandate" | "mandate_signature" | "settlement_notice" | "delivery"
        | "delivery_request" | "attribution_record" => "mandate_id",
        "receipt" => "receipt_id",
        "manifest" => "manifest_id",
        "error" => "error_id",
        "notification" => "subject_ref",
        _ => return None,
    })
}

/// A malformed MTP-UUID (SPEC IX): a well-sized id with version nibble 0 (as the SPEC's
/// example identifiers, PROFILE G-11).
pub fn malformed_uuid(seed: &[u8]) -> Value {
    let mut b = sha256(seed);
    b[0] &= 0x0f;
    Value::Bytes(b.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::persona::Endpoints;

    fn persona() -> Persona {
        Persona::derive(
            42,
            "counterparty",
            &Endpoints {
                sync_port: 7000,
                nats: None,
            },
        )
        .unwrap()
    }

    fn not_after(v: &Value) -> Timestamp {
        let t = v
            .get("validity_window")
            .and_then(|w| w.get("not_after"))
            .cloned()
            .unwrap();
        match t {
            Value::Tag(0, inner) => Timestamp::parse(inner.as_text().unwrap()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn offers_are_completed_signed_and_expired_on_request() {
        let mut p = persona();
        let auth = Authority::single("did:mtp:principal", &p.did.clone(), "{}");
        let sessions = Sessions::default();
        let now = crate::live::values::now();
        for expired in [false, true] {
            let mut ctx = BuildCtx {
                persona: &mut p,
                authority: &auth,
                iut_did: "did:mtp:iut",
                iut_offers: &[],
                own_offer: None,
                sessions: &sessions,
                last_received: None,
                now,
                expired,
            };
            let mut o = complete("offer", &Value::Map(vec![]), &mut ctx).unwrap();
            finish("offer", &mut o, ctx.persona).unwrap();
            let offer = <mtp_protocol::primitives::Offer as mtp_protocol::primitives::CborObject>::from_value(&o)
                .unwrap();
            use mtp_protocol::primitives::SingleSigned;
            offer
                .verify_signature(&ctx.persona.signing.public_key())
                .unwrap();
            assert_eq!(not_after(&o) < now, expired);
        }
    }

    #[test]
    fn a_persona_is_a_function_of_the_seed_and_its_name() {
        let a = persona();
        let b = persona();
        assert_eq!(a.did, b.did);
        assert_eq!(a.tls.fingerprint, b.tls.fingerprint);
        let c = Persona::derive(
            43,
            "counterparty",
            &Endpoints {
                sync_port: 7000,
                nats: None,
            },
        )
        .unwrap();
        assert_ne!(a.did, c.did);
    }
}
