//! Audit-trail vectors (SPEC IV-B, SPEC X-C, BIND VI-E; PROFILE G-42), folder `audit/`:
//! the hash-chained trail of the shared world's fulfilled transaction as an RFC 8742 CBOR
//! sequence with its RFC 6962 Merkle root, and broken trails with the first failure a
//! verifier must report (entry index, fault, code).

use serde_json::{Value as Json, json};

use mtp_protocol::audit::{
    AuditEntry, AuditError, AuditRecord, AuditTrail, SignatureCheck, merkle_root,
};
use mtp_protocol::cbor::{self, Value, mutate};
use mtp_protocol::crypto::sha256;
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::state_machine::{ReceiptOutcome, TxEvent, TxState};

use super::catalogue::catalogue;
use super::doc::{VectorDoc, files_of};
use super::world::{ts, world};
use super::{At, VectorError, VectorFile, ensure, input_error};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "audit";

const REQS: &[&str] = &[
    "BIND-VI-E-02",
    "BIND-VI-E-I01",
    "SPEC-IV-B-03",
    "SPEC-X-C-01",
];

/// The valid trail: the world's transaction from initiation to fulfilment.
fn trail() -> Result<AuditTrail, VectorError> {
    let v = "audit/trail";
    let w = world()?;
    let cat = catalogue()?;
    let agents = vec![
        w.provider.did_str().to_owned(),
        w.requester.did_str().to_owned(),
    ];
    let mut t = AuditTrail::new(*cat.terms_id.as_bytes());
    let hash_of = |name: &str| -> Result<[u8; 32], VectorError> {
        Ok(sha256(&cbor::to_vec(&cat.get(name)?.value).at(v)?))
    };
    t.record_transition(
        TxState::Initiated,
        TxState::Negotiating,
        &TxEvent::NegotiationInitiated,
        &agents,
        ts(3700),
    )
    .at(v)?;
    t.record_message(true, hash_of("nim")?, &agents, ts(3700))
        .at(v)?;
    t.record_message(false, hash_of("counterproposal")?, &agents, ts(3710))
        .at(v)?;
    t.record_message(true, hash_of("acceptance")?, &agents, ts(3720))
        .at(v)?;
    t.record_signature_check(*cat.terms_id.as_bytes(), true, &agents, ts(3730))
        .at(v)?;
    t.record_transition(
        TxState::Negotiating,
        TxState::Committed,
        &TxEvent::MandateFullySigned,
        &agents,
        ts(4000),
    )
    .at(v)?;
    t.record_transition(
        TxState::Committed,
        TxState::Settling,
        &TxEvent::MandateActivated,
        &agents,
        ts(4100),
    )
    .at(v)?;
    t.append(
        AuditRecord {
            event: "settlement_operation".into(),
            agents: agents.clone(),
            settlement_op: Some("initiate".into()),
            extensions: vec![
                ("attempt".into(), Value::Integer(1)),
                ("result".into(), Value::Integer(5200)),
            ],
            ..AuditRecord::default()
        },
        ts(4200),
    )
    .at(v)?;
    t.record_error(ErrorCode::RailTemporarilyUnavailable, &agents, ts(4200))
        .at(v)?;
    t.append(
        AuditRecord {
            event: "settlement_operation".into(),
            agents: agents.clone(),
            settlement_op: Some("initiate".into()),
            extensions: vec![
                ("attempt".into(), Value::Integer(2)),
                ("result".into(), Value::text("ok")),
            ],
            ..AuditRecord::default()
        },
        ts(4260),
    )
    .at(v)?;
    t.record_settlement("confirm", &agents, ts(4300)).at(v)?;
    t.record_transition(
        TxState::Settling,
        TxState::Verifying,
        &TxEvent::SettlementConfirmed,
        &agents,
        ts(5000),
    )
    .at(v)?;
    t.record_message(false, hash_of("delivery")?, &agents, ts(5200))
        .at(v)?;
    t.append(
        AuditRecord {
            event: "signature_checked".into(),
            agents: agents.clone(),
            signature_check: Some(SignatureCheck::new(*cat.receipt_id.as_bytes(), true)),
            ..AuditRecord::default()
        },
        ts(8000),
    )
    .at(v)?;
    t.record_transition(
        TxState::Verifying,
        TxState::Fulfilled,
        &TxEvent::ReceiptIssued {
            outcome: ReceiptOutcome::Fulfilled,
        },
        &agents,
        ts(8000),
    )
    .at(v)?;
    Ok(t)
}

fn items(entries: &[AuditEntry], vector: &str) -> Result<Vec<Vec<u8>>, VectorError> {
    entries.iter().map(|e| e.to_cbor().at(vector)).collect()
}

fn entries_json(entries: &[AuditEntry], vector: &str) -> Result<Json, VectorError> {
    let mut out = Vec::new();
    for e in entries {
        out.push(json!({
            "seq": e.seq,
            "event": e.event,
            "from_state": e.from_state.map(|s| s.name()),
            "to_state": e.to_state.map(|s| s.name()),
            "error_code": e.error_code,
            "prev_hash": hex::encode(e.prev_hash),
            "hash": hex::encode(e.hash),
            "hash_input_sha256": hex::encode(sha256(&cbor::to_vec(&e.to_value(false)).at(vector)?)),
            "cbor": hex::encode(e.to_cbor().at(vector)?),
        }));
    }
    Ok(Json::Array(out))
}

/// Rehashes entries from `from` on so that every later link is consistent again.
fn rehash_from(entries: &mut [AuditEntry], from: usize) -> Result<(), VectorError> {
    for i in from..entries.len() {
        if i > 0 {
            entries[i].prev_hash = entries[i - 1].hash;
        }
        entries[i].hash = entries[i].compute_hash().at("audit/rehash")?;
    }
    Ok(())
}

fn fault_json(e: &AuditError) -> Json {
    match e {
        AuditError::BrokenLink { seq, index, kind } => {
            json!({"index": index, "seq": seq, "fault": format!("{kind:?}"), "code": e.code().as_u16()})
        }
        AuditError::InvalidTransition { seq, index, reason } => {
            json!({"index": index, "seq": seq, "fault": "InvalidTransition", "reason": reason, "code": e.code().as_u16()})
        }
        AuditError::Decode { index, error } => {
            json!({"index": index, "fault": "Decode", "reason": error.to_string(), "code": e.code().as_u16()})
        }
        other => json!({"fault": other.to_string(), "code": other.code().as_u16()}),
    }
}

/// The first failure of a trail: import, chain, replay.
fn check(bytes: &[u8]) -> Result<TxState, AuditError> {
    let entries = AuditTrail::from_cbor_sequence(bytes)?;
    AuditTrail::verify(&entries)?;
    AuditTrail::replay(&entries)
}

fn broken(
    name: &str,
    description: &str,
    items: Vec<Vec<u8>>,
    expected_index: Option<usize>,
    expected_code: u16,
    reqs: &[&'static str],
) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let bytes: Vec<u8> = items.concat();
    let err = match check(&bytes) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "the broken trail verifies".into(),
            });
        }
        Err(e) => e,
    };
    let fault = fault_json(&err);
    ensure(&id, err.code().as_u16() == expected_code, || {
        format!("code {} ({err}), expected {expected_code}", err.code())
    })?;
    if let Some(i) = expected_index {
        ensure(
            &id,
            fault.get("index").and_then(Json::as_u64) == Some(i as u64),
            || format!("first failure {fault}, expected index {i}"),
        )?;
    }
    VectorDoc::new(id, &[REQS, reqs].concat(), description)
        .input("base", format!("{FAMILY}/trail"))
        .input("items", items.len())
        .expected("valid", false)
        .expected("first_failure", fault)
        .expected("code", err.code().as_u16())
        .sequence(&items)
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let v = "audit/trail";
    let t = trail()?;
    let entries = t.entries().to_vec();
    let good = items(&entries, v)?;
    let bytes: Vec<u8> = good.concat();
    let final_state = check(&bytes).map_err(|e| input_error(v, e.to_string()))?;
    ensure(v, final_state == TxState::Fulfilled, || {
        format!("replay ends in {final_state:?}")
    })?;
    let root = t.merkle_root();
    let hashes: Vec<[u8; 32]> = entries.iter().map(|e| e.hash).collect();
    let mut docs = vec![
        VectorDoc::new(
            v,
            &[
                REQS,
                &["SPEC-IV-01", "SPEC-IV-B-01", "SPEC-IV-B-02", "SPEC-X-C-02"],
            ]
            .concat(),
            "The audit trail of the world's fulfilled transaction (PROFILE G-42): entry n \
             has seq n, prev_hash = hash of entry n-1 (32 zero bytes for the genesis entry) and \
             hash = SHA-256(det-CBOR(entry without hash)); transitions carry from_state, \
             to_state and the G-18 event name; extension keys (attempt, result) are hashed too \
             (PROFILE G-26). The .cbor file is the RFC 8742 CBOR sequence export; \
             merkle_root is the RFC 6962 tree head over the entry hashes.",
        )
        .input("transaction_id", hex::encode(t.transaction_id()))
        .expected("entries", entries_json(&entries, v)?)
        .expected("valid", true)
        .expected("final_state", final_state.name())
        .expected("merkle_root", hex::encode(root))
        .sequence(&good)?,
    ];

    // An entry changed without recomputing its hash.
    let mut e = entries.clone();
    if let Some(sc) = e.get_mut(4).and_then(|x| x.signature_check.as_mut()) {
        sc.result = false;
    }
    docs.push(broken(
        "broken-modified-entry",
        "audit/trail with entry 4's signature_check.result changed to false and nothing \
         rehashed: entry 4's hash no longer matches; first failure at index 4, 0108.",
        items(&e, v)?,
        Some(4),
        108,
        &[],
    )?);

    // The same change with entry 4 rehashed: entry 5's prev_hash breaks.
    let mut e = entries.clone();
    if let Some(sc) = e.get_mut(4).and_then(|x| x.signature_check.as_mut()) {
        sc.result = false;
    }
    if let Some(x) = e.get_mut(4) {
        x.hash = x.compute_hash().at(v)?;
    }
    docs.push(broken(
        "broken-rehashed-entry",
        "audit/trail with entry 4 changed and rehashed: entry 5's prev_hash no longer names it; \
         first failure at index 5, 0108.",
        items(&e, v)?,
        Some(5),
        108,
        &[],
    )?);

    // An entry removed.
    let mut e = entries.clone();
    e.remove(7);
    docs.push(broken(
        "broken-removed-entry",
        "audit/trail without entry 7: entry 8 now sits at position 7 (seq gap); first failure \
         at index 7, 0108.",
        items(&e, v)?,
        Some(7),
        108,
        &[],
    )?);

    // Two entries swapped.
    let mut e = entries.clone();
    e.swap(7, 8);
    docs.push(broken(
        "broken-reordered",
        "audit/trail with entries 7 and 8 swapped: first failure at index 7 (seq 8 found), 0108.",
        items(&e, v)?,
        Some(7),
        108,
        &[],
    )?);

    // Genesis prev_hash not zero, everything rehashed consistently.
    let mut e = entries.clone();
    if let Some(x) = e.get_mut(0) {
        x.prev_hash = [0x11; 32];
    }
    rehash_from(&mut e, 0)?;
    docs.push(broken(
        "broken-genesis",
        "audit/trail whose genesis prev_hash is 11..11 instead of 32 zero bytes (the rest \
         rehashed consistently): first failure at index 0, 0108.",
        items(&e, v)?,
        Some(0),
        108,
        &[],
    )?);

    // An entry of another transaction spliced in (chained consistently).
    let mut e = entries.clone();
    if let Some(x) = e.get_mut(6) {
        x.transaction_id = [0x15; 32];
    }
    rehash_from(&mut e, 6)?;
    docs.push(broken(
        "broken-foreign-entry",
        "audit/trail whose entry 6 names another transaction (chain rehashed consistently): \
         first failure at index 6, 0108.",
        items(&e, v)?,
        Some(6),
        108,
        &[],
    )?);

    // A consistent chain that is not a run of the state machine.
    let mut e = entries.clone();
    if let Some(x) = e.get_mut(5) {
        x.to_state = Some(TxState::Settling);
        x.event = "settlement_confirmed".into();
    }
    rehash_from(&mut e, 5)?;
    docs.push(broken(
        "invalid-transition",
        "audit/trail whose entry 5 records negotiating -> settling on settlement_confirmed, \
         rehashed so the chain verifies: replaying the transitions through the state machine \
         fails at index 5 with 0105 (SPEC-IV-01).",
        items(&e, v)?,
        Some(5),
        105,
        &["SPEC-IV-01", "SPEC-IV-B-01"],
    )?);

    // An item that is not deterministic CBOR.
    let mut it = good.clone();
    if let Some(x) = it.get_mut(2) {
        *x = mutate::reorder_map_keys(x).ok_or_else(|| input_error(v, "entry has no map"))?;
    }
    docs.push(broken(
        "non-deterministic-item",
        "audit/trail whose item 2 has two map keys swapped: the export is not deterministic \
         CBOR; refused with 0103 (PROFILE G-42).",
        it,
        Some(2),
        103,
        &["BIND-IV-A-02"],
    )?);

    // Truncation: the chain of the first n-1 entries verifies; the Merkle root does not.
    let name = format!("{FAMILY}/truncated");
    let shorter = &entries[..entries.len() - 1];
    let short_items = items(shorter, &name)?;
    let short_bytes: Vec<u8> = short_items.concat();
    ensure(&name, check(&short_bytes).is_ok(), || {
        "the truncated chain does not verify".into()
    })?;
    let short_root = merkle_root(&hashes[..hashes.len() - 1]);
    ensure(&name, short_root != root, || "Merkle roots agree".into())?;
    docs.push(
        VectorDoc::new(
            name,
            REQS,
            "audit/trail without its last entry: the hash chain alone still verifies, but the \
             RFC 6962 Merkle root over the entry hashes differs from the published one (PROFILE \
             G-42: the optional tree head detects truncation).",
        )
        .input("base", format!("{FAMILY}/trail"))
        .input("published_merkle_root", hex::encode(root))
        .expected("chain_valid", true)
        .expected("merkle_root", hex::encode(short_root))
        .expected("matches_published_root", false)
        .sequence(&short_items)?,
    );
    files_of(&docs)
}
