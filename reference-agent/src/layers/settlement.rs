//! Settlement Layer (SPEC III-E): the Settlement Interface (initiate, confirm, reverse, query
//! status; SPEC-III-E-1-01) with an in-process double-entry ledger rail and a configurable
//! failing rail; atomic settlement of the whole Mandate amount (SPEC-III-E-2-01,
//! SPEC-III-E-2-02); proportional partial adjustment (SPEC-III-E-2-03; PROFILE G-20);
//! reversal (SPEC-III-E-3-01); retry-then-escalate (SPEC-VI-02).
//!
//! Flow of the test-control `settle` on the settling Agent (PROFILE G-19, G-20):
//! Committed → Settling on `mandate_activated` (T4, the Mandate must be Active), then
//! `initiate` → `settlement_initiated` notice → `confirm` → `query` → Settling → Verifying
//! on `settlement_confirmed` (T5, SPEC-IV-B-I05) and a `settlement_confirmed` notice. Every
//! operation attempt is audited (`settlement_op`, SPEC-X-C-02). 5200 is retried with
//! back-off up to `RETRY_LIMIT` and then escalated; a Fatal failure (5101, escalated 5200)
//! reverses a confirmed settlement (a reversal failure is 5100) and ends the transaction
//! Settling → Failed (T6, SPEC-IV-B-I06) with a `settlement_failed` notice and an error
//! notification to every party (SPEC-VI-01).
//!
//! Notices travel signed over `Agent/Settle` (`settlement_notice`, PROFILE G-20); the other
//! parties apply them ([`on_settle`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtp_protocol::audit::{AuditRecord, events as audit_events};
use mtp_protocol::cbor::Value;
use mtp_protocol::error_record::{MtpErrorRecord, Notification};
use mtp_protocol::errors::{Coded, ErrorCode, Layer, RetryDecision, Severity, after_failure};
use mtp_protocol::primitives::Receipt;
use mtp_protocol::primitives::common::{
    CborObject, Errors, Map, MapBuilder, MapReader, ObjectError, PriceSpec, PriceUnit,
    Role as PRole, Signature, SingleSigned, ValidationError, check_encodable, read_signature_field,
    read_tdate, read_text, read_uuid, tdate_value, uuid_value,
};
use mtp_protocol::primitives::receipt::Outcome;
use mtp_protocol::state_machine::{MandateStatus, TxEvent, TxState};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::verification::{Decimal, DecimalError, adjusted_amount, minor_unit_exponent};
use mtp_protocol::wire;
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::config::{FlakyMode, RailConfig, RailKind};
use crate::deal::Deal;
use crate::services::control::{ControlError, ControlResult};
use crate::transport::sync::framing::Rpc;
use crate::transport::sync::pb;

use super::verification::{
    self as plumbing, VerificationError, committed_deal, deal_terms, participant,
};

/// Deliberate defects of this layer (`crate::faults`).
pub const FAULTS: &[crate::faults::Fault] = &[
    crate::faults::Fault {
        name: "partial-reversal-full-amount",
        breaks: "SPEC-II-D-03, SPEC-III-E-2-I01",
        description: "after a partially fulfilled Receipt the whole settlement is reversed",
    },
    crate::faults::Fault {
        name: "no-reversal-on-failed-receipt",
        breaks: "SPEC-II-D-07, SPEC-III-E-3-01",
        description: "a failed Receipt leaves a confirmed settlement in place",
    },
    crate::faults::Fault {
        name: "reverse-on-every-receipt",
        breaks: "SPEC-III-E-3-02",
        description: "reverses the settlement after a fulfilled Receipt too",
    },
    crate::faults::Fault {
        name: "settlement-confirmed-without-rail-ref",
        breaks: "SPEC-III-E-1-01",
        description: "the settlement_confirmed notice omits the rail's transaction reference",
    },
    crate::faults::Fault {
        name: "no-reversal-after-failed-settlement",
        breaks: "SPEC-III-E-2-01, SPEC-III-E-2-02",
        description: "a settlement that fails after the transfer is not reversed",
    },
    crate::faults::Fault {
        name: "rail-no-retry",
        breaks: "SPEC-VI-02, SPEC-VI-I03",
        description: "a rail operation failing with the Recoverable 5200 is escalated at once, without a retry",
    },
    crate::faults::Fault {
        name: "rail-retry-beyond-limit",
        breaks: "SPEC-VI-02",
        description: "a rail operation failing with 5200 is retried up to 10 times instead of RETRY_LIMIT (3) before escalating",
    },
    crate::faults::Fault {
        name: "informational-fails-call",
        breaks: "SPEC-VI-I05",
        description: "a byte-identical redelivered settlement notice (Informational 0400) fails the call instead of being logged and answered like the original",
    },
    crate::faults::Fault {
        name: "revocation-after-commit-ignored",
        breaks: "SPEC-III-A-3-03",
        description: "does not re-verify the counterparties' delegation chains when settlement starts: a credential revoked after commit goes unnoticed and the Receipt is not disputed",
    },
];

/// Retries of a 5200 under the defect `rail-retry-beyond-limit`.
const BEYOND_LIMIT_RETRIES: u32 = 10;

/// The Settlement Interface requirement (SPEC-III-E-1-01).
const INTERFACE_REQ: &str = "SPEC-III-E-1-01";

// ---------------------------------------------------------------------------------------
// Decimal helpers (exact money, PROFILE G-03)
// ---------------------------------------------------------------------------------------

fn dec_add(a: Decimal, b: Decimal) -> Result<Decimal, DecimalError> {
    let s = a.scale.max(b.scale);
    let m = a
        .to_scaled_half_even(s)?
        .checked_add(b.to_scaled_half_even(s)?)
        .ok_or(DecimalError::Overflow)?;
    Ok(Decimal {
        mantissa: m,
        scale: s,
    })
}

fn dec_neg(a: Decimal) -> Decimal {
    Decimal {
        mantissa: -a.mantissa,
        scale: a.scale,
    }
}

fn dec_sub(a: Decimal, b: Decimal) -> Result<Decimal, DecimalError> {
    dec_add(a, dec_neg(b))
}

fn dec_positive(a: Decimal) -> bool {
    a.mantissa > 0
}

/// An amount at its unit's minor-unit precision when it has one (PROFILE G-03).
pub fn normalize(amount: Decimal, unit: &str) -> Result<Decimal, DecimalError> {
    match minor_unit_exponent(unit) {
        Some(e) => Ok(Decimal {
            mantissa: amount.to_scaled_half_even(e)?,
            scale: e,
        }),
        None => Ok(amount),
    }
}

fn price_spec(amount: Decimal, unit: &PriceUnit) -> PriceSpec {
    PriceSpec::new(amount.to_number(), unit.clone())
}

// ---------------------------------------------------------------------------------------
// Settlement Interface (SPEC-III-E-1-01; PROFILE G-20)
// ---------------------------------------------------------------------------------------

/// `initiate` parameters: the Mandate's settlement parameters (PROFILE G-20).
#[derive(Clone, Debug, PartialEq)]
pub struct SettlementRequest {
    pub mandate_id: MtpUuid,
    pub amount: Decimal,
    pub unit: String,
    pub payer: String,
    pub payee: String,
    pub rail: String,
    pub escrow: bool,
}

/// `query` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettlementStatus {
    Initiated,
    Confirmed,
    PartiallyReversed,
    Reversed,
    Failed,
}

impl SettlementStatus {
    pub fn name(self) -> &'static str {
        match self {
            SettlementStatus::Initiated => "initiated",
            SettlementStatus::Confirmed => "confirmed",
            SettlementStatus::PartiallyReversed => "partially_reversed",
            SettlementStatus::Reversed => "reversed",
            SettlementStatus::Failed => "failed",
        }
    }
}

/// A rail operation failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RailError {
    #[error("rail {0} temporarily unavailable")]
    Unavailable(String),
    #[error("settlement failed on rail {rail}: {reason}")]
    Failed { rail: String, reason: String },
    #[error("reversal failed on rail {rail}: {reason}")]
    ReversalFailed { rail: String, reason: String },
    #[error("rail {rail} has no settlement {id}")]
    UnknownSettlement { rail: String, id: String },
    #[error("amount: {0}")]
    Amount(#[from] DecimalError),
    #[error("rail {0} cannot be configured that way")]
    NotConfigurable(String),
}

impl Coded for RailError {
    fn code(&self) -> ErrorCode {
        match self {
            RailError::Unavailable(_) => ErrorCode::RailTemporarilyUnavailable,
            RailError::Failed { .. } | RailError::UnknownSettlement { .. } => {
                ErrorCode::SettlementFailed
            }
            RailError::ReversalFailed { .. } => ErrorCode::SettlementReversalFailed,
            RailError::Amount(_) | RailError::NotConfigurable(_) => ErrorCode::SchemaViolation,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            RailError::Unavailable(_) => "SPEC-VI-02",
            RailError::ReversalFailed { .. } => "SPEC-III-E-3-01",
            RailError::Amount(_) => "SPEC-III-E-2-03",
            _ => "SPEC-III-E-2-01",
        })
    }
}

/// The operations a payment rail adapter implements (SPEC-III-E-1-01). Adapters are
/// in-process and synchronous; the layer adds retries, audit and notices around them.
/// Further adapters plug in with [`State::register_rail`] (SPEC-III-E-1-03).
pub trait SettlementRail: Send + Sync + std::fmt::Debug {
    fn id(&self) -> &str;
    /// Initiate Settlement → Settlement Initiation Confirmation (the settlement id).
    fn initiate(&self, request: &SettlementRequest) -> Result<String, RailError>;
    /// Confirm Settlement → Settlement Confirmation with the rail reference.
    fn confirm(&self, settlement_id: &str) -> Result<String, RailError>;
    /// Reverse Settlement of `amount` (≤ what is left) → rail reference.
    fn reverse(&self, settlement_id: &str, amount: Decimal) -> Result<String, RailError>;
    /// Query Settlement Status.
    fn query(&self, settlement_id: &str) -> Result<SettlementStatus, RailError>;
    /// Change the behaviour at run time (test-control `configure_rail`).
    fn configure(&self, behaviour: FlakyBehaviour) -> Result<(), RailError> {
        let _ = behaviour;
        Err(RailError::NotConfigurable(self.id().to_owned()))
    }
    /// The balance of an account in `unit`, when the rail keeps balances.
    fn balance(&self, account: &str, unit: &str) -> Option<Decimal> {
        let _ = (account, unit);
        None
    }
}

/// One double-entry journal line: `amount` moved from `debit` to `credit`.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub settlement_id: String,
    pub debit: String,
    pub credit: String,
    pub amount: Decimal,
    pub unit: String,
}

#[derive(Clone, Debug)]
struct LedgerSettlement {
    request: SettlementRequest,
    /// Account credited on confirmation (the payee, or its escrow account).
    credit: String,
    status: SettlementStatus,
    transferred: Decimal,
    reversed: Decimal,
}

#[derive(Debug, Default)]
struct Ledger {
    next: u64,
    settlements: BTreeMap<String, LedgerSettlement>,
    balances: BTreeMap<(String, String), Decimal>,
    journal: Vec<JournalEntry>,
}

impl Ledger {
    /// Moves `amount` from `debit` to `credit` atomically (both legs or none).
    fn post(
        &mut self,
        settlement_id: &str,
        debit: &str,
        credit: &str,
        amount: Decimal,
        unit: &str,
    ) -> Result<(), DecimalError> {
        let key_d = (debit.to_owned(), unit.to_owned());
        let key_c = (credit.to_owned(), unit.to_owned());
        let d = dec_sub(
            self.balances.get(&key_d).copied().unwrap_or(Decimal::ZERO),
            amount,
        )?;
        let c = dec_add(
            self.balances.get(&key_c).copied().unwrap_or(Decimal::ZERO),
            amount,
        )?;
        self.balances.insert(key_d, d);
        self.balances.insert(key_c, c);
        self.journal.push(JournalEntry {
            settlement_id: settlement_id.to_owned(),
            debit: debit.to_owned(),
            credit: credit.to_owned(),
            amount,
            unit: unit.to_owned(),
        });
        Ok(())
    }
}

/// The in-process double-entry ledger: balances per (DID, unit), every movement a journal
/// line with a debit and a credit leg; confirmation moves the whole amount at once
/// (SPEC-III-E-2-01, SPEC-III-E-2-02). With `escrow` the payee's escrow account
/// (`escrow:<did>`) is credited instead (PROFILE G-20).
#[derive(Debug)]
pub struct LedgerRail {
    id: String,
    inner: Mutex<Ledger>,
}

impl LedgerRail {
    pub fn new(id: impl Into<String>) -> LedgerRail {
        LedgerRail {
            id: id.into(),
            inner: Mutex::new(Ledger::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The journal so far.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.lock().journal.clone()
    }

    fn unknown(&self, id: &str) -> RailError {
        RailError::UnknownSettlement {
            rail: self.id.clone(),
            id: id.to_owned(),
        }
    }
}

impl SettlementRail for LedgerRail {
    fn id(&self) -> &str {
        &self.id
    }

    fn initiate(&self, request: &SettlementRequest) -> Result<String, RailError> {
        if request.amount.mantissa < 0 {
            return Err(DecimalError::Negative(request.amount.to_string()).into());
        }
        let mut g = self.lock();
        g.next += 1;
        let mid = request.mandate_id.as_bytes();
        let id = format!(
            "{}-{}-{}",
            self.id,
            hex::encode(mid.get(24..32).unwrap_or_default()),
            g.next
        );
        let credit = if request.escrow {
            format!("escrow:{}", request.payee)
        } else {
            request.payee.clone()
        };
        g.settlements.insert(
            id.clone(),
            LedgerSettlement {
                request: request.clone(),
                credit,
                status: SettlementStatus::Initiated,
                transferred: Decimal::ZERO,
                reversed: Decimal::ZERO,
            },
        );
        Ok(id)
    }

    fn confirm(&self, settlement_id: &str) -> Result<String, RailError> {
        let mut g = self.lock();
        let s = g
            .settlements
            .get(settlement_id)
            .cloned()
            .ok_or_else(|| self.unknown(settlement_id))?;
        match s.status {
            SettlementStatus::Initiated => {}
            SettlementStatus::Confirmed => return Ok(format!("{settlement_id}/confirm")),
            other => {
                return Err(RailError::Failed {
                    rail: self.id.clone(),
                    reason: format!("settlement is {}", other.name()),
                });
            }
        }
        g.post(
            settlement_id,
            &s.request.payer,
            &s.credit,
            s.request.amount,
            &s.request.unit,
        )?;
        if let Some(e) = g.settlements.get_mut(settlement_id) {
            e.status = SettlementStatus::Confirmed;
            e.transferred = s.request.amount;
        }
        Ok(format!("{settlement_id}/confirm"))
    }

    fn reverse(&self, settlement_id: &str, amount: Decimal) -> Result<String, RailError> {
        let mut g = self.lock();
        let s = g
            .settlements
            .get(settlement_id)
            .cloned()
            .ok_or_else(|| self.unknown(settlement_id))?;
        let left = dec_sub(s.transferred, s.reversed)?;
        if amount.mantissa < 0 || amount.cmp_exact(left) == Some(std::cmp::Ordering::Greater) {
            return Err(RailError::ReversalFailed {
                rail: self.id.clone(),
                reason: format!("cannot reverse {amount}, {left} left"),
            });
        }
        if !matches!(
            s.status,
            SettlementStatus::Confirmed | SettlementStatus::PartiallyReversed
        ) {
            return Err(RailError::ReversalFailed {
                rail: self.id.clone(),
                reason: format!("settlement is {}", s.status.name()),
            });
        }
        let n = g.journal.len();
        g.post(
            settlement_id,
            &s.credit,
            &s.request.payer,
            amount,
            &s.request.unit,
        )?;
        let reversed = dec_add(s.reversed, amount)?;
        if let Some(e) = g.settlements.get_mut(settlement_id) {
            e.reversed = reversed;
            e.status = if reversed.cmp_exact(e.transferred) == Some(std::cmp::Ordering::Equal) {
                SettlementStatus::Reversed
            } else {
                SettlementStatus::PartiallyReversed
            };
        }
        Ok(format!("{settlement_id}/reverse/{n}"))
    }

    fn query(&self, settlement_id: &str) -> Result<SettlementStatus, RailError> {
        self.lock()
            .settlements
            .get(settlement_id)
            .map(|s| s.status)
            .ok_or_else(|| self.unknown(settlement_id))
    }

    fn balance(&self, account: &str, unit: &str) -> Option<Decimal> {
        Some(
            self.lock()
                .balances
                .get(&(account.to_owned(), unit.to_owned()))
                .copied()
                .unwrap_or(Decimal::ZERO),
        )
    }
}

/// Where a `fail` rail fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailPoint {
    /// `initiate` fails (nothing moved).
    Initiate,
    /// `confirm` fails (nothing moved).
    Confirm,
    /// The transfer is made, then `query` reports it failed: the funds moved and must be
    /// reversed (the "fails after the debit" case of SPEC-III-E-2-01).
    #[default]
    AfterConfirm,
}

impl FailPoint {
    pub fn parse(s: &str) -> Option<FailPoint> {
        match s {
            "initiate" => Some(FailPoint::Initiate),
            "confirm" => Some(FailPoint::Confirm),
            "query" | "after_confirm" => Some(FailPoint::AfterConfirm),
            _ => None,
        }
    }
}

/// Behaviour of the failing rail (test-control `configure_rail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlakyBehaviour {
    pub mode: FlakyMode,
    /// `unavailable`: attempts still to fail with 5200 (`None` = every attempt).
    pub unavailable: Option<u32>,
    /// `fail` (and `fail_reversal` when set): where the settlement fails.
    pub fail_at: Option<FailPoint>,
}

impl FlakyBehaviour {
    pub fn new(
        mode: FlakyMode,
        unavailable_attempts: Option<u32>,
        fail_at: Option<FailPoint>,
    ) -> Self {
        FlakyBehaviour {
            mode,
            unavailable: match unavailable_attempts {
                Some(0) | None => None,
                some => some,
            },
            fail_at: match (mode, fail_at) {
                (FlakyMode::Fail, None) => Some(FailPoint::AfterConfirm),
                (_, f) => f,
            },
        }
    }
}

/// A ledger rail that can be told to fail (5101 at a chosen point), to be unavailable for
/// n attempts (5200, Recoverable), or to fail reversals (5100).
#[derive(Debug)]
pub struct FlakyRail {
    inner: LedgerRail,
    behaviour: Mutex<FlakyBehaviour>,
}

impl FlakyRail {
    pub fn new(id: impl Into<String>, behaviour: FlakyBehaviour) -> FlakyRail {
        FlakyRail {
            inner: LedgerRail::new(id),
            behaviour: Mutex::new(behaviour),
        }
    }

    fn behaviour(&self) -> FlakyBehaviour {
        *self.behaviour.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every operation first passes the availability gate. In `unavailable` mode with a
    /// `fail_at` point, only the operations from that point on are unavailable, and
    /// reversals stay available: e.g. `fail_at: query` = the money moves, then the rail
    /// cannot confirm the outcome (5200), so an escalation must reverse it.
    fn gate(&self, op: FailPoint, reversal: bool) -> Result<(), RailError> {
        let mut b = self.behaviour.lock().unwrap_or_else(|p| p.into_inner());
        if b.mode != FlakyMode::Unavailable {
            return Ok(());
        }
        if let Some(from) = b.fail_at {
            let rank = |p: FailPoint| match p {
                FailPoint::Initiate => 0,
                FailPoint::Confirm => 1,
                FailPoint::AfterConfirm => 2,
            };
            if reversal || rank(op) < rank(from) {
                return Ok(());
            }
        }
        match b.unavailable {
            None => Err(RailError::Unavailable(self.inner.id.clone())),
            Some(0) => Ok(()),
            Some(n) => {
                b.unavailable = Some(n - 1);
                Err(RailError::Unavailable(self.inner.id.clone()))
            }
        }
    }

    fn fails_at(&self, point: FailPoint) -> bool {
        let b = self.behaviour();
        matches!(b.mode, FlakyMode::Fail | FlakyMode::FailReversal) && b.fail_at == Some(point)
    }

    fn failed(&self, reason: &str) -> RailError {
        RailError::Failed {
            rail: self.inner.id.clone(),
            reason: reason.to_owned(),
        }
    }
}

impl SettlementRail for FlakyRail {
    fn id(&self) -> &str {
        &self.inner.id
    }

    fn initiate(&self, request: &SettlementRequest) -> Result<String, RailError> {
        self.gate(FailPoint::Initiate, false)?;
        if self.fails_at(FailPoint::Initiate) {
            return Err(self.failed("configured to fail at initiation"));
        }
        self.inner.initiate(request)
    }

    fn confirm(&self, settlement_id: &str) -> Result<String, RailError> {
        self.gate(FailPoint::Confirm, false)?;
        if self.fails_at(FailPoint::Confirm) {
            return Err(self.failed("configured to fail at confirmation"));
        }
        self.inner.confirm(settlement_id)
    }

    fn reverse(&self, settlement_id: &str, amount: Decimal) -> Result<String, RailError> {
        self.gate(FailPoint::Initiate, true)?;
        if self.behaviour().mode == FlakyMode::FailReversal {
            return Err(RailError::ReversalFailed {
                rail: self.inner.id.clone(),
                reason: "configured to fail reversals".into(),
            });
        }
        self.inner.reverse(settlement_id, amount)
    }

    fn query(&self, settlement_id: &str) -> Result<SettlementStatus, RailError> {
        self.gate(FailPoint::AfterConfirm, false)?;
        let status = self.inner.query(settlement_id)?;
        if status == SettlementStatus::Confirmed && self.fails_at(FailPoint::AfterConfirm) {
            return Ok(SettlementStatus::Failed);
        }
        Ok(status)
    }

    fn configure(&self, behaviour: FlakyBehaviour) -> Result<(), RailError> {
        *self.behaviour.lock().unwrap_or_else(|p| p.into_inner()) = behaviour;
        Ok(())
    }

    fn balance(&self, account: &str, unit: &str) -> Option<Decimal> {
        self.inner.balance(account, unit)
    }
}

fn build_rail(cfg: &RailConfig) -> Arc<dyn SettlementRail> {
    match &cfg.kind {
        RailKind::Ledger => Arc::new(LedgerRail::new(cfg.id.clone())),
        RailKind::Flaky {
            mode,
            unavailable_attempts,
        } => Arc::new(FlakyRail::new(
            cfg.id.clone(),
            FlakyBehaviour::new(*mode, Some(*unavailable_attempts), None),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

/// A settlement this agent runs (it operates the rail adapter).
#[derive(Clone, Debug, PartialEq)]
pub struct LocalSettlement {
    pub rail: String,
    pub settlement_id: String,
    pub amount: Decimal,
    pub unit: PriceUnit,
    pub confirmed: bool,
    pub reversed: Decimal,
}

/// This layer's state inside the agent: the rail adapters and the settlements it runs.
#[derive(Debug)]
pub struct State {
    configs: Vec<RailConfig>,
    rails: Mutex<BTreeMap<String, Arc<dyn SettlementRail>>>,
    local: Mutex<BTreeMap<[u8; 32], LocalSettlement>>,
    /// Fulfilment ratios announced by `settle {partial}` (PROFILE G-20).
    ratios: Mutex<BTreeMap<[u8; 32], f32>>,
    /// Frame hashes of the settlement notices applied, per transaction: a byte-identical
    /// redelivery is answered like the original (0400 Informational; PROFILE G-09, G-29).
    applied: Mutex<BTreeMap<[u8; 32], Vec<[u8; 32]>>>,
    /// Transactions whose counterparty credential was found revoked after commit, with that
    /// participant: the dispute path (SPEC-III-A-3-03; PROFILE G-55).
    revoked: Mutex<BTreeMap<[u8; 32], String>>,
}

impl Default for State {
    fn default() -> Self {
        State::new(&[])
    }
}

impl State {
    pub fn new(rails: &[RailConfig]) -> State {
        let s = State {
            configs: rails.to_vec(),
            rails: Mutex::new(BTreeMap::new()),
            local: Mutex::new(BTreeMap::new()),
            ratios: Mutex::new(BTreeMap::new()),
            applied: Mutex::new(BTreeMap::new()),
            revoked: Mutex::new(BTreeMap::new()),
        };
        s.reset();
        s
    }

    /// Rebuild the configured rails and forget every settlement (test-control `reset`).
    pub fn reset(&self) {
        let mut rails = self.rails.lock().unwrap_or_else(|p| p.into_inner());
        rails.clear();
        for c in &self.configs {
            rails.insert(c.id.clone(), build_rail(c));
        }
        drop(rails);
        self.local.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.ratios
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The participant whose credential was revoked after `tx` was committed, when the
    /// re-verification at settlement start found one (SPEC-III-A-3-03; PROFILE G-55).
    pub fn revoked_after_commit(&self, tx: &[u8; 32]) -> Option<String> {
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tx)
            .cloned()
    }

    /// Whether a notice with frame hash `hash` was already applied to `tx`.
    fn was_applied(&self, tx: &[u8; 32], hash: &[u8; 32]) -> bool {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tx)
            .is_some_and(|h| h.contains(hash))
    }

    fn mark_applied(&self, tx: [u8; 32], hash: [u8; 32]) {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tx)
            .or_default()
            .push(hash);
    }

    /// Add (or replace) a rail adapter (SPEC-III-E-1-03).
    pub fn register_rail(&self, rail: Arc<dyn SettlementRail>) {
        self.rails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rail.id().to_owned(), rail);
    }

    pub fn rail(&self, id: &str) -> Option<Arc<dyn SettlementRail>> {
        self.rails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The ids of the configured rails, in order.
    pub fn rail_ids(&self) -> Vec<String> {
        self.rails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Balance of `account` on `rail` in `unit` (ledger rails).
    pub fn balance(&self, rail: &str, account: &str, unit: &str) -> Option<Decimal> {
        self.rail(rail)?.balance(account, unit)
    }

    /// The settlement this agent ran for a transaction.
    pub fn local(&self, tx: &[u8; 32]) -> Option<LocalSettlement> {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tx)
            .cloned()
    }

    fn put_local(&self, tx: [u8; 32], s: LocalSettlement) {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tx, s);
    }

    fn update_local(&self, tx: &[u8; 32], f: impl FnOnce(&mut LocalSettlement)) {
        if let Some(s) = self
            .local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(tx)
        {
            f(s);
        }
    }

    /// The fulfilment ratio announced by `settle {partial}` for a transaction.
    pub fn announced_ratio(&self, tx: &[u8; 32]) -> Option<f32> {
        self.ratios
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tx)
            .copied()
    }
}

// ---------------------------------------------------------------------------------------
// Settlement notice (PROFILE G-20)
// ---------------------------------------------------------------------------------------

/// `settlement-notice.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeType {
    Initiated,
    Confirmed,
    Failed,
    Reversed,
}

impl NoticeType {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeType::Initiated => "settlement_initiated",
            NoticeType::Confirmed => "settlement_confirmed",
            NoticeType::Failed => "settlement_failed",
            NoticeType::Reversed => "settlement_reversed",
        }
    }

    pub fn parse(s: &str) -> Option<NoticeType> {
        match s {
            "settlement_initiated" => Some(NoticeType::Initiated),
            "settlement_confirmed" => Some(NoticeType::Confirmed),
            "settlement_failed" => Some(NoticeType::Failed),
            "settlement_reversed" => Some(NoticeType::Reversed),
            _ => None,
        }
    }
}

/// `settlement-notice` (frame `settlement_notice`, `Agent/Settle`; PROFILE G-20), signed by
/// the settling Agent.
#[derive(Clone, Debug, PartialEq)]
pub struct SettlementNotice {
    pub kind: NoticeType,
    pub mandate_id: MtpUuid,
    pub settlement_id: String,
    pub amount: PriceSpec,
    pub rail_ref: Option<String>,
    pub error: Option<MtpErrorRecord>,
    pub timestamp: Timestamp,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl CborObject for SettlementNotice {
    const NAME: &'static str = "settlement-notice";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text(self.kind.as_str()))
            .put("mandate_id", uuid_value(&self.mandate_id))
            .put("settlement_id", Value::text(self.settlement_id.as_str()))
            .put("amount", self.amount.to_value())
            .put_opt("rail_ref", self.rail_ref.as_deref().map(Value::text))
            .put_opt("error", self.error.as_ref().map(CborObject::to_value))
            .put("timestamp", tdate_value(self.timestamp))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        check_encodable(v)?;
        let req = INTERFACE_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let kind = r.field("type", req, &mut e, |v, p| {
            let s = read_text(v, p, req)?;
            NoticeType::parse(s).ok_or_else(|| {
                ValidationError::invalid(p, req, format!("unknown settlement notice type {s:?}"))
            })
        });
        let mandate_id = r.field("mandate_id", req, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Mandate, req)
        });
        let settlement_id = r.field("settlement_id", req, &mut e, |v, p| {
            read_text(v, p, req).map(str::to_owned)
        });
        let amount = r.field_all("amount", req, &mut e, |v, p| {
            PriceSpec::from_value(v, p, req)
        });
        let rail_ref = r.field_opt("rail_ref", &mut e, |v, p| {
            read_text(v, p, req).map(str::to_owned)
        });
        let error = r.field_opt_all("error", &mut e, |v, p| {
            MtpErrorRecord::from_value(v).map_err(|err| err.nested_under(p, "SPEC-VI-06"))
        });
        let timestamp = r.field("timestamp", req, &mut e, |v, p| read_tdate(v, p, req));
        let signature = read_signature_field(&mut r, req, &mut e);
        let unknown = r.unknown();
        match (
            kind,
            mandate_id,
            settlement_id,
            amount,
            timestamp,
            signature,
        ) {
            (
                Some(kind),
                Some(mandate_id),
                Some(settlement_id),
                Some(amount),
                Some(timestamp),
                Some(sig),
            ) if e.is_empty() => Ok(SettlementNotice {
                kind,
                mandate_id,
                settlement_id,
                amount,
                rail_ref,
                error,
                timestamp,
                signature: Some(sig),
                unknown,
            }),
            _ => Err(e.into_object_error()),
        }
    }
}

mtp_protocol::impl_single_signed!(SettlementNotice);

// ---------------------------------------------------------------------------------------
// Test-control actions
// ---------------------------------------------------------------------------------------

/// This layer's test-control actions (docs/iut-contract.md); `None` for other actions.
pub async fn control(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    Some(match action {
        "configure_rail" => configure_rail(agent, args),
        "settle" => settle(agent, args).await,
        "reset" => {
            agent.settlement.reset();
            Ok(Value::Map(Vec::new()))
        }
        _ => return None,
    })
}

/// `configure_rail {rail, mode, unavailable_attempts?, fail_at?}`. `fail_at` (this agent's
/// extension) = `initiate` / `confirm` / `query` (default for `fail`: the transfer is made
/// and then reported failed, so it must be reversed).
fn configure_rail(agent: &Agent, args: &Value) -> ControlResult {
    let id = crate::services::control::text_arg(args, "rail")?;
    let mode = match crate::services::control::text_arg(args, "mode")? {
        "ok" => FlakyMode::Ok,
        "fail" => FlakyMode::Fail,
        "unavailable" => FlakyMode::Unavailable,
        "fail_reversal" => FlakyMode::FailReversal,
        other => {
            return Err(ControlError::BadArgs(format!(
                "unknown rail mode {other:?}"
            )));
        }
    };
    let attempts = match args.get("unavailable_attempts") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ControlError::BadArgs("unavailable_attempts must be a uint".into())
                })?,
        ),
    };
    let fail_at = match args.get("fail_at") {
        None => None,
        Some(v) => Some(v.as_text().and_then(FailPoint::parse).ok_or_else(|| {
            ControlError::BadArgs("fail_at must be initiate, confirm or query".into())
        })?),
    };
    let rail = agent
        .settlement
        .rail(id)
        .ok_or_else(|| ControlError::NotFound(format!("rail {id:?}")))?;
    rail.configure(FlakyBehaviour::new(mode, attempts, fail_at))
        .map_err(|e| ControlError::BadArgs(e.to_string()))?;
    Ok(Value::map([
        ("rail", Value::text(id)),
        (
            "mode",
            Value::text(args.get("mode").and_then(Value::as_text).unwrap_or("")),
        ),
    ]))
}

/// One failed Settlement Interface operation, after retries.
#[derive(Debug)]
struct OpFailure {
    error: RailError,
    /// A Recoverable error whose retries are spent (SPEC-VI-02).
    escalated: bool,
}

/// Back-off with ±20 % jitter from the agent RNG (PROFILE G-08).
fn jittered(agent: &Agent, backoff_ms: u64) -> Duration {
    let r = u64::from(agent.random::<1>()[0]) % 41; // 0..=40
    Duration::from_millis(backoff_ms.saturating_mul(80 + r) / 100)
}

fn audit_op(
    agent: &Agent,
    tx: &[u8; 32],
    op: &str,
    attempt: u32,
    result: Option<u16>,
    agents: &[String],
) {
    let rec = AuditRecord {
        event: audit_events::SETTLEMENT_OPERATION.into(),
        agents: agents.to_vec(),
        settlement_op: Some(op.to_owned()),
        extensions: vec![
            ("attempt".into(), Value::from(u64::from(attempt))),
            (
                "result".into(),
                match result {
                    None => Value::text("ok"),
                    Some(c) => Value::from(u64::from(c)),
                },
            ),
        ],
        ..AuditRecord::default()
    };
    if let Err(e) = agent.transactions.record(tx, rec, agent.now()) {
        tracing::error!(error = %e, "cannot audit settlement operation");
    }
}

/// Run one Settlement Interface operation: every attempt audited (SPEC-X-C-02); a
/// Recoverable failure (5200) is retried with back-off up to `RETRY_LIMIT`, then escalated
/// (SPEC-VI-02).
async fn run_op<T>(
    agent: &Agent,
    tx: &[u8; 32],
    agents: &[String],
    op: &'static str,
    mut f: impl FnMut() -> Result<T, RailError>,
) -> Result<T, OpFailure> {
    let mut failures = 0u32;
    loop {
        let r = f();
        audit_op(
            agent,
            tx,
            op,
            failures + 1,
            r.as_ref().err().map(|e| e.code().as_u16()),
            agents,
        );
        let error = match r {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        failures += 1;
        let code = error.code();
        if code.severity() != Severity::Recoverable {
            return Err(OpFailure {
                error,
                escalated: false,
            });
        }
        if let Err(e) = agent
            .transactions
            .record_error(tx, code, agents.to_vec(), agent.now())
        {
            tracing::error!(error = %e, "cannot audit rail error");
        }
        let decision = if agent.fault("rail-no-retry") {
            RetryDecision::Escalate
        } else if agent.fault("rail-retry-beyond-limit") && failures <= BEYOND_LIMIT_RETRIES {
            after_failure(code, 1)
        } else {
            after_failure(code, failures)
        };
        match decision {
            RetryDecision::Retry { backoff_ms, .. } => {
                tracing::info!(op, failures, backoff_ms, "rail unavailable, retrying");
                tokio::time::sleep(jittered(agent, backoff_ms)).await;
            }
            RetryDecision::Escalate => {
                return Err(OpFailure {
                    error,
                    escalated: true,
                });
            }
        }
    }
}

/// Everything `settle` needs about a transaction.
struct Context {
    deal: Deal,
    mandate_id: MtpUuid,
    unit: PriceUnit,
    amount: Decimal,
    rail: Arc<dyn SettlementRail>,
    agents: Vec<String>,
}

/// `settle {transaction_id, rail?, partial?}` (SPEC-III-E-02, SPEC-IV-B-I05/I06).
async fn settle(agent: &Agent, args: &Value) -> ControlResult {
    let (deal, terms, mandate_id) = committed_deal(agent, args)?;
    let tx = deal.id;
    let partial = match args.get("partial") {
        None => None,
        Some(v) => {
            let r = v
                .as_f64()
                .ok_or_else(|| ControlError::BadArgs("partial must be a float".into()))?
                as f32;
            if !(r > 0.0 && r < 1.0) {
                return Err(ControlError::BadArgs(format!(
                    "partial {r} outside (0, 1) (PROFILE G-22)"
                )));
            }
            Some(r)
        }
    };
    if deal.mandate_status != Some(MandateStatus::Active) {
        return Err(ControlError::Mtp {
            code: ErrorCode::UndefinedTransition,
            message: format!(
                "the Mandate is {}, settlement starts at activation (PROFILE G-19)",
                deal.mandate_status.map(|s| s.name()).unwrap_or("unknown")
            ),
        });
    }
    let state = agent.transactions.state(&tx);
    // Mandate expired before settlement initiation: Committed → Void (4102, PROFILE G-19).
    if let Some(m) = &deal.mandate
        && agent.now() >= m.expiration
        && state == Some(TxState::Committed)
    {
        let err = mtp_protocol::commitment::MandateError::Expired {
            expiration: m.expiration,
            now: agent.now(),
        };
        agent.raise(Some(tx), &err, None);
        agent
            .deals
            .update(&tx, |d| d.mandate_status = Some(MandateStatus::Void));
        if let Err(e) = agent
            .transactions
            .apply(&tx, TxEvent::MandateExpired, agent.now())
        {
            tracing::error!(error = %e, "cannot void the transaction");
        }
        return Err(ControlError::mtp(&err));
    }
    match state {
        Some(TxState::Committed) => {
            recheck_authority(agent, &deal).await;
            agent
                .transactions
                .apply(&tx, TxEvent::MandateActivated, agent.now())
                .map_err(|e| ControlError::mtp(&e))?;
        }
        Some(TxState::Settling) if agent.settlement.local(&tx).is_none() => {}
        other => {
            return Err(ControlError::Mtp {
                code: ErrorCode::UndefinedTransition,
                message: format!(
                    "settlement cannot start in state {}",
                    other.map(|s| s.name()).unwrap_or("unknown")
                ),
            });
        }
    }
    let rail_id = match args.get("rail").and_then(Value::as_text) {
        Some(r) => r.to_owned(),
        None if agent.settlement.rail(&terms.settlement.rail).is_some() => {
            terms.settlement.rail.clone()
        }
        // The Terms' rail has no adapter here: the first configured one (the layer is
        // rail-agnostic, SPEC-III-E-01).
        None => agent
            .settlement
            .rail_ids()
            .into_iter()
            .next()
            .ok_or_else(|| ControlError::NotFound("no settlement rail is configured".into()))?,
    };
    let rail = agent
        .settlement
        .rail(&rail_id)
        .ok_or_else(|| ControlError::NotFound(format!("rail {rail_id:?}")))?;
    let unit = terms.price.unit.clone();
    let amount = Decimal::from_number(&terms.price.amount)
        .and_then(|a| normalize(a, unit.as_str()))
        .map_err(|e| ControlError::mtp(&e))?;
    let payer = participant(&terms, PRole::Requester).unwrap_or_default();
    let payee = participant(&terms, PRole::Provider).unwrap_or_default();
    if let Some(r) = partial {
        agent
            .settlement
            .ratios
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tx, r);
    }
    let request = SettlementRequest {
        mandate_id,
        amount,
        unit: unit.as_str().to_owned(),
        payer: payer.clone(),
        payee: payee.clone(),
        rail: rail_id.clone(),
        escrow: terms.settlement.escrow.unwrap_or(false),
    };
    let mut agents = vec![payer, payee];
    agents.dedup();
    let ctx = Context {
        deal,
        mandate_id,
        unit,
        amount,
        rail,
        agents,
    };
    // Extension `wait: false` (contract rule 5 leaves room): answer once the settlement is
    // started and run it in the background, so that its outcome is observed on the wire.
    if args.get("wait").and_then(Value::as_bool) == Some(false) {
        let background = agent.clone();
        tokio::spawn(async move {
            if let Err(e) = run_settlement(&background, &ctx, &request).await {
                tracing::info!(error = ?e, "settlement (wait: false) failed");
            }
        });
        return Ok(Value::map([
            ("status", Value::text("started")),
            ("rail", Value::text(rail_id)),
        ]));
    }
    let result = run_settlement(agent, &ctx, &request).await?;
    let mut out = vec![
        ("settlement_id", Value::text(result.0.clone())),
        ("status", Value::text("confirmed")),
        ("rail", Value::text(rail_id)),
        ("rail_ref", Value::text(result.1)),
        ("amount", price_spec(ctx.amount, &ctx.unit).to_value()),
    ];
    if let Some(r) = partial {
        let p = adjusted_amount(&ctx.amount.to_number(), &ctx.unit, r)
            .map_err(|e| ControlError::mtp(&e))?;
        out.push(("fulfillment_ratio", Value::Float(f64::from(r))));
        out.push((
            "adjusted_amount",
            price_spec(p.adjusted(), &ctx.unit).to_value(),
        ));
        out.push((
            "reversal_amount",
            price_spec(p.reversal(), &ctx.unit).to_value(),
        ));
    }
    Ok(Value::map(out))
}

/// When the settlement of a committed transaction starts, every other participant's
/// delegation chain is verified again: a credential revoked after commit is not a refusal
/// but the dispute path — 1102 audited, no transition, the Receipt at Verifying is
/// `disputed` (SPEC-III-A-3-03; PROFILE G-18, G-55). Other failures were judged at commit.
async fn recheck_authority(agent: &Agent, deal: &Deal) {
    if agent.fault("revocation-after-commit-ignored") {
        return;
    }
    let Some(m) = &deal.mandate else { return };
    let committed_at = agent.transactions.get(&deal.id).and_then(|r| {
        r.audit
            .entries()
            .iter()
            .find(|e| e.to_state == Some(TxState::Committed))
            .map(|e| e.timestamp)
    });
    let Some(committed_at) = committed_at else {
        return;
    };
    match super::commitment::verify_attestations(agent, &deal.id, m, Some(committed_at)).await {
        Ok(()) => {}
        Err(super::commitment::CommitmentError::Authority { participant, error })
            if error.is_dispute() =>
        {
            agent.raise(Some(deal.id), &*error, Some(&participant));
            agent
                .settlement
                .revoked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(deal.id, participant);
        }
        Err(e) => tracing::info!(error = %e, "delegation re-check at settlement start"),
    }
}

/// initiate → confirm → query; Settling → Verifying, or the failure path.
async fn run_settlement(
    agent: &Agent,
    ctx: &Context,
    request: &SettlementRequest,
) -> Result<(String, String), ControlError> {
    let tx = ctx.deal.id;
    let rail = ctx.rail.clone();
    let settlement_id = match run_op(agent, &tx, &ctx.agents, "initiate", || {
        rail.initiate(request)
    })
    .await
    {
        Ok(id) => id,
        Err(f) => return Err(settlement_failed(agent, ctx, None, f).await),
    };
    agent.settlement.put_local(
        tx,
        LocalSettlement {
            rail: rail.id().to_owned(),
            settlement_id: settlement_id.clone(),
            amount: ctx.amount,
            unit: ctx.unit.clone(),
            confirmed: false,
            reversed: Decimal::ZERO,
        },
    );
    agent.deals.update(&tx, |d| {
        d.settlement = Some((rail.id().to_owned(), settlement_id.clone()));
    });
    send_notice(
        agent,
        ctx,
        NoticeType::Initiated,
        &settlement_id,
        ctx.amount,
        None,
        None,
    )
    .await;
    let rail_ref = match run_op(agent, &tx, &ctx.agents, "confirm", || {
        rail.confirm(&settlement_id)
    })
    .await
    {
        Ok(r) => r,
        Err(f) => return Err(settlement_failed(agent, ctx, Some(&settlement_id), f).await),
    };
    agent.settlement.update_local(&tx, |l| l.confirmed = true);
    let status = run_op(agent, &tx, &ctx.agents, "query", || {
        rail.query(&settlement_id)
    })
    .await;
    let failure = match status {
        Ok(SettlementStatus::Confirmed) => None,
        Ok(other) => Some(OpFailure {
            error: RailError::Failed {
                rail: rail.id().to_owned(),
                reason: format!("the rail reports the settlement {}", other.name()),
            },
            escalated: false,
        }),
        Err(f) => Some(f),
    };
    if let Some(f) = failure {
        return Err(settlement_failed(agent, ctx, Some(&settlement_id), f).await);
    }
    // T5 (SPEC-IV-B-I05).
    agent
        .transactions
        .apply(&tx, TxEvent::SettlementConfirmed, agent.now())
        .map_err(|e| ControlError::mtp(&e))?;
    send_notice(
        agent,
        ctx,
        NoticeType::Confirmed,
        &settlement_id,
        ctx.amount,
        (!agent.fault("settlement-confirmed-without-rail-ref")).then(|| rail_ref.clone()),
        None,
    )
    .await;
    settlement_confirmed(agent, &ctx.mandate_id);
    Ok((settlement_id, rail_ref))
}

/// Conditional Mandates waiting on `settlement_confirmed` for `mandate_id` (SPEC III-D-2).
fn settlement_confirmed(agent: &Agent, mandate_id: &MtpUuid) {
    super::commitment::record_event(agent, "settlement_confirmed", Some(*mandate_id));
}

/// A Fatal settlement failure (SPEC-VI-01, SPEC-IV-B-I06): raise, reverse what was
/// confirmed (5100 when that fails), Settling → Failed, `settlement_failed` notice and an
/// error notification to every party. Returns the action's error (5100 when the
/// reversal failed, else the failure's code).
async fn settlement_failed(
    agent: &Agent,
    ctx: &Context,
    settlement_id: Option<&str>,
    failure: OpFailure,
) -> ControlError {
    let tx = ctx.deal.id;
    let err = failure.error;
    agent.raise(Some(tx), &err, None);
    let mut record = plumbing::error_record(agent, Some(tx), &err);
    if failure.escalated {
        record = record.escalated();
    }
    let mut records = vec![record.clone()];
    let mut final_error = ControlError::Mtp {
        code: err.code(),
        message: if failure.escalated {
            format!("{err} (retry limit spent: escalated to Fatal)")
        } else {
            err.to_string()
        },
    };
    // SPEC-VI-01: reverse a settlement that had been confirmed.
    let mut reversal = None;
    if let (Some(sid), Some(local)) = (settlement_id, agent.settlement.local(&tx))
        && local.confirmed
        && !agent.fault("no-reversal-after-failed-settlement")
    {
        match reverse_remaining(agent, ctx, sid, &local).await {
            Ok(r) => reversal = Some(r),
            Err(f) => {
                let e = f.error;
                agent.raise(Some(tx), &e, None);
                records.push(plumbing::error_record(agent, Some(tx), &e));
                final_error = ControlError::Mtp {
                    code: e.code(),
                    message: format!("{err}; then {e}"),
                };
            }
        }
    }
    plumbing::end_transaction(agent, tx, err.code(), failure.escalated);
    if let Some(sid) = settlement_id {
        send_notice(
            agent,
            ctx,
            NoticeType::Failed,
            sid,
            ctx.amount,
            None,
            Some(record),
        )
        .await;
        if let Some((amount, rail_ref)) = reversal {
            send_notice(
                agent,
                ctx,
                NoticeType::Reversed,
                sid,
                amount,
                Some(rail_ref),
                None,
            )
            .await;
        }
    }
    for r in records {
        plumbing::notify_error(agent, tx, &ctx.deal.counterparties, r).await;
    }
    final_error
}

/// Reverse everything not yet reversed.
async fn reverse_remaining(
    agent: &Agent,
    ctx: &Context,
    settlement_id: &str,
    local: &LocalSettlement,
) -> Result<(Decimal, String), OpFailure> {
    let left = dec_sub(local.amount, local.reversed).map_err(|e| OpFailure {
        error: e.into(),
        escalated: false,
    })?;
    reverse(
        agent,
        ctx.deal.id,
        &ctx.agents,
        &ctx.rail,
        settlement_id,
        left,
    )
    .await
}

/// One Reverse Settlement (retried like every operation; 5100 when it fails).
async fn reverse(
    agent: &Agent,
    tx: [u8; 32],
    agents: &[String],
    rail: &Arc<dyn SettlementRail>,
    settlement_id: &str,
    amount: Decimal,
) -> Result<(Decimal, String), OpFailure> {
    let r = run_op(agent, &tx, agents, "reverse", || {
        rail.reverse(settlement_id, amount)
    })
    .await
    .map_err(|f| OpFailure {
        // A reversal that cannot be made is a reversal failure (5100), whatever the
        // rail said (G-17: no further reversal is attempted).
        error: match f.error {
            e @ RailError::ReversalFailed { .. } => e,
            other => RailError::ReversalFailed {
                rail: rail.id().to_owned(),
                reason: other.to_string(),
            },
        },
        escalated: false,
    })?;
    agent.settlement.update_local(&tx, |l| {
        if let Ok(x) = dec_add(l.reversed, amount) {
            l.reversed = x;
        }
    });
    Ok((amount, r))
}

/// After a Receipt (issued or received), the Agent that settled adjusts the settlement
/// (PROFILE G-20; SPEC-II-D-07, SPEC-III-E-3-01): `failed` → full reversal;
/// `partially_fulfilled` → reversal of `amount − round_half_even(amount × ratio)`
/// (SPEC-III-E-2-03); `fulfilled` → none; `disputed` → none until the final determination.
pub async fn after_receipt(agent: &Agent, deal: &Deal, receipt: &Receipt) {
    let tx = deal.id;
    let Some(local) = agent.settlement.local(&tx) else {
        return;
    };
    if !local.confirmed {
        return;
    }
    let kept = match receipt.outcome {
        Outcome::Disputed => return,
        Outcome::Fulfilled if agent.fault("reverse-on-every-receipt") => Decimal::ZERO,
        Outcome::Fulfilled => local.amount,
        Outcome::Failed if agent.fault("no-reversal-on-failed-receipt") => return,
        Outcome::Failed => Decimal::ZERO,
        Outcome::PartiallyFulfilled if agent.fault("partial-reversal-full-amount") => Decimal::ZERO,
        Outcome::PartiallyFulfilled => {
            let Some(pf) = &receipt.partial_fulfillment else {
                return;
            };
            match adjusted_amount(&local.amount.to_number(), &local.unit, pf.fulfillment_ratio) {
                Ok(p) => p.adjusted(),
                Err(e) => {
                    agent.raise(Some(tx), &e, None);
                    return;
                }
            }
        }
    };
    let Ok(left) = dec_sub(local.amount, local.reversed) else {
        return;
    };
    let Ok(to_reverse) = dec_sub(left, kept) else {
        return;
    };
    if !dec_positive(to_reverse) {
        return;
    }
    let Some(rail) = agent.settlement.rail(&local.rail) else {
        return;
    };
    let Some(terms) = deal_terms(deal) else {
        return;
    };
    let mut agents = vec![
        participant(&terms, PRole::Requester).unwrap_or_default(),
        participant(&terms, PRole::Provider).unwrap_or_default(),
    ];
    agents.dedup();
    let Some(mandate_id) = deal.mandate.as_ref().map(|m| m.mandate_id) else {
        return;
    };
    let ctx = Context {
        deal: deal.clone(),
        mandate_id,
        unit: local.unit.clone(),
        amount: local.amount,
        rail: rail.clone(),
        agents: agents.clone(),
    };
    match reverse(agent, tx, &agents, &rail, &local.settlement_id, to_reverse).await {
        Ok((amount, rail_ref)) => {
            send_notice(
                agent,
                &ctx,
                NoticeType::Reversed,
                &local.settlement_id,
                amount,
                Some(rail_ref),
                None,
            )
            .await;
        }
        Err(f) => {
            // 5100 is Fatal: a Disputed transaction ends Failed; every party is told.
            plumbing::terminate(agent, tx, &f.error, None, false).await;
        }
    }
}

/// Sign and send a settlement notice to every other party.
async fn send_notice(
    agent: &Agent,
    ctx: &Context,
    kind: NoticeType,
    settlement_id: &str,
    amount: Decimal,
    rail_ref: Option<String>,
    error: Option<MtpErrorRecord>,
) {
    let mut notice = SettlementNotice {
        kind,
        mandate_id: ctx.mandate_id,
        settlement_id: settlement_id.to_owned(),
        amount: price_spec(amount, &ctx.unit),
        rail_ref,
        error,
        timestamp: agent.now(),
        signature: None,
        unknown: Map::new(),
    };
    if let Err(e) = notice.sign(&agent.keys.signing, plumbing::key_id(agent)) {
        tracing::error!(error = %e, "cannot sign settlement notice");
        return;
    }
    let frame = match wire::Frame::new("settlement_notice", notice.to_value()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot frame settlement notice");
            return;
        }
    };
    plumbing::broadcast(
        agent,
        ctx.deal.id,
        &ctx.deal.counterparties,
        Rpc::Settle,
        &frame,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// MTPSync handler and notifications
// ---------------------------------------------------------------------------------------

/// A notification received over `Agent/Notify` or NATS (SPEC VI): Settlement errors
/// (5xxx), and errors of other layers for transactions in Settling, are recorded and end
/// the transaction when Fatal (escalated 5200 / 5101 by `settlement_failed`, T6).
pub async fn on_notification(agent: &Agent, notification: &Notification) -> Result<(), Status> {
    plumbing::on_error_notification(agent, notification, |layer, state| {
        layer == Layer::Settlement
            || (!matches!(
                layer,
                Layer::Settlement | Layer::Verification | Layer::Attribution
            ) && state == TxState::Settling)
    })
    .await
}

/// `Agent/Settle` (PROFILE G-09, G-20): a signed settlement notice from the settling party.
/// `settlement_initiated` in Committed → Settling (T4); `settlement_confirmed` in Settling →
/// Verifying (T5); `settlement_failed` in Settling → Failed (T6); `settlement_reversed` is
/// recorded. Any other combination is an undefined transition (0105, SPEC-IV-02).
pub async fn on_settle(
    agent: &Agent,
    request: Request<pb::Frame>,
) -> Result<Response<pb::Frame>, Status> {
    let rpc = Rpc::Settle;
    let sender = plumbing::sender_of(&request);
    let frame = plumbing::receive(agent, &request, rpc, sender.as_deref())?;
    let peer = sender.clone().unwrap_or_default();
    let notice = SettlementNotice::from_value(&frame.body).map_err(|e| {
        plumbing::refuse(
            agent,
            None,
            &VerificationError::Object(e),
            rpc,
            sender.as_deref(),
        )
    })?;
    let deal = plumbing::find_deal(agent, &notice.mandate_id, &peer)
        .map_err(|e| plumbing::refuse(agent, None, &e, rpc, sender.as_deref()))?;
    let tx = deal.id;
    plumbing::audit_message(agent, Some(tx), false, &frame, &peer);
    let ok = plumbing::verify_signed(agent, &notice, &peer);
    plumbing::audit_signature(agent, tx, frame.hash, ok.is_ok(), &peer);
    if let Err(e) = ok {
        return Err(plumbing::fatal_refusal(agent, tx, &e, rpc, &peer).await);
    }
    // A byte-identical redelivery: Informational 0400, logged, answered like the original
    // and without effect on the transaction (SPEC-VI-I05; PROFILE G-09, G-29).
    if agent.settlement.was_applied(&tx, &frame.hash) {
        agent.warn(
            Some(tx),
            ErrorCode::DuplicateDeliveryIgnored,
            format!("settlement notice {} received again", notice.settlement_id),
        );
        if agent.fault("informational-fails-call") {
            return Err(plumbing::refuse(
                agent,
                Some(tx),
                &super::negotiation::CodeError(ErrorCode::DuplicateDeliveryIgnored),
                rpc,
                Some(&peer),
            ));
        }
        return plumbing::ack(agent, Some(tx), &frame, &peer, rpc);
    }
    let state = agent.transactions.state(&tx);
    let event = match (notice.kind, state) {
        (NoticeType::Initiated, Some(TxState::Committed)) => Some(TxEvent::MandateActivated),
        (NoticeType::Initiated, Some(TxState::Settling)) => None,
        (NoticeType::Confirmed, Some(TxState::Settling)) => Some(TxEvent::SettlementConfirmed),
        (NoticeType::Failed, Some(TxState::Settling)) => Some(TxEvent::SettlementFailed),
        // Already ended by the error notification: nothing left to do.
        (NoticeType::Failed, Some(TxState::Failed)) => None,
        (NoticeType::Reversed, _) => None,
        (kind, s) => {
            let err = mtp_protocol::state_machine::TransitionError::Undefined {
                from: s.unwrap_or(TxState::Initiated),
                event: match kind {
                    NoticeType::Initiated => TxEvent::MandateActivated,
                    NoticeType::Confirmed => TxEvent::SettlementConfirmed,
                    _ => TxEvent::SettlementFailed,
                },
            };
            if s.is_some_and(|s| s.is_terminal()) {
                return Err(plumbing::refuse(agent, Some(tx), &err, rpc, Some(&peer)));
            }
            return Err(plumbing::fatal_refusal(agent, tx, &err, rpc, &peer).await);
        }
    };
    if notice.kind == NoticeType::Failed
        && let Some(e) = &notice.error
    {
        plumbing::record_received_error(agent, Some(tx), Some(e.code), &peer);
    }
    if event == Some(TxEvent::MandateActivated) {
        recheck_authority(agent, &deal).await;
    }
    if let Some(ev) = event
        && let Err(e) = agent.transactions.apply(&tx, ev, agent.now())
    {
        return Err(plumbing::fatal_refusal(agent, tx, &e, rpc, &peer).await);
    }
    if notice.kind == NoticeType::Initiated || notice.kind == NoticeType::Confirmed {
        agent.deals.update(&tx, |d| {
            d.settlement = Some((
                d.settlement
                    .as_ref()
                    .map(|s| s.0.clone())
                    .unwrap_or_else(|| "remote".into()),
                notice.settlement_id.clone(),
            ));
        });
    }
    if notice.kind == NoticeType::Confirmed {
        settlement_confirmed(agent, &notice.mandate_id);
    }
    agent.settlement.mark_applied(tx, frame.hash);
    plumbing::ack(agent, Some(tx), &frame, &peer, rpc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(amount: &str) -> SettlementRequest {
        SettlementRequest {
            mandate_id: MtpUuid::new(ObjectType::Mandate, 1, [0; 6], [3; 17]),
            amount: normalize(Decimal::parse(amount).expect("amount"), "USD").expect("normalize"),
            unit: "USD".into(),
            payer: "did:mtp:payer".into(),
            payee: "did:mtp:payee".into(),
            rail: "ledger".into(),
            escrow: false,
        }
    }

    fn bal(r: &dyn SettlementRail, who: &str) -> String {
        r.balance(who, "USD").expect("balance").to_string()
    }

    #[test]
    fn ledger_is_double_entry_and_atomic() {
        let l = LedgerRail::new("ledger");
        let id = l.initiate(&req("89.00")).expect("initiate");
        assert_eq!(l.query(&id), Ok(SettlementStatus::Initiated));
        assert_eq!(bal(&l, "did:mtp:payer"), "0");
        l.confirm(&id).expect("confirm");
        assert_eq!(bal(&l, "did:mtp:payer"), "-89.00");
        assert_eq!(bal(&l, "did:mtp:payee"), "89.00");
        // Partial reversal: exactly amount − adjusted (PROFILE G-20).
        let p = adjusted_amount(
            &Decimal::parse("89").expect("d").to_number(),
            &PriceUnit::parse("USD").expect("u"),
            0.3,
        )
        .expect("adjust");
        l.reverse(&id, p.reversal()).expect("reverse");
        assert_eq!(bal(&l, "did:mtp:payee"), "26.70");
        assert_eq!(l.query(&id), Ok(SettlementStatus::PartiallyReversed));
        // More than what is left is refused and changes nothing.
        assert!(matches!(
            l.reverse(&id, Decimal::parse("30").expect("d")),
            Err(RailError::ReversalFailed { .. })
        ));
        assert_eq!(bal(&l, "did:mtp:payee"), "26.70");
        l.reverse(&id, Decimal::parse("26.70").expect("d"))
            .expect("rest");
        assert_eq!(l.query(&id), Ok(SettlementStatus::Reversed));
        assert_eq!(bal(&l, "did:mtp:payer"), "0.00");
        let journal = l.journal();
        assert_eq!(journal.len(), 3);
        assert!(matches!(
            l.query("nope"),
            Err(RailError::UnknownSettlement { .. })
        ));
    }

    #[test]
    fn flaky_modes() {
        let f = FlakyRail::new(
            "flaky",
            FlakyBehaviour::new(FlakyMode::Unavailable, Some(2), None),
        );
        assert_eq!(
            f.initiate(&req("1")).expect_err("1st").code(),
            ErrorCode::RailTemporarilyUnavailable
        );
        assert!(f.initiate(&req("1")).is_err());
        let id = f.initiate(&req("1")).expect("3rd attempt");
        f.configure(FlakyBehaviour::new(FlakyMode::Fail, None, None))
            .expect("configure");
        f.confirm(&id).expect("the transfer is made");
        assert_eq!(f.query(&id), Ok(SettlementStatus::Failed));
        f.configure(FlakyBehaviour::new(FlakyMode::FailReversal, None, None))
            .expect("configure");
        assert_eq!(
            f.reverse(&id, Decimal::parse("1").expect("d"))
                .expect_err("reversal fails")
                .code(),
            ErrorCode::SettlementReversalFailed
        );
        f.configure(FlakyBehaviour::new(
            FlakyMode::Fail,
            None,
            Some(FailPoint::Initiate),
        ))
        .expect("configure");
        assert_eq!(
            f.initiate(&req("1")).expect_err("fails").code(),
            ErrorCode::SettlementFailed
        );
        assert!(
            LedgerRail::new("l")
                .configure(FlakyBehaviour::new(FlakyMode::Ok, None, None))
                .is_err()
        );
    }

    #[test]
    fn notice_round_trip() {
        let key = mtp_protocol::crypto::SigningKey::from_seed(
            mtp_protocol::crypto::SignatureAlgorithm::MlDsa65,
            &[9; 32],
        );
        let mut n = SettlementNotice {
            kind: NoticeType::Confirmed,
            mandate_id: MtpUuid::new(ObjectType::Mandate, 1, [0; 6], [3; 17]),
            settlement_id: "ledger-1".into(),
            amount: PriceSpec::new(
                mtp_protocol::primitives::common::Number::Float(0.08),
                PriceUnit::parse("USD").expect("unit"),
            ),
            rail_ref: Some("r".into()),
            error: None,
            timestamp: Timestamp::from_unix_secs(1_800_000_000).expect("t"),
            signature: None,
            unknown: Map::new(),
        };
        n.sign(&key, None).expect("sign");
        let back = SettlementNotice::from_cbor(&n.to_cbor()).expect("decodes");
        assert_eq!(back, n);
        back.verify_signature(&key.public_key()).expect("verifies");
        let bad = Value::map([("type", Value::text("settlement_paid"))]);
        assert_eq!(
            SettlementNotice::from_value(&bad).expect_err("bad").code(),
            ErrorCode::SchemaViolation
        );
    }
}
