//! Transaction lifecycle and state machine (SPEC IV), and the Mandate status (SPEC III-D-2/3).
//!
//! The ten transitions of SPEC IV-B (`T1`..`T10`, requirement ids `SPEC-IV-B-I01`..`I10`) plus
//! the transitions other sections imply (PROFILE G-18, G-19). The allowed `(from, to)` set is
//! [`ALLOWED`] (14 pairs); it is the matrix of `docs/profile.md` G-18, and a test keeps the two
//! identical. Everything else is an undefined transition (SPEC-IV-02): [`transition`] returns
//! [`TransitionError`] (code 0105, Fatal), and the caller terminates the transaction by
//! applying [`TxEvent::FatalError`] with that code.
//!
//! Pure functions only: no clock, no I/O.

use std::fmt;

use crate::errors::{Coded, ErrorCode, Severity};

/// Transaction states (SPEC IV-A). Wire/audit names are [`TxState::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxState {
    /// Entry state (SPEC-IV-A-I01).
    Initiated,
    /// SPEC-IV-A-I02.
    Negotiating,
    /// SPEC-IV-A-I03.
    Committed,
    /// SPEC-IV-A-I04.
    Settling,
    /// SPEC-IV-A-I05.
    Verifying,
    /// Terminal (SPEC-IV-A-I06).
    Fulfilled,
    /// SPEC-IV-A-I07.
    Disputed,
    /// Terminal (SPEC-IV-A-I08).
    Resolved,
    /// Terminal (SPEC-IV-A-I09).
    Failed,
    /// Terminal (SPEC-IV-A-I10).
    Void,
}

impl TxState {
    /// All states, in SPEC IV-A order (the row/column order of the G-18 matrix).
    pub const ALL: [TxState; 10] = [
        TxState::Initiated,
        TxState::Negotiating,
        TxState::Committed,
        TxState::Settling,
        TxState::Verifying,
        TxState::Fulfilled,
        TxState::Disputed,
        TxState::Resolved,
        TxState::Failed,
        TxState::Void,
    ];

    /// Lower-case wire name (audit entries `from_state`/`to_state`, PROFILE G-42).
    pub fn name(self) -> &'static str {
        match self {
            TxState::Initiated => "initiated",
            TxState::Negotiating => "negotiating",
            TxState::Committed => "committed",
            TxState::Settling => "settling",
            TxState::Verifying => "verifying",
            TxState::Fulfilled => "fulfilled",
            TxState::Disputed => "disputed",
            TxState::Resolved => "resolved",
            TxState::Failed => "failed",
            TxState::Void => "void",
        }
    }

    /// Inverse of [`TxState::name`] (exact, lower-case).
    pub fn from_name(name: &str) -> Option<TxState> {
        TxState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Fulfilled, Resolved, Failed and Void have no outgoing transitions (SPEC IV-A).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TxState::Fulfilled | TxState::Resolved | TxState::Failed | TxState::Void
        )
    }
}

impl fmt::Display for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a negotiation ended without Terms (SPEC III-C-1, III-B-3; PROFILE G-10 termination status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// Rejection by the counterparty (3100).
    Rejected,
    /// Round timeout (3200, SPEC-III-C-1-02).
    Timeout,
    /// Round limit exhausted (3201, SPEC-III-C-1-04).
    Exhausted,
    /// Matched Offer revoked before Terms were produced (3101, SPEC-III-B-3-04).
    OfferRevoked,
}

impl TerminationReason {
    pub const ALL: [TerminationReason; 4] = [
        TerminationReason::Rejected,
        TerminationReason::Timeout,
        TerminationReason::Exhausted,
        TerminationReason::OfferRevoked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TerminationReason::Rejected => "rejected",
            TerminationReason::Timeout => "timeout",
            TerminationReason::Exhausted => "exhausted",
            TerminationReason::OfferRevoked => "offer_revoked",
        }
    }

    /// The registry code carried in the termination notice (PROFILE G-17).
    pub fn code(self) -> ErrorCode {
        match self {
            TerminationReason::Rejected => ErrorCode::CounterpartyRejected,
            TerminationReason::Timeout => ErrorCode::RoundTimeout,
            TerminationReason::Exhausted => ErrorCode::RoundLimitExhausted,
            TerminationReason::OfferRevoked => ErrorCode::NegotiationTerminatedByRevocation,
        }
    }
}

/// Receipt outcome (BIND VII-D `outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReceiptOutcome {
    Fulfilled,
    PartiallyFulfilled,
    Disputed,
    Failed,
}

impl ReceiptOutcome {
    pub const ALL: [ReceiptOutcome; 4] = [
        ReceiptOutcome::Fulfilled,
        ReceiptOutcome::PartiallyFulfilled,
        ReceiptOutcome::Disputed,
        ReceiptOutcome::Failed,
    ];

    /// Wire value of `outcome` (BIND VII-D).
    pub fn name(self) -> &'static str {
        match self {
            ReceiptOutcome::Fulfilled => "fulfilled",
            ReceiptOutcome::PartiallyFulfilled => "partially_fulfilled",
            ReceiptOutcome::Disputed => "disputed",
            ReceiptOutcome::Failed => "failed",
        }
    }
}

/// Triggering events (SPEC-IV-B-01: every transition is triggered by a defined event).
///
/// Audit names ([`TxEvent::name`]) are `base` or `base.qualifier` (PROFILE G-18 event table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxEvent {
    /// The first Negotiation Initiation Message (T1, SPEC-IV-B-I01).
    NegotiationInitiated,
    /// The final signature on the Transaction Mandate (T2, SPEC-IV-B-I02; PROFILE G-48).
    MandateFullySigned,
    /// Negotiation terminated without Terms (T3, SPEC-IV-B-I03; `OfferRevoked`: SPEC-III-B-3-04).
    NegotiationTerminated { reason: TerminationReason },
    /// Mandate activation (T4, SPEC-IV-B-I04; PROFILE G-19).
    MandateActivated,
    /// Mandate expiration before activation (T10, SPEC-IV-B-I10; code 4102).
    MandateExpired,
    /// A precondition expired before satisfaction (T10, SPEC-IV-B-I10; code 4101).
    PreconditionExpired,
    /// A successor Mandate committed while this one was Pending (PROFILE G-19; SPEC-III-D-3-I02).
    Superseded,
    /// Settlement Confirmation from the rail adapter (T5, SPEC-IV-B-I05).
    SettlementConfirmed,
    /// Settlement failure (T6, SPEC-IV-B-I06; code 5101, or an escalated 5200).
    SettlementFailed,
    /// A Receipt was issued (T7/T8, SPEC-IV-B-I07/I08; partial and failed: PROFILE G-18).
    ReceiptIssued { outcome: ReceiptOutcome },
    /// The dispute resolution procedure's final determination (T9, SPEC-IV-B-I09).
    DisputeResolved,
    /// A Fatal error: any non-terminal state → Failed (SPEC-VI-01). Non-fatal codes are refused.
    FatalError { code: ErrorCode },
    /// The matched Offer was revoked before the first NIM (SPEC III-B-3; PROFILE G-18).
    OfferRevokedBeforeNegotiation,
}

impl TxEvent {
    /// One instance of every event kind (qualifiers expanded; `FatalError` with 0105).
    pub fn representatives() -> Vec<TxEvent> {
        let mut v = vec![TxEvent::NegotiationInitiated, TxEvent::MandateFullySigned];
        v.extend(TerminationReason::ALL.map(|reason| TxEvent::NegotiationTerminated { reason }));
        v.extend([
            TxEvent::MandateActivated,
            TxEvent::MandateExpired,
            TxEvent::PreconditionExpired,
            TxEvent::Superseded,
            TxEvent::SettlementConfirmed,
            TxEvent::SettlementFailed,
        ]);
        v.extend(ReceiptOutcome::ALL.map(|outcome| TxEvent::ReceiptIssued { outcome }));
        v.extend([
            TxEvent::DisputeResolved,
            TxEvent::FatalError {
                code: ErrorCode::UndefinedTransition,
            },
            TxEvent::OfferRevokedBeforeNegotiation,
        ]);
        v
    }

    /// Audit-trail event name (PROFILE G-18/G-42): e.g. `negotiation_initiated`,
    /// `negotiation_terminated.timeout`, `receipt_issued.partially_fulfilled`, `fatal_error.1100`.
    pub fn name(&self) -> String {
        match self {
            TxEvent::NegotiationInitiated => "negotiation_initiated".into(),
            TxEvent::MandateFullySigned => "mandate_fully_signed".into(),
            TxEvent::NegotiationTerminated { reason } => {
                format!("negotiation_terminated.{}", reason.name())
            }
            TxEvent::MandateActivated => "mandate_activated".into(),
            TxEvent::MandateExpired => "mandate_expired".into(),
            TxEvent::PreconditionExpired => "precondition_expired".into(),
            TxEvent::Superseded => "superseded".into(),
            TxEvent::SettlementConfirmed => "settlement_confirmed".into(),
            TxEvent::SettlementFailed => "settlement_failed".into(),
            TxEvent::ReceiptIssued { outcome } => format!("receipt_issued.{}", outcome.name()),
            TxEvent::DisputeResolved => "dispute_resolved".into(),
            TxEvent::FatalError { code } => format!("fatal_error.{code}"),
            TxEvent::OfferRevokedBeforeNegotiation => "offer_revoked".into(),
        }
    }

    /// Inverse of [`TxEvent::name`]; `None` for anything else (including unknown error codes).
    pub fn from_name(name: &str) -> Option<TxEvent> {
        let (base, qualifier) = match name.split_once('.') {
            Some((b, q)) => (b, Some(q)),
            None => (name, None),
        };
        let ev = match (base, qualifier) {
            ("negotiation_initiated", None) => TxEvent::NegotiationInitiated,
            ("mandate_fully_signed", None) => TxEvent::MandateFullySigned,
            ("negotiation_terminated", Some(q)) => TxEvent::NegotiationTerminated {
                reason: TerminationReason::ALL.into_iter().find(|r| r.name() == q)?,
            },
            ("mandate_activated", None) => TxEvent::MandateActivated,
            ("mandate_expired", None) => TxEvent::MandateExpired,
            ("precondition_expired", None) => TxEvent::PreconditionExpired,
            ("superseded", None) => TxEvent::Superseded,
            ("settlement_confirmed", None) => TxEvent::SettlementConfirmed,
            ("settlement_failed", None) => TxEvent::SettlementFailed,
            ("receipt_issued", Some(q)) => TxEvent::ReceiptIssued {
                outcome: ReceiptOutcome::ALL.into_iter().find(|o| o.name() == q)?,
            },
            ("dispute_resolved", None) => TxEvent::DisputeResolved,
            ("fatal_error", Some(q)) => {
                if q.len() != 4 || !q.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                TxEvent::FatalError {
                    code: ErrorCode::from_u16(q.parse().ok()?)?,
                }
            }
            ("offer_revoked", None) => TxEvent::OfferRevokedBeforeNegotiation,
            _ => return None,
        };
        Some(ev)
    }
}

impl fmt::Display for TxEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The ten transitions SPEC IV-B defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DefinedTransition {
    T1,
    T2,
    T3,
    T4,
    T5,
    T6,
    T7,
    T8,
    T9,
    T10,
}

impl DefinedTransition {
    pub const ALL: [DefinedTransition; 10] = [
        DefinedTransition::T1,
        DefinedTransition::T2,
        DefinedTransition::T3,
        DefinedTransition::T4,
        DefinedTransition::T5,
        DefinedTransition::T6,
        DefinedTransition::T7,
        DefinedTransition::T8,
        DefinedTransition::T9,
        DefinedTransition::T10,
    ];

    /// 1..=10.
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    /// The catalogue id of the SPEC IV-B sentence defining it.
    pub fn requirement(self) -> &'static str {
        match self {
            DefinedTransition::T1 => "SPEC-IV-B-I01",
            DefinedTransition::T2 => "SPEC-IV-B-I02",
            DefinedTransition::T3 => "SPEC-IV-B-I03",
            DefinedTransition::T4 => "SPEC-IV-B-I04",
            DefinedTransition::T5 => "SPEC-IV-B-I05",
            DefinedTransition::T6 => "SPEC-IV-B-I06",
            DefinedTransition::T7 => "SPEC-IV-B-I07",
            DefinedTransition::T8 => "SPEC-IV-B-I08",
            DefinedTransition::T9 => "SPEC-IV-B-I09",
            DefinedTransition::T10 => "SPEC-IV-B-I10",
        }
    }
}

/// Why a `(from, to)` pair is allowed (PROFILE G-18 matrix: `D`, `I`, `D + I`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Basis {
    /// Defined in SPEC IV-B.
    Defined(DefinedTransition),
    /// Implied by another section (the reason names it).
    Implied(&'static str),
    /// Defined in SPEC IV-B and additionally reached by implied events.
    DefinedAndImplied(DefinedTransition, &'static str),
}

impl Basis {
    pub fn defined(self) -> Option<DefinedTransition> {
        match self {
            Basis::Defined(t) | Basis::DefinedAndImplied(t, _) => Some(t),
            Basis::Implied(_) => None,
        }
    }

    pub fn is_implied(self) -> bool {
        matches!(self, Basis::Implied(_) | Basis::DefinedAndImplied(..))
    }
}

use DefinedTransition as T;
use TxState as S;

/// The allowed transitions: exactly 14 `(from, to)` pairs (PROFILE G-18).
pub const ALLOWED: &[(TxState, TxState, Basis)] = &[
    (S::Initiated, S::Negotiating, Basis::Defined(T::T1)),
    (
        S::Initiated,
        S::Failed,
        Basis::Implied(
            "Fatal error (SPEC VI) or Offer revoked before the first NIM (SPEC III-B-3)",
        ),
    ),
    (S::Negotiating, S::Committed, Basis::Defined(T::T2)),
    (
        S::Negotiating,
        S::Failed,
        Basis::DefinedAndImplied(
            T::T3,
            "Offer revoked before Terms (SPEC III-B-3); Fatal error (SPEC VI)",
        ),
    ),
    (S::Committed, S::Settling, Basis::Defined(T::T4)),
    (
        S::Committed,
        S::Void,
        Basis::DefinedAndImplied(
            T::T10,
            "successor Mandate committed while Pending (SPEC III-D-3; PROFILE G-19)",
        ),
    ),
    (
        S::Committed,
        S::Failed,
        Basis::Implied("Fatal error (SPEC VI)"),
    ),
    (S::Settling, S::Verifying, Basis::Defined(T::T5)),
    (
        S::Settling,
        S::Failed,
        Basis::DefinedAndImplied(T::T6, "Fatal error (SPEC VI)"),
    ),
    (S::Verifying, S::Fulfilled, Basis::Defined(T::T7)),
    (
        S::Verifying,
        S::Disputed,
        Basis::DefinedAndImplied(T::T8, "Receipt partially_fulfilled (SPEC III-F-2)"),
    ),
    (
        S::Verifying,
        S::Failed,
        Basis::Implied("Receipt failed (SPEC II-D, IV-A); Fatal error (SPEC VI)"),
    ),
    (S::Disputed, S::Resolved, Basis::Defined(T::T9)),
    (
        S::Disputed,
        S::Failed,
        Basis::Implied("Fatal error (SPEC VI)"),
    ),
];

/// The basis of an allowed pair; `None` when the pair is not allowed.
pub fn basis(from: TxState, to: TxState) -> Option<Basis> {
    ALLOWED
        .iter()
        .find(|(f, t, _)| *f == from && *t == to)
        .map(|(_, _, b)| *b)
}

/// `true` iff `(from, to)` is one of the 14 allowed pairs (SPEC-IV-01; PROFILE G-18).
/// Self-transitions and anything out of a terminal state are never allowed.
pub fn is_allowed(from: TxState, to: TxState) -> bool {
    basis(from, to).is_some()
}

/// An event that does not define a transition from the current state/status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// No transition is defined for this event in this state (SPEC-IV-02).
    #[error("undefined transition: event {event} in state {from} (SPEC-IV-02)")]
    Undefined { from: TxState, event: TxEvent },
    /// `FatalError` carrying a code whose severity is not Fatal (SPEC-IV-B-01, SPEC-VI-01).
    #[error("event fatal_error with non-fatal code {code} in state {from} (SPEC-IV-B-01)")]
    NotFatal { from: TxState, code: ErrorCode },
    /// No Mandate status change is defined for this event (SPEC III-D-2/3; PROFILE G-19).
    #[error("undefined mandate status change: {event:?} in status {from:?}")]
    MandateUndefined {
        from: MandateStatus,
        event: MandateEvent,
    },
}

impl Coded for TransitionError {
    /// 0105 Undefined State Transition (profile code, Fatal).
    fn code(&self) -> ErrorCode {
        ErrorCode::UndefinedTransition
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            TransitionError::Undefined { .. } => "SPEC-IV-02",
            TransitionError::NotFatal { .. } => "SPEC-IV-B-01",
            TransitionError::MandateUndefined { .. } => "SPEC-III-D-2-03",
        })
    }
}

/// The transition function (SPEC IV-B; PROFILE G-18, G-19). Pure.
///
/// Every `(state, event)` maps to at most one target; every target it returns is in
/// [`ALLOWED`].
pub fn transition(state: TxState, event: &TxEvent) -> Result<TxState, TransitionError> {
    use TxEvent as E;
    let undefined = Err(TransitionError::Undefined {
        from: state,
        event: *event,
    });
    if state.is_terminal() {
        return undefined;
    }
    if let E::FatalError { code } = *event {
        // SPEC-VI-01: any non-terminal state → Failed, only for Fatal codes.
        return if code.severity() == Severity::Fatal {
            Ok(S::Failed)
        } else {
            Err(TransitionError::NotFatal { from: state, code })
        };
    }
    let to = match (state, *event) {
        (S::Initiated, E::NegotiationInitiated) => S::Negotiating, // T1
        (S::Initiated, E::OfferRevokedBeforeNegotiation) => S::Failed, // I
        (S::Negotiating, E::MandateFullySigned) => S::Committed,   // T2
        (S::Negotiating, E::NegotiationTerminated { .. }) => S::Failed, // T3 (+ I for revocation)
        (S::Committed, E::MandateActivated) => S::Settling,        // T4
        (S::Committed, E::MandateExpired | E::PreconditionExpired) => S::Void, // T10
        (S::Committed, E::Superseded) => S::Void,                  // I (G-19)
        (S::Settling, E::SettlementConfirmed) => S::Verifying,     // T5
        (S::Settling, E::SettlementFailed) => S::Failed,           // T6
        (S::Verifying, E::ReceiptIssued { outcome }) => match outcome {
            ReceiptOutcome::Fulfilled => S::Fulfilled, // T7
            ReceiptOutcome::Disputed | ReceiptOutcome::PartiallyFulfilled => S::Disputed, // T8 / I
            ReceiptOutcome::Failed => S::Failed,       // I
        },
        (S::Disputed, E::DisputeResolved) => S::Resolved, // T9
        _ => return undefined,
    };
    debug_assert!(is_allowed(state, to));
    Ok(to)
}

/// Mandate status (SPEC III-D-2/3). Local state, never a wire field (PROFILE G-01, G-19).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MandateStatus {
    /// Conditional Mandate with unsatisfied preconditions (⇔ transaction Committed).
    Pending,
    /// Activated (⇔ Committed→Settling). No further status change is defined.
    Active,
    /// Terminal: a precondition or the Mandate expired before activation.
    Void,
    /// Terminal: a successor Mandate committed while this one was Pending.
    Superseded,
}

impl MandateStatus {
    /// Status at the final signature: Pending for a conditional Mandate, Active for an
    /// unconditional one (SPEC-IV-B-I04). The caller checks `mandate.expiration` first: a
    /// Mandate already expired at activation goes to Void instead (PROFILE G-19).
    pub fn initial(conditional: bool) -> MandateStatus {
        if conditional {
            MandateStatus::Pending
        } else {
            MandateStatus::Active
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MandateStatus::Pending => "pending",
            MandateStatus::Active => "active",
            MandateStatus::Void => "void",
            MandateStatus::Superseded => "superseded",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, MandateStatus::Void | MandateStatus::Superseded)
    }
}

/// Events that change a Mandate's status (SPEC III-D-2/3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MandateEvent {
    /// Every precondition is satisfied (SPEC-III-D-2-03).
    PreconditionsSatisfied,
    /// A precondition expired before satisfaction (SPEC-III-D-2-05).
    PreconditionExpired,
    /// `mandate.expiration` reached before activation (SPEC III-D-1; PROFILE G-19).
    MandateExpired,
    /// A successor Mandate naming this one as `predecessor` committed (SPEC-III-D-3-I02).
    SuccessorCommitted,
}

impl MandateEvent {
    pub const ALL: [MandateEvent; 4] = [
        MandateEvent::PreconditionsSatisfied,
        MandateEvent::PreconditionExpired,
        MandateEvent::MandateExpired,
        MandateEvent::SuccessorCommitted,
    ];

    /// The transaction event the status change drives (PROFILE G-19).
    pub fn tx_event(self) -> TxEvent {
        match self {
            MandateEvent::PreconditionsSatisfied => TxEvent::MandateActivated,
            MandateEvent::PreconditionExpired => TxEvent::PreconditionExpired,
            MandateEvent::MandateExpired => TxEvent::MandateExpired,
            MandateEvent::SuccessorCommitted => TxEvent::Superseded,
        }
    }
}

/// Mandate status function (SPEC-III-D-2-03, SPEC-III-D-2-05, SPEC-III-D-3-I02; PROFILE G-19).
/// Only a Pending Mandate changes status.
pub fn mandate_transition(
    status: MandateStatus,
    event: MandateEvent,
) -> Result<MandateStatus, TransitionError> {
    match (status, event) {
        (MandateStatus::Pending, MandateEvent::PreconditionsSatisfied) => Ok(MandateStatus::Active),
        (
            MandateStatus::Pending,
            MandateEvent::PreconditionExpired | MandateEvent::MandateExpired,
        ) => Ok(MandateStatus::Void),
        (MandateStatus::Pending, MandateEvent::SuccessorCommitted) => Ok(MandateStatus::Superseded),
        _ => Err(TransitionError::MandateUndefined {
            from: status,
            event,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The G-18 matrix parsed from `docs/profile.md`: (from, to) → (defined T number, implied).
    fn profile_matrix() -> BTreeMap<(TxState, TxState), (Option<u8>, bool)> {
        let doc = include_str!("../../docs/profile.md");
        let mut lines = doc.lines().skip_while(|l| !l.starts_with("| from \\ to |"));
        let header = lines.next().expect("matrix header in docs/profile.md G-18");
        let cells = |l: &str| -> Vec<String> {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('*', ""))
                .collect()
        };
        let cols: Vec<TxState> = cells(header)[1..]
            .iter()
            .map(|c| TxState::from_name(&c.to_lowercase()).expect("state column"))
            .collect();
        assert_eq!(cols, TxState::ALL, "matrix columns in SPEC IV-A order");
        let sep = lines.next().expect("separator row");
        assert!(sep.starts_with("|---"));
        let mut m = BTreeMap::new();
        for row in lines.take(10) {
            let c = cells(row);
            let name = c[0].split_whitespace().next().unwrap_or("").to_lowercase();
            let from = TxState::from_name(&name).unwrap_or_else(|| panic!("row {row:?}"));
            assert_eq!(c.len(), 11, "row {row:?}");
            for (to, cell) in cols.iter().zip(&c[1..]) {
                let tokens: Vec<&str> = cell
                    .split(|ch: char| ch.is_whitespace() || ch == '+')
                    .collect();
                let defined = tokens.iter().find_map(|t| {
                    t.strip_prefix("(T")
                        .and_then(|r| r.strip_suffix(')'))
                        .map(|n| n.parse::<u8>().unwrap())
                });
                let has_d = tokens.contains(&"D");
                assert_eq!(has_d, defined.is_some(), "cell {cell:?}");
                let implied = tokens.contains(&"I");
                if has_d || implied {
                    m.insert((from, *to), (defined, implied));
                } else {
                    assert!(cell.is_empty() || cell == "—", "cell {cell:?}");
                }
            }
        }
        assert_eq!(
            m.keys()
                .map(|k| k.0)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                + 4,
            10
        );
        m
    }

    #[test]
    fn exactly_fourteen_allowed_pairs() {
        let expected = [
            (S::Initiated, S::Negotiating),
            (S::Initiated, S::Failed),
            (S::Negotiating, S::Committed),
            (S::Negotiating, S::Failed),
            (S::Committed, S::Settling),
            (S::Committed, S::Void),
            (S::Committed, S::Failed),
            (S::Settling, S::Verifying),
            (S::Settling, S::Failed),
            (S::Verifying, S::Fulfilled),
            (S::Verifying, S::Disputed),
            (S::Verifying, S::Failed),
            (S::Disputed, S::Resolved),
            (S::Disputed, S::Failed),
        ];
        let mut n = 0;
        for from in TxState::ALL {
            for to in TxState::ALL {
                let allowed = is_allowed(from, to);
                assert_eq!(allowed, expected.contains(&(from, to)), "{from} -> {to}");
                n += allowed as usize;
                if from == to || from.is_terminal() {
                    assert!(!allowed);
                }
            }
        }
        assert_eq!(n, 14);
        assert_eq!(ALLOWED.len(), 14);
        // Every defined transition appears exactly once.
        for t in DefinedTransition::ALL {
            assert_eq!(
                ALLOWED
                    .iter()
                    .filter(|(_, _, b)| b.defined() == Some(t))
                    .count(),
                1,
                "{t:?}"
            );
        }
    }

    #[test]
    fn matrix_in_profile_md_equals_code() {
        let m = profile_matrix();
        for from in TxState::ALL {
            for to in TxState::ALL {
                let doc = m.get(&(from, to)).copied();
                let code =
                    basis(from, to).map(|b| (b.defined().map(|t| t.number()), b.is_implied()));
                assert_eq!(doc, code, "docs/profile.md G-18 matrix cell {from} -> {to}");
            }
        }
    }

    fn expected_target(state: TxState, ev: TxEvent) -> Option<TxState> {
        use TxEvent as E;
        if state.is_terminal() {
            return None;
        }
        Some(match (state, ev) {
            (_, E::FatalError { .. }) => S::Failed,
            (S::Initiated, E::NegotiationInitiated) => S::Negotiating,
            (S::Initiated, E::OfferRevokedBeforeNegotiation) => S::Failed,
            (S::Negotiating, E::MandateFullySigned) => S::Committed,
            (S::Negotiating, E::NegotiationTerminated { .. }) => S::Failed,
            (S::Committed, E::MandateActivated) => S::Settling,
            (S::Committed, E::MandateExpired) => S::Void,
            (S::Committed, E::PreconditionExpired) => S::Void,
            (S::Committed, E::Superseded) => S::Void,
            (S::Settling, E::SettlementConfirmed) => S::Verifying,
            (S::Settling, E::SettlementFailed) => S::Failed,
            (
                S::Verifying,
                E::ReceiptIssued {
                    outcome: ReceiptOutcome::Fulfilled,
                },
            ) => S::Fulfilled,
            (
                S::Verifying,
                E::ReceiptIssued {
                    outcome: ReceiptOutcome::Disputed,
                },
            ) => S::Disputed,
            (
                S::Verifying,
                E::ReceiptIssued {
                    outcome: ReceiptOutcome::PartiallyFulfilled,
                },
            ) => S::Disputed,
            (
                S::Verifying,
                E::ReceiptIssued {
                    outcome: ReceiptOutcome::Failed,
                },
            ) => S::Failed,
            (S::Disputed, E::DisputeResolved) => S::Resolved,
            _ => return None,
        })
    }

    #[test]
    fn every_state_event_combination() {
        let mut ok = 0;
        for state in TxState::ALL {
            for ev in TxEvent::representatives() {
                let got = transition(state, &ev);
                match expected_target(state, ev) {
                    Some(to) => {
                        assert_eq!(got, Ok(to), "{state} + {ev}");
                        assert!(is_allowed(state, to));
                        ok += 1;
                    }
                    None => {
                        let err = got.expect_err("undefined");
                        assert_eq!(
                            err,
                            TransitionError::Undefined {
                                from: state,
                                event: ev
                            }
                        );
                        assert_eq!(err.code(), ErrorCode::UndefinedTransition);
                        assert_eq!(err.requirement(), Some("SPEC-IV-02"));
                    }
                }
            }
        }
        // 6 non-terminal states × FatalError + 18 specific (state, event) pairs.
        assert_eq!(ok, 6 + 18);
    }

    #[test]
    fn every_allowed_pair_is_reachable_by_some_event() {
        for &(from, to, _) in ALLOWED {
            assert!(
                TxEvent::representatives()
                    .iter()
                    .any(|e| transition(from, e) == Ok(to)),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn fatal_error_requires_fatal_severity() {
        for state in TxState::ALL {
            for &code in ErrorCode::ALL {
                let got = transition(state, &TxEvent::FatalError { code });
                if state.is_terminal() {
                    assert!(matches!(got, Err(TransitionError::Undefined { .. })));
                } else if code.severity() == Severity::Fatal {
                    assert_eq!(got, Ok(S::Failed));
                } else {
                    let e = got.expect_err("non-fatal");
                    assert_eq!(e, TransitionError::NotFatal { from: state, code });
                    assert_eq!(e.code(), ErrorCode::UndefinedTransition);
                }
            }
        }
        // The undefined-transition error itself terminates the transaction (0105 is Fatal).
        assert_eq!(ErrorCode::UndefinedTransition.severity(), Severity::Fatal);
    }

    #[test]
    fn happy_paths() {
        let run = |events: &[TxEvent]| events.iter().try_fold(S::Initiated, transition);
        use TxEvent as E;
        assert_eq!(
            run(&[
                E::NegotiationInitiated,
                E::MandateFullySigned,
                E::MandateActivated,
                E::SettlementConfirmed,
                E::ReceiptIssued {
                    outcome: ReceiptOutcome::Fulfilled
                },
            ]),
            Ok(S::Fulfilled)
        );
        assert_eq!(
            run(&[
                E::NegotiationInitiated,
                E::MandateFullySigned,
                E::MandateActivated,
                E::SettlementConfirmed,
                E::ReceiptIssued {
                    outcome: ReceiptOutcome::PartiallyFulfilled
                },
                E::DisputeResolved,
            ]),
            Ok(S::Resolved)
        );
        assert_eq!(
            run(&[
                E::NegotiationInitiated,
                E::MandateFullySigned,
                E::PreconditionExpired
            ]),
            Ok(S::Void)
        );
        // Bypasses are refused.
        assert!(run(&[E::MandateFullySigned]).is_err());
        assert!(run(&[E::NegotiationInitiated, E::MandateActivated]).is_err());
        assert!(
            run(&[
                E::NegotiationInitiated,
                E::MandateFullySigned,
                E::SettlementConfirmed
            ])
            .is_err()
        );
    }

    #[test]
    fn names_round_trip() {
        for s in TxState::ALL {
            assert_eq!(TxState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxState::from_name("Initiated"), None);
        for e in TxEvent::representatives() {
            assert_eq!(TxEvent::from_name(&e.name()), Some(e), "{e}");
        }
        for &code in ErrorCode::ALL {
            let e = TxEvent::FatalError { code };
            assert_eq!(TxEvent::from_name(&e.name()), Some(e));
        }
        assert_eq!(
            TxEvent::name(&TxEvent::FatalError {
                code: ErrorCode::UuidReuse
            }),
            "fatal_error.0100"
        );
        for bad in [
            "",
            "fatal_error.100",
            "fatal_error.9999",
            "receipt_issued",
            "superseded.x",
            "nope",
        ] {
            assert_eq!(TxEvent::from_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mandate_status() {
        use MandateEvent as M;
        use MandateStatus as P;
        assert_eq!(P::initial(true), P::Pending);
        assert_eq!(P::initial(false), P::Active);
        for status in [P::Pending, P::Active, P::Void, P::Superseded] {
            for ev in M::ALL {
                let expected = match (status, ev) {
                    (P::Pending, M::PreconditionsSatisfied) => Some(P::Active),
                    (P::Pending, M::PreconditionExpired | M::MandateExpired) => Some(P::Void),
                    (P::Pending, M::SuccessorCommitted) => Some(P::Superseded),
                    _ => None,
                };
                match expected {
                    Some(s) => {
                        assert_eq!(mandate_transition(status, ev), Ok(s));
                        // The matching transaction event is defined from Committed.
                        assert!(transition(S::Committed, &ev.tx_event()).is_ok());
                    }
                    None => {
                        let e = mandate_transition(status, ev).expect_err("undefined");
                        assert_eq!(
                            e,
                            TransitionError::MandateUndefined {
                                from: status,
                                event: ev
                            }
                        );
                        assert_eq!(e.code(), ErrorCode::UndefinedTransition);
                    }
                }
            }
        }
        assert!(P::Void.is_terminal() && P::Superseded.is_terminal());
        assert!(!P::Pending.is_terminal() && !P::Active.is_terminal());
    }
}
