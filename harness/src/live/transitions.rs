//! The harness's own table of the transaction state machine (SPEC IV-A, IV-B; PROFILE G-18)
//! and the check that a reported history is a run of it (SPEC-IV-01, SPEC-IV-B-01). Written
//! here, not imported from the protocol core the IUT may share: the unit test compares the
//! two.

/// The ten states of SPEC IV-A, as `tx-state` names.
pub const STATES: [&str; 10] = [
    "initiated",
    "negotiating",
    "committed",
    "settling",
    "verifying",
    "fulfilled",
    "disputed",
    "resolved",
    "failed",
    "void",
];

/// Exactly the 14 allowed `(from, to)` pairs of PROFILE G-18: T1–T10 of SPEC IV-B and the
/// implied ones (Fatal errors → Failed, Offer revoked before the first NIM, failed Receipts,
/// partially fulfilled Receipts → Disputed, supersession → Void).
pub const ALLOWED: [(&str, &str); 14] = [
    ("initiated", "negotiating"), // T1
    ("initiated", "failed"),      // offer revoked before the first NIM; Fatal error
    ("negotiating", "committed"), // T2
    ("negotiating", "failed"),    // T3; Fatal error
    ("committed", "settling"),    // T4
    ("committed", "failed"),      // Fatal error
    ("committed", "void"),        // T10; superseded
    ("settling", "verifying"),    // T5
    ("settling", "failed"),       // T6; Fatal error
    ("verifying", "fulfilled"),   // T7
    ("verifying", "disputed"),    // T8; partially fulfilled
    ("verifying", "failed"),      // failed Receipt; Fatal error
    ("disputed", "resolved"),     // T9
    ("disputed", "failed"),       // Fatal error
];

/// The triggering events of PROFILE G-18 (the names the audit trail records, G-42):
/// `(from, event, to)`. `fatal_error.<code>` (any non-terminal state → failed) is checked
/// apart, by [`event_target`].
pub const EVENTS: [(&str, &str, &str); 18] = [
    ("initiated", "negotiation_initiated", "negotiating"), // T1
    ("initiated", "offer_revoked", "failed"),
    ("negotiating", "mandate_fully_signed", "committed"), // T2
    ("negotiating", "negotiation_terminated.rejected", "failed"), // T3
    ("negotiating", "negotiation_terminated.timeout", "failed"),
    ("negotiating", "negotiation_terminated.exhausted", "failed"),
    (
        "negotiating",
        "negotiation_terminated.offer_revoked",
        "failed",
    ),
    ("committed", "mandate_activated", "settling"), // T4
    ("committed", "mandate_expired", "void"),       // T10
    ("committed", "precondition_expired", "void"),  // T10
    ("committed", "superseded", "void"),            // G-19
    ("settling", "settlement_confirmed", "verifying"), // T5
    ("settling", "settlement_failed", "failed"),    // T6
    ("verifying", "receipt_issued.fulfilled", "fulfilled"), // T7
    ("verifying", "receipt_issued.disputed", "disputed"), // T8
    (
        "verifying",
        "receipt_issued.partially_fulfilled",
        "disputed",
    ),
    ("verifying", "receipt_issued.failed", "failed"),
    ("disputed", "dispute_resolved", "resolved"), // T9
];

/// The state `event` leads to from `from` (PROFILE G-18), `None` when undefined. A
/// `fatal_error.<LSCC>` event needs a Fatal code (severity digit 1).
pub fn event_target(from: &str, event: &str) -> Option<&'static str> {
    if let Some(code) = event.strip_prefix("fatal_error.") {
        let fatal = code.len() == 4
            && code.bytes().all(|b| b.is_ascii_digit())
            && code.as_bytes()[1] == b'1'; // LSCC: S = 1 is Fatal (BIND XI)
        let terminal = matches!(from, "fulfilled" | "resolved" | "failed" | "void");
        return (fatal && !terminal && STATES.contains(&from)).then_some("failed");
    }
    EVENTS
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, t)| *t)
}

/// Whether `from → to` is a transition of the state machine.
pub fn allowed(from: &str, to: &str) -> bool {
    ALLOWED.contains(&(from, to))
}

/// Checks a reported history: it starts at `initiated`, every step is an allowed
/// transition, and it ends at `state`. `Err` names the first problem.
pub fn check_history(history: &[String], state: &str) -> Result<(), String> {
    let Some(first) = history.first() else {
        return Err("the history is empty (it starts with \"initiated\")".into());
    };
    for s in history {
        if !STATES.contains(&s.as_str()) {
            return Err(format!("{s:?} is not a state of SPEC IV-A"));
        }
    }
    if first != "initiated" {
        return Err(format!(
            "the history starts with {first:?}, not \"initiated\""
        ));
    }
    for w in history.windows(2) {
        if !allowed(&w[0], &w[1]) {
            return Err(format!(
                "{} → {} is not a transition of SPEC IV-B / PROFILE G-18",
                w[0], w[1]
            ));
        }
    }
    match history.last() {
        Some(last) if last == state => Ok(()),
        Some(last) => Err(format!(
            "the history ends with {last:?} but the state is {state:?}"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtp_protocol::state_machine::TxState;

    #[test]
    fn the_table_agrees_with_the_protocol_core() {
        let mut core = Vec::new();
        for from in TxState::ALL {
            for to in TxState::ALL {
                if mtp_protocol::state_machine::is_allowed(from, to) {
                    core.push((from.name(), to.name()));
                }
            }
        }
        let mut ours: Vec<(&str, &str)> = ALLOWED.to_vec();
        ours.sort();
        core.sort();
        assert_eq!(ours, core);
    }

    #[test]
    fn every_event_is_an_allowed_transition_and_agrees_with_the_core() {
        use mtp_protocol::state_machine::TxEvent;
        for (from, event, to) in EVENTS {
            assert!(allowed(from, to), "{from} --{event}--> {to}");
            let core_from = TxState::from_name(from).unwrap();
            let ev = TxEvent::from_name(event).unwrap();
            let core_to = mtp_protocol::state_machine::transition(core_from, &ev).unwrap();
            assert_eq!(core_to.name(), to, "{from} --{event}-->");
        }
        assert_eq!(
            event_target("committed", "fatal_error.0105"),
            Some("failed")
        );
        assert_eq!(event_target("settling", "fatal_error.5101"), Some("failed"));
        assert_eq!(event_target("committed", "fatal_error.5200"), None);
        assert_eq!(event_target("failed", "fatal_error.0105"), None);
        assert_eq!(event_target("committed", "settlement_confirmed"), None);
    }

    #[test]
    fn histories() {
        let h = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(check_history(&h(&["initiated", "negotiating", "committed"]), "committed").is_ok());
        assert!(check_history(&h(&["initiated", "negotiating", "failed"]), "failed").is_ok());
        assert!(check_history(&h(&["initiated", "committed"]), "committed").is_err());
        assert!(check_history(&h(&["negotiating"]), "negotiating").is_err());
        assert!(check_history(&h(&["initiated", "negotiating"]), "failed").is_err());
        assert!(check_history(&h(&["initiated", "limbo"]), "limbo").is_err());
        assert!(check_history(&[], "initiated").is_err());
    }
}
