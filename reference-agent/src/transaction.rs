//! The agent's transactions: each one's state (SPEC IV, driven only through
//! `mtp_protocol::state_machine::transition`), the states it went through, and its
//! hash-chained audit trail (SPEC-X-C-02; PROFILE G-42), persisted entry by entry.
//!
//! Events that belong to no transaction (a refused TLS handshake, an index operation, a
//! credential revocation) go to the *agent trail*: a chain of the same shape whose
//! transaction id is 32 zero bytes (PROFILE G-42).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mtp_protocol::audit::{AuditError, AuditRecord, AuditTrail};
use mtp_protocol::errors::{Coded, ErrorCode, Severity};
use mtp_protocol::state_machine::{self, TransitionError, TxEvent, TxState};
use mtp_protocol::time::Timestamp;

use crate::events::{Event, EventKind, EventLog};
use crate::store::{StateStore, StoreError};

/// Transaction id of the agent trail.
pub const AGENT_TRAIL_ID: [u8; 32] = [0; 32];

/// Why a transaction operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("unknown transaction {0}")]
    Unknown(String),
    #[error("transaction {0} already exists")]
    Exists(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("audit trail: {0}")]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for TxError {
    fn code(&self) -> ErrorCode {
        match self {
            TxError::Transition(e) => e.code(),
            TxError::Audit(e) => e.code(),
            TxError::Unknown(_) | TxError::Exists(_) | TxError::Store(_) => {
                ErrorCode::SchemaViolation
            }
        }
    }
}

/// One transaction as this agent sees it.
#[derive(Clone, Debug)]
pub struct TxRecord {
    pub id: [u8; 32],
    pub state: TxState,
    /// Every state entered, starting with Initiated (test-control `transaction.history`).
    pub history: Vec<TxState>,
    /// DIDs of the parties (audit `agents`).
    pub agents: Vec<String>,
    /// Error codes raised or received in this transaction.
    pub errors: Vec<u16>,
    pub audit: AuditTrail,
}

/// All transactions plus the agent trail.
#[derive(Clone)]
pub struct Transactions {
    inner: Arc<Mutex<Inner>>,
    store: StateStore,
    events: Arc<EventLog>,
}

struct Inner {
    txs: BTreeMap<[u8; 32], TxRecord>,
}

impl Transactions {
    /// Load every stored trail and rebuild each transaction's state by replaying it.
    pub fn open(store: StateStore, events: Arc<EventLog>) -> Result<Transactions, TxError> {
        let mut txs = BTreeMap::new();
        for trail in store.load_audit_trails()? {
            let id = trail.transaction_id();
            let state = AuditTrail::replay(trail.entries())?;
            let mut history = vec![TxState::Initiated];
            history.extend(trail.entries().iter().filter_map(|e| e.to_state));
            let mut agents: Vec<String> = Vec::new();
            let mut errors = Vec::new();
            for e in trail.entries() {
                for a in &e.agents {
                    if !agents.contains(a) {
                        agents.push(a.clone());
                    }
                }
                errors.extend(e.error_code);
            }
            txs.insert(
                id,
                TxRecord {
                    id,
                    state,
                    history,
                    agents,
                    errors,
                    audit: trail,
                },
            );
        }
        Ok(Transactions {
            inner: Arc::new(Mutex::new(Inner { txs })),
            store,
            events,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a transaction in Initiated (SPEC IV-A: the id is the `terms_id` reserved at
    /// Initiated, PROFILE G-16). The genesis entry records the start.
    pub fn begin(&self, id: [u8; 32], agents: Vec<String>, now: Timestamp) -> Result<(), TxError> {
        let mut g = self.lock();
        if g.txs.contains_key(&id) {
            return Err(TxError::Exists(hex::encode(id)));
        }
        let mut audit = AuditTrail::new(id);
        let entry = audit
            .append(
                AuditRecord {
                    event: "transaction_initiated".into(),
                    agents: agents.clone(),
                    ..AuditRecord::default()
                },
                now,
            )?
            .clone();
        self.store.append_audit(&entry)?;
        g.txs.insert(
            id,
            TxRecord {
                id,
                state: TxState::Initiated,
                history: vec![TxState::Initiated],
                agents,
                errors: Vec::new(),
                audit,
            },
        );
        Ok(())
    }

    /// Apply a triggering event; an undefined one is refused with 0105 and changes nothing.
    pub fn apply(&self, id: &[u8; 32], event: TxEvent, now: Timestamp) -> Result<TxState, TxError> {
        let mut g = self.lock();
        let tx = g
            .txs
            .get_mut(id)
            .ok_or_else(|| TxError::Unknown(hex::encode(id)))?;
        let from = tx.state;
        let to = state_machine::transition(from, &event)?;
        // Defect `transition-entries-anonymous` (`layers::commitment::FAULTS`): no agents.
        let agents: &[String] = if crate::transport::test_fault("transition-entries-anonymous") {
            &[]
        } else {
            &tx.agents
        };
        let entry = tx
            .audit
            .record_transition(from, to, &event, agents, now)?
            .clone();
        self.store.append_audit(&entry)?;
        tx.state = to;
        tx.history.push(to);
        if let TxEvent::FatalError { code } = event {
            tx.errors.push(code.as_u16());
        }
        drop(g);
        let mut e = Event::new(EventKind::Transition, now);
        e.transaction_id = Some(*id);
        e.from_state = Some(from);
        e.to_state = Some(to);
        e.detail = Some(event.name());
        self.events.push(e);
        Ok(to)
    }

    /// A Fatal error raised against an authenticated message of a participant of `id`
    /// terminates the transaction: `fatal_error.<code>` → Failed (SPEC-IV-02, SPEC-VI-01,
    /// SPEC-IX-I03; PROFILE G-18). A non-participant's message, a non-Fatal code, an unknown
    /// or terminal transaction change nothing (`Ok(None)`).
    pub fn terminate_by_participant(
        &self,
        id: &[u8; 32],
        code: ErrorCode,
        peer: &str,
        now: Timestamp,
    ) -> Result<Option<TxState>, TxError> {
        if code.severity() != Severity::Fatal {
            return Ok(None);
        }
        // Defects `undefined-transition-keeps-state`, `reuse-keeps-transaction`
        // (`layers::commitment::FAULTS`).
        if (code == ErrorCode::UndefinedTransition
            && crate::transport::test_fault("undefined-transition-keeps-state"))
            || (code == ErrorCode::UuidReuse
                && crate::transport::test_fault("reuse-keeps-transaction"))
        {
            return Ok(None);
        }
        let participant = self
            .get(id)
            .is_some_and(|t| !t.state.is_terminal() && t.agents.iter().any(|a| a == peer));
        if !participant {
            return Ok(None);
        }
        self.apply(id, TxEvent::FatalError { code }, now).map(Some)
    }

    /// Append a non-transition entry (message, signature check, settlement operation,
    /// error) to a transaction's trail, or to the agent trail for `AGENT_TRAIL_ID`.
    pub fn record(
        &self,
        id: &[u8; 32],
        record: AuditRecord,
        now: Timestamp,
    ) -> Result<(), TxError> {
        let mut g = self.lock();
        if *id == AGENT_TRAIL_ID && !g.txs.contains_key(id) {
            g.txs.insert(
                *id,
                TxRecord {
                    id: *id,
                    state: TxState::Initiated,
                    history: Vec::new(),
                    agents: Vec::new(),
                    errors: Vec::new(),
                    audit: AuditTrail::new(*id),
                },
            );
        }
        let tx = g
            .txs
            .get_mut(id)
            .ok_or_else(|| TxError::Unknown(hex::encode(id)))?;
        if let Some(c) = record.error_code {
            tx.errors.push(c);
        }
        let entry = tx.audit.append(record, now)?.clone();
        self.store.append_audit(&entry)?;
        Ok(())
    }

    /// Record an error (any severity) with its code.
    pub fn record_error(
        &self,
        id: &[u8; 32],
        code: ErrorCode,
        agents: Vec<String>,
        now: Timestamp,
    ) -> Result<(), TxError> {
        self.record(
            id,
            AuditRecord {
                event: mtp_protocol::audit::events::ERROR.into(),
                agents,
                error_code: Some(code.as_u16()),
                ..AuditRecord::default()
            },
            now,
        )
    }

    pub fn get(&self, id: &[u8; 32]) -> Option<TxRecord> {
        self.lock().txs.get(id).cloned()
    }

    pub fn state(&self, id: &[u8; 32]) -> Option<TxState> {
        self.lock().txs.get(id).map(|t| t.state)
    }

    pub fn ids(&self) -> Vec<[u8; 32]> {
        self.lock()
            .txs
            .keys()
            .filter(|k| **k != AGENT_TRAIL_ID)
            .copied()
            .collect()
    }

    /// The audit trail as an RFC 8742 CBOR sequence (PROFILE G-42).
    pub fn export_audit(&self, id: &[u8; 32]) -> Result<Vec<u8>, TxError> {
        let g = self.lock();
        match g.txs.get(id) {
            Some(t) if crate::transport::test_fault("audit-chain-unlinked") => {
                Ok(unlinked(&t.audit.to_cbor_sequence()?))
            }
            Some(t) => Ok(t.audit.to_cbor_sequence()?),
            None if *id == AGENT_TRAIL_ID => Ok(Vec::new()),
            None => Err(TxError::Unknown(hex::encode(id))),
        }
    }

    /// Forget everything (test-control `reset`).
    pub fn clear(&self) -> Result<(), TxError> {
        self.lock().txs.clear();
        self.store.clear()?;
        Ok(())
    }
}

/// Defect `audit-chain-unlinked` (`layers::commitment::FAULTS`): the export with the second
/// entry's `prev_hash` zeroed.
fn unlinked(sequence: &[u8]) -> Vec<u8> {
    use mtp_protocol::cbor::{self, Value};
    let Ok(mut items) = cbor::sequence_from_slice(sequence) else {
        return sequence.to_vec();
    };
    if let Some(Value::Map(entries)) = items.get_mut(1) {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("prev_hash") {
                *v = Value::bytes(vec![0u8; 32]);
            }
        }
    }
    let mut out = Vec::new();
    for item in &items {
        match cbor::to_vec(item) {
            Ok(b) => out.extend(b),
            Err(_) => return sequence.to_vec(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn the_unlinked_defect_breaks_only_the_second_link() {
        use mtp_protocol::cbor::{self, Value};
        let dir = tempfile::tempdir().unwrap();
        let txs = Transactions::open(
            StateStore::open(dir.path()).unwrap(),
            Arc::new(EventLog::new()),
        )
        .unwrap();
        let id = [7; 32];
        txs.begin(id, vec!["did:mtp:a".into()], t(0)).unwrap();
        txs.apply(&id, TxEvent::NegotiationInitiated, t(1)).unwrap();
        let good = txs.export_audit(&id).unwrap();
        let bad = unlinked(&good);
        let (g, b) = (
            cbor::sequence_from_slice(&good).unwrap(),
            cbor::sequence_from_slice(&bad).unwrap(),
        );
        assert_eq!(g[0], b[0]);
        assert_eq!(b[1].get("prev_hash"), Some(&Value::bytes(vec![0u8; 32])));
        assert_ne!(g[1].get("prev_hash"), b[1].get("prev_hash"));
    }

    #[test]
    fn a_participants_fatal_error_terminates_a_non_participants_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let txs = Transactions::open(
            StateStore::open(dir.path()).unwrap(),
            Arc::new(EventLog::new()),
        )
        .unwrap();
        let id = [9; 32];
        txs.begin(id, vec!["did:mtp:a".into(), "did:mtp:b".into()], t(0))
            .unwrap();
        txs.apply(&id, TxEvent::NegotiationInitiated, t(1)).unwrap();
        let undefined = ErrorCode::UndefinedTransition;
        // Not a participant: nothing changes (PROFILE G-18 as refined by SPEC-IV-02).
        assert_eq!(
            txs.terminate_by_participant(&id, undefined, "did:mtp:x", t(2))
                .unwrap(),
            None
        );
        // Not Fatal: nothing changes.
        assert_eq!(
            txs.terminate_by_participant(&id, ErrorCode::RoundTimeout, "did:mtp:b", t(2))
                .unwrap(),
            None
        );
        assert_eq!(txs.state(&id), Some(TxState::Negotiating));
        assert_eq!(
            txs.terminate_by_participant(&id, undefined, "did:mtp:b", t(3))
                .unwrap(),
            Some(TxState::Failed)
        );
        let rec = txs.get(&id).unwrap();
        assert_eq!(rec.errors, vec![105]);
        let last = rec.audit.entries().last().unwrap();
        assert_eq!(last.event, "fatal_error.0105");
        assert_eq!(
            last.agents,
            vec!["did:mtp:a".to_owned(), "did:mtp:b".to_owned()]
        );
        // Terminal: nothing more.
        assert_eq!(
            txs.terminate_by_participant(&id, undefined, "did:mtp:b", t(4))
                .unwrap(),
            None
        );
    }

    #[test]
    fn transitions_are_audited_persisted_and_replayed_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let events = Arc::new(EventLog::new());
        let txs =
            Transactions::open(StateStore::open(dir.path()).unwrap(), events.clone()).unwrap();
        let id = [5; 32];
        txs.begin(id, vec!["did:mtp:a".into(), "did:mtp:b".into()], t(0))
            .unwrap();
        assert_eq!(
            txs.apply(&id, TxEvent::NegotiationInitiated, t(1)).unwrap(),
            TxState::Negotiating
        );
        // Undefined: Negotiating --SettlementConfirmed--> is refused with 0105, nothing changes.
        let err = txs
            .apply(&id, TxEvent::SettlementConfirmed, t(2))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::UndefinedTransition);
        assert_eq!(txs.state(&id), Some(TxState::Negotiating));
        txs.record_error(&id, ErrorCode::UndefinedTransition, vec![], t(2))
            .unwrap();
        txs.apply(&id, TxEvent::MandateFullySigned, t(3)).unwrap();
        txs.record_error(
            &AGENT_TRAIL_ID,
            ErrorCode::TransportSecurityFailure,
            vec![],
            t(4),
        )
        .unwrap();

        let reopened =
            Transactions::open(StateStore::open(dir.path()).unwrap(), events.clone()).unwrap();
        let rec = reopened.get(&id).unwrap();
        assert_eq!(rec.state, TxState::Committed);
        assert_eq!(
            rec.history,
            vec![TxState::Initiated, TxState::Negotiating, TxState::Committed]
        );
        assert_eq!(rec.errors, vec![105]);
        assert_eq!(reopened.ids(), vec![id]);
        let agent_trail = reopened.export_audit(&AGENT_TRAIL_ID).unwrap();
        assert!(!agent_trail.is_empty());
        assert_eq!(
            events
                .snapshot()
                .iter()
                .filter(|e| e.kind == EventKind::Transition)
                .count(),
            2
        );
    }
}
