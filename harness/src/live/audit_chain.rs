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
}
