//! The harness's check of an exported audit trail (SPEC IV-B, X-C; PROFILE G-42): an
//! RFC 8742 CBOR sequence of deterministic `audit-entry` maps, one linear SHA-256 chain —
//! entry n has `seq` = n, the transaction id of entry 0, `prev_hash` = `hash` of entry
//! n − 1 (32 zero bytes for the genesis entry) and `hash` = SHA-256(det-CBOR(entry without
//! `hash`)) (SPEC-X-C-01). Written from the profile text, not from `mtp_protocol::audit`.

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::sha256;

use crate::runner::AuditObservation;

/// The entries of an export (as far as the runner judges them) and whether the chain
/// verifies (`Err` names the first broken entry).
pub fn check_export(bytes: &[u8]) -> (Vec<AuditObservation>, Result<(), String>) {
    let items = match cbor::sequence_from_slice(bytes) {
        Ok(items) => items,
        Err((i, e)) => {
            return (
                Vec::new(),
                Err(format!(
                    "entry {i} is not one deterministic CBOR item ({e}; 0103)"
                )),
            );
        }
    };
    (observations(&items), verify(&items))
}

fn observations(items: &[Value]) -> Vec<AuditObservation> {
    items
        .iter()
        .map(|e| AuditObservation {
            event: e
                .get("event")
                .and_then(Value::as_text)
                .unwrap_or_default()
                .to_owned(),
            error_code: e
                .get("error_code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok()),
        })
        .collect()
}

/// SPEC-IV-B-02 (PROFILE G-18, G-42): every state transition of the exported trail is one
/// entry with a `timestamp`, the triggering `event` of the G-18 table for its `from_state`
/// → `to_state`, and the DIDs of the Agents involved (`agents`, non-empty); the transition
/// entries chain from `initiated` and, when `history` is given (test-control
/// `transaction`), replay it exactly. `Err` lists every problem.
pub fn check_transitions(bytes: &[u8], history: Option<&[String]>) -> Result<(), Vec<String>> {
    use super::transitions::{STATES, event_target};
    let items = cbor::sequence_from_slice(bytes).map_err(|(i, e)| {
        vec![format!(
            "entry {i} is not one deterministic CBOR item ({e})"
        )]
    })?;
    let mut problems = Vec::new();
    let mut state = "initiated".to_owned();
    let mut replayed = vec![state.clone()];
    for (i, e) in items.iter().enumerate() {
        let event = e.get("event").and_then(Value::as_text).unwrap_or_default();
        let from = e.get("from_state").and_then(Value::as_text);
        let to = e.get("to_state").and_then(Value::as_text);
        let names_transition = STATES.iter().any(|s| event_target(s, event).is_some());
        if from.is_none() && to.is_none() && !names_transition {
            continue;
        }
        let (Some(from), Some(to)) = (from, to) else {
            problems.push(format!(
                "entry {i} ({event:?}) is a transition without both from_state and to_state"
            ));
            continue;
        };
        if !has_timestamp(e) {
            problems.push(format!(
                "entry {i} ({from} → {to}) has no RFC 3339 timestamp"
            ));
        }
        match event_target(from, event) {
            Some(t) if t == to => {}
            _ => problems.push(format!(
                "entry {i}: {event:?} is not the triggering event of {from} → {to} (PROFILE G-18)"
            )),
        }
        let agents = match e.get("agents") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_text().filter(|d| d.starts_with("did:")))
                .collect::<Option<Vec<_>>>()
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if agents.is_empty() {
            problems.push(format!(
                "entry {i} ({from} → {to}) does not identify the Agents involved (agents: DIDs)"
            ));
        }
        if from != state {
            problems.push(format!(
                "entry {i} leaves {from} but the previous transition entered {state}"
            ));
        }
        state = to.to_owned();
        replayed.push(state.clone());
    }
    if let Some(h) = history
        && h != replayed.as_slice()
    {
        problems.push(format!(
            "the transition entries replay [{}] but the transaction's history is [{}]",
            replayed.join(", "),
            h.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `timestamp` is a `tdate` (tag 0 over RFC 3339 text) or RFC 3339 text.
fn has_timestamp(e: &Value) -> bool {
    let t = match e.get("timestamp") {
        Some(Value::Tag(0, inner)) => inner.as_text(),
        Some(v) => v.as_text(),
        None => None,
    };
    t.is_some_and(|t| mtp_protocol::time::Timestamp::parse(t).is_ok())
}

/// Verifies the chain entry by entry (PROFILE G-42); a broken link is 0108.
pub fn verify(items: &[Value]) -> Result<(), String> {
    let mut prev = [0u8; 32];
    let mut tx: Option<Vec<u8>> = None;
    for (i, e) in items.iter().enumerate() {
        let Value::Map(entries) = e else {
            return Err(format!("entry {i} is not a map (0103)"));
        };
        let seq = e.get("seq").and_then(Value::as_u64);
        if seq != Some(i as u64) {
            return Err(format!("entry {i}: seq is {seq:?}, expected {i} (0108)"));
        }
        let t = e
            .get("transaction_id")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("entry {i}: no transaction_id (0103)"))?;
        match &tx {
            None => tx = Some(t),
            Some(first) if *first != t => {
                return Err(format!(
                    "entry {i}: transaction_id differs from entry 0 (0108)"
                ));
            }
            Some(_) => {}
        }
        if e.get("event").and_then(Value::as_text).is_none() {
            return Err(format!("entry {i}: no event (0103)"));
        }
        let prev_hash = e
            .get("prev_hash")
            .and_then(Value::as_bytes)
            .ok_or_else(|| format!("entry {i}: no prev_hash (0103)"))?;
        if prev_hash != prev {
            return Err(format!(
                "entry {i}: prev_hash {} is not the hash of entry {} ({}; 0108)",
                hex::encode(prev_hash),
                i.saturating_sub(1),
                hex::encode(prev)
            ));
        }
        let hash: [u8; 32] = e
            .get("hash")
            .and_then(Value::as_bytes)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("entry {i}: no 32-byte hash (0103)"))?;
        let without: Vec<(Value, Value)> = entries
            .iter()
            .filter(|(k, _)| k.as_text() != Some("hash"))
            .cloned()
            .collect();
        let det = cbor::to_vec(&Value::Map(without))
            .map_err(|e| format!("entry {i}: not encodable ({e})"))?;
        let expected = sha256(&det);
        if expected != hash {
            return Err(format!(
                "entry {i}: hash {} is not SHA-256 of the entry without hash ({}; 0108)",
                hex::encode(hash),
                hex::encode(expected)
            ));
        }
        prev = hash;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtp_protocol::audit::{AuditRecord, AuditTrail};

    #[test]
    fn agrees_with_the_protocol_trail_and_finds_tampering() {
        let mut t = AuditTrail::new([7; 32]);
        let at = mtp_protocol::time::Timestamp::from_unix_nanos(1_700_000_000_000_000_000);
        for ev in ["a", "b", "c"] {
            t.append(
                AuditRecord {
                    event: ev.into(),
                    ..AuditRecord::default()
                },
                at,
            )
            .unwrap();
        }
        let bytes = t.to_cbor_sequence().unwrap();
        let (entries, chain) = check_export(&bytes);
        assert_eq!(chain, Ok(()));
        assert_eq!(entries.len(), 3);
        let mut items = cbor::sequence_from_slice(&bytes).unwrap();
        if let Value::Map(e) = &mut items[1] {
            for (k, v) in e.iter_mut() {
                if k.as_text() == Some("event") {
                    *v = Value::text("x");
                }
            }
        }
        assert!(verify(&items).unwrap_err().starts_with("entry 1"));
    }

    #[test]
    fn transitions_need_time_event_and_agents_and_replay_the_history() {
        use mtp_protocol::state_machine::{TxEvent, TxState};
        let at = mtp_protocol::time::Timestamp::from_unix_nanos(1_700_000_000_000_000_000);
        let agents = vec!["did:mtp:a".to_owned(), "did:mtp:b".to_owned()];
        let mut t = AuditTrail::new([7; 32]);
        t.append(
            AuditRecord {
                event: "transaction_initiated".into(),
                agents: agents.clone(),
                ..AuditRecord::default()
            },
            at,
        )
        .unwrap();
        t.record_transition(
            TxState::Initiated,
            TxState::Negotiating,
            &TxEvent::NegotiationInitiated,
            &agents,
            at,
        )
        .unwrap();
        t.record_transition(
            TxState::Negotiating,
            TxState::Failed,
            &TxEvent::FatalError {
                code: mtp_protocol::errors::ErrorCode::UndefinedTransition,
            },
            &agents,
            at,
        )
        .unwrap();
        let good = t.to_cbor_sequence().unwrap();
        let h = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            check_transitions(&good, Some(&h(&["initiated", "negotiating", "failed"]))),
            Ok(())
        );
        assert!(check_transitions(&good, Some(&h(&["initiated", "negotiating"]))).is_err());
        let mut anon = AuditTrail::new([7; 32]);
        anon.record_transition(
            TxState::Initiated,
            TxState::Negotiating,
            &TxEvent::NegotiationInitiated,
            &[],
            at,
        )
        .unwrap();
        let bad = anon.to_cbor_sequence().unwrap();
        let errs = check_transitions(&bad, None).unwrap_err();
        assert!(errs[0].contains("Agents involved"), "{errs:?}");
        let mut wrong = AuditTrail::new([7; 32]);
        wrong
            .record_transition(
                TxState::Initiated,
                TxState::Negotiating,
                &TxEvent::MandateActivated,
                &agents,
                at,
            )
            .unwrap();
        assert!(check_transitions(&wrong.to_cbor_sequence().unwrap(), None).is_err());
    }
}
