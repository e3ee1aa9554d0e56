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
