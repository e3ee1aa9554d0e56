//! What the harness remembers of each negotiation and commitment it takes part in, so that
//! it can complete its messages as a conforming peer would (PROFILE G-10, G-48): the NIM,
//! the participants, every proposal in order (the negotiation log), the Terms signatures,
//! the fully signed Terms, the Mandate draft and its signatures.
//!
//! Sessions are fed with every frame the harness sends and every frame it receives, on any
//! channel, so a scenario need not `expect` a message for the harness to know about it.

use std::collections::BTreeMap;

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::sha256;
use mtp_protocol::primitives::{CborObject, Terms};

use super::values::{bytes32, get, text, without};

/// Keys of a Terms map that come from the session, never from a proposal (PROFILE G-48).
pub const SESSION_KEYS: [&str; 6] = [
    "terms_id",
    "participants",
    "offer_ref",
    "request_ref",
    "negotiation_log",
    "signatures",
];

/// One negotiation (and its commitment) the harness takes part in.
#[derive(Clone, Debug)]
pub struct Session {
    pub negotiation_id: [u8; 32],
    /// `(agent_id, role)` in Terms order (PROFILE G-10).
    pub participants: Vec<(String, String)>,
    pub offer_ref: [u8; 32],
    pub request_id: [u8; 32],
    /// The Request's Agent (the requester).
    pub requester: String,
    /// The Request (as in the NIM).
    pub request: Value,
    pub round_timeout_ms: u64,
    pub max_rounds: u64,
    /// Every proposal and counterproposal, in order (PROFILE G-10 `negotiation_log`).
    pub log: Vec<Value>,
    /// Terms signatures by agent (`terms_signature` / `terms_signatures`, PROFILE G-48).
    pub terms_signatures: BTreeMap<String, Value>,
    /// Delegation chains sent with Acceptances (PROFILE G-48).
    pub chains: BTreeMap<String, Value>,
    /// The fully signed Terms, once the closing Acceptance went either way.
    pub signed_terms: Option<Vec<u8>>,
    /// The last `mandate_draft` (sent or received).
    pub draft: Option<Value>,
    /// Mandate signatures by agent.
    pub mandate_signatures: BTreeMap<String, Value>,
    /// The negotiation ended (termination, rejection, or closing Acceptance).
    pub closed: bool,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            negotiation_id: [0; 32],
            participants: Vec::new(),
            offer_ref: [0; 32],
            request_id: [0; 32],
            requester: String::new(),
            request: Value::Null,
            round_timeout_ms: 0,
            max_rounds: 0,
            log: Vec::new(),
            terms_signatures: BTreeMap::new(),
            chains: BTreeMap::new(),
            signed_terms: None,
            draft: None,
            mandate_signatures: BTreeMap::new(),
            closed: false,
        }
    }
}

impl Session {
    /// The last proposal or counterproposal.
    pub fn current(&self) -> Option<&Value> {
        self.log.last()
    }

    /// The round of the last proposal (0 before any).
    pub fn round(&self) -> u64 {
        self.current()
            .and_then(|p| p.get("round"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// The Terms built from `accepted` (PROFILE G-48): the proposal's terms without the
    /// session keys, plus `terms_id`, `participants`, `offer_ref`, `request_ref` and the
    /// negotiation log; no signatures. Normalised through the protocol's Terms model so
    /// that every side gets the same bytes.
    pub fn terms_for(&self, accepted: &Value) -> Value {
        let proposed = accepted.get("terms").cloned().unwrap_or(Value::Map(vec![]));
        let Value::Map(mut m) = without(&proposed, &SESSION_KEYS) else {
            return Value::Map(vec![]);
        };
        m.push((
            Value::text("terms_id"),
            Value::bytes(self.negotiation_id.to_vec()),
        ));
        m.push((Value::text("participants"), self.participants_value()));
        m.push((
            Value::text("offer_ref"),
            Value::bytes(self.offer_ref.to_vec()),
        ));
        m.push((
            Value::text("request_ref"),
            Value::bytes(self.request_id.to_vec()),
        ));
        m.push((
            Value::text("negotiation_log"),
            Value::Array(self.log.clone()),
        ));
        let raw = Value::Map(m);
        // The protocol model drops nothing (open maps, PROFILE G-26) but normalises what a
        // conforming encoder normalises; it needs signatures to parse.
        let mut with_sigs = raw.clone();
        let placeholders = self
            .participants
            .iter()
            .map(|(d, _)| {
                Value::map([
                    ("agent", Value::text(d)),
                    ("algorithm", Value::text("ML-DSA-65")),
                    ("value", Value::bytes(vec![0])),
                ])
            })
            .collect();
        super::values::set(&mut with_sigs, "signatures", Value::Array(placeholders));
        match Terms::from_value(&with_sigs) {
            Ok(t) => without(&t.to_value(), &["signatures"]),
            Err(_) => raw,
        }
    }

    /// Terms signing input (PROFILE G-02): det-CBOR of the Terms without `signatures`.
    pub fn terms_signing_input(&self, accepted: &Value) -> Option<Vec<u8>> {
        cbor::to_vec(&self.terms_for(accepted)).ok()
    }

    /// The participants as `participant-entry` values.
    pub fn participants_value(&self) -> Value {
        Value::Array(
            self.participants
                .iter()
                .map(|(d, r)| Value::map([("agent_id", Value::text(d)), ("role", Value::text(r))]))
                .collect(),
        )
    }

    /// The fully signed Terms bytes for `accepted` when every participant's signature is
    /// known.
    pub fn assemble_terms(&self, accepted: &Value) -> Option<Vec<u8>> {
        let mut t = self.terms_for(accepted);
        let sigs: Option<Vec<Value>> = self
            .participants
            .iter()
            .map(|(d, _)| self.terms_signatures.get(d).cloned())
            .collect();
        super::values::set(&mut t, "signatures", Value::Array(sigs?));
        cbor::to_vec(&t).ok()
    }

    /// The `terms.expiration` of the agreed Terms.
    pub fn terms_expiration(&self) -> Option<Value> {
        let bytes = self.signed_terms.as_ref()?;
        let t = cbor::from_slice(bytes).ok()?;
        t.get("expiration").cloned()
    }
}

/// The SHA-256 of a proposal's deterministic CBOR (`acceptance.accepted`, PROFILE G-10).
pub fn proposal_digest(p: &Value) -> Option<[u8; 32]> {
    cbor::to_vec(p).ok().map(|b| sha256(&b))
}

/// All sessions of one executor.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    list: Vec<Session>,
    /// Index of the session touched last.
    last: Option<usize>,
}

impl Sessions {
    /// A copy (builders and the oracle work on a snapshot).
    pub fn snapshot(&self) -> Sessions {
        self.clone()
    }

    /// The session a body refers to (see [`Sessions::for_body_mut`]), copied.
    pub fn for_body(mut self, body: &Value) -> Option<Session> {
        self.for_body_mut(body).cloned()
    }

    pub fn get(&self, id: &[u8; 32]) -> Option<&Session> {
        self.list.iter().find(|s| &s.negotiation_id == id)
    }

    pub fn get_mut(&mut self, id: &[u8; 32]) -> Option<&mut Session> {
        let i = self.list.iter().position(|s| &s.negotiation_id == id)?;
        self.last = Some(i);
        self.list.get_mut(i)
    }

    /// The session touched last.
    pub fn current(&self) -> Option<&Session> {
        self.last.and_then(|i| self.list.get(i))
    }

    pub fn current_mut(&mut self) -> Option<&mut Session> {
        self.last.and_then(|i| self.list.get_mut(i))
    }

    /// The session a message body refers to (`negotiation_id`, a Mandate draft's Terms),
    /// else the current one.
    pub fn for_body_mut(&mut self, body: &Value) -> Option<&mut Session> {
        if let Some(id) = bytes32(body, "negotiation_id")
            && self.get(&id).is_some()
        {
            return self.get_mut(&id);
        }
        if let Some(id) = mandate_terms_id(body)
            && self.get(&id).is_some()
        {
            return self.get_mut(&id);
        }
        if let Some(mid) = bytes32(body, "mandate_id")
            && let Some(i) = self.list.iter().position(|s| {
                s.draft
                    .as_ref()
                    .and_then(|d| bytes32(d, "mandate_id"))
                    .is_some_and(|d| d == mid)
            })
        {
            self.last = Some(i);
            return self.list.get_mut(i);
        }
        self.current_mut()
    }

    /// Records a frame that travelled (`sent_by` = the DID of its sender; `receiver` = the
    /// other end).
    pub fn observe(&mut self, frame_type: &str, body: &Value, sent_by: &str, receiver: &str) {
        match frame_type {
            "nim" => self.on_nim(body, receiver),
            "proposal" | "counterproposal" => {
                if let Some(s) = self.for_body_mut(body) {
                    s.log.push(body.clone());
                }
            }
            "acceptance" => {
                if let Some(s) = self.for_body_mut(body) {
                    if let Some(sig) = body.get("terms_signature") {
                        let agent = text(sig, "agent").unwrap_or(sent_by).to_owned();
                        s.terms_signatures.insert(agent, sig.clone());
                    }
                    if let Some(chain) = body.get("delegation_chain") {
                        s.chains.insert(sent_by.to_owned(), chain.clone());
                    }
                    if let Some(Value::Array(all)) = body.get("terms_signatures") {
                        for sig in all {
                            if let Some(agent) = text(sig, "agent") {
                                s.terms_signatures.insert(agent.to_owned(), sig.clone());
                            }
                        }
                        if let Some(accepted) = s.current().cloned() {
                            s.signed_terms = s.assemble_terms(&accepted);
                        }
                        s.closed = true;
                    }
                }
            }
            "rejection" | "termination" => {
                if let Some(s) = self.for_body_mut(body) {
                    s.closed = true;
                }
            }
            "mandate_draft" => {
                if let Some(s) = self.for_body_mut(body) {
                    s.draft = Some(body.clone());
                    s.mandate_signatures.clear();
                }
            }
            "mandate_signature" => {
                if let Some(s) = self.for_body_mut(body)
                    && let Some(sig) = body.get("signature")
                {
                    let agent = text(sig, "agent").unwrap_or(sent_by).to_owned();
                    s.mandate_signatures.insert(agent, sig.clone());
                }
            }
            "mandate" => {
                if let Some(s) = self.for_body_mut(body)
                    && let Some(Value::Array(sigs)) = body.get("signatures")
                {
                    for sig in sigs {
                        if let Some(agent) = text(sig, "agent") {
                            s.mandate_signatures.insert(agent.to_owned(), sig.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_nim(&mut self, nim: &Value, receiver: &str) {
        let Some(id) = bytes32(nim, "negotiation_id") else {
            return;
        };
        let request = nim.get("request").cloned().unwrap_or(Value::Null);
        let requester = text(&request, "agent_id").unwrap_or_default().to_owned();
        let participants = match nim.get("participants") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|p| {
                    Some((text(p, "agent_id")?.to_owned(), text(p, "role")?.to_owned()))
                })
                .collect(),
            _ => vec![
                (receiver.to_owned(), "provider".to_owned()),
                (requester.clone(), "requester".to_owned()),
            ],
        };
        let s = Session {
            negotiation_id: id,
            participants,
            offer_ref: bytes32(nim, "offer_ref").unwrap_or([0; 32]),
            request_id: bytes32(&request, "request_id").unwrap_or([0; 32]),
            requester,
            round_timeout_ms: get(nim, "round_timeout_ms")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            max_rounds: get(nim, "max_rounds").and_then(Value::as_u64).unwrap_or(0),
            request,
            log: nim.get("proposal").cloned().into_iter().collect(),
            ..Session::default()
        };
        match self.list.iter().position(|x| x.negotiation_id == id) {
            Some(i) => {
                self.list[i] = s;
                self.last = Some(i);
            }
            None => {
                self.list.push(s);
                self.last = Some(self.list.len() - 1);
            }
        }
    }
}

/// The `terms_id` inside a Mandate (draft)'s embedded Terms bytes.
pub fn mandate_terms_id(body: &Value) -> Option<[u8; 32]> {
    let bytes = body.get("terms")?.as_bytes()?;
    let t = cbor::from_slice(bytes).ok()?;
    bytes32(&t, "terms_id")
}

/// Authority in another price unit (issue C-1; PROFILE G-03, G-33, G-44, G-45): the
/// Principal's ADC for `subject` over every category up to the usual ceiling, with
/// `maxTransactionValue` denominated in `unit` instead of USD (an authority never compares
/// amounts across units, so Terms priced in EUR or `MTP_COMPUTE_CREDIT` need an authority in
/// that unit). The credential shares the revocation entry of a USD one issued alongside it,
/// so revoking the subject revokes both.
pub fn delegate_in_unit(
    principal: &mut super::persona::Principal,
    subject: &str,
    unit: &str,
    now: mtp_protocol::time::Timestamp,
) -> Result<super::persona::Issued, String> {
    use mtp_protocol::identity::credential::{self, Credential, ProofOptions};
    use mtp_protocol::identity::delegation::{AuthorityDelegation, MaxTransactionValue};
    use mtp_protocol::verification::Decimal;

    let usd = principal
        .delegate(
            subject,
            &super::persona::ALL_CATEGORIES,
            super::persona::DELEGATED_MAX_USD,
            now,
        )
        .map_err(|e| e.to_string())?;
    let parsed = Credential::from_json(&usd.json).map_err(|e| e.to_string())?;
    let mut adc = AuthorityDelegation::from_credential(&parsed).map_err(|e| e.to_string())?;
    adc.max_transaction_value =
        MaxTransactionValue::new(Decimal::from_int(super::persona::DELEGATED_MAX_USD), unit)
            .map_err(|e| format!("authority in {unit}: {e}"))?;
    adc.id = adc.id.map(|id| format!("{id}:{}", unit.replace(':', "-")));
    let unsigned = adc.to_unsigned_credential().map_err(|e| e.to_string())?;
    let signed = credential::sign(
        &unsigned,
        &principal.persona.signing,
        &ProofOptions {
            verification_method: principal.persona.key_id.clone(),
            created: now,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(super::persona::Issued {
        subject: subject.to_owned(),
        json: signed.to_json(),
        status_index: usd.status_index,
    })
}
