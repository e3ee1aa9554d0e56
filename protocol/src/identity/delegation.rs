//! Authority Delegation Certificates (`MTPAuthorityDelegation`) and delegation chains
//! (SPEC-III-A-2-01..06, BIND-III-B-01..05; PROFILE G-04, G-33).
//!
//! An ADC is a VC 2.0 credential (`@context` = credentials v2, status list 2021 v1, MTP v1;
//! `type` = `["VerifiableCredential", "MTPAuthorityDelegation"]`) issued by the Principal, or
//! in hierarchical delegation by the delegating Agent (BIND-III-B-03), whose
//! `credentialSubject` is
//!
//! ```json
//! { "id": "<delegatee Agent did:mtp>",             // BIND-III-B-02
//!   "principal": "<Principal DID>",                // optional; checked when present
//!   "scope": ["<classifier>", …],                   // PROFILE G-07
//!   "maxTransactionValue": {"amount": 500, "currency": "USD"},   // amount: JSON number
//!   "maxTransactionValueCommitment": "<base64url of 32 bytes>",  // optional, PROFILE G-36
//!   "permittedJurisdictions": ["US", …],            // ISO 3166-1 alpha-2
//!   "permittedPaymentRails": ["<rail id>", …],
//!   "permittedCounterpartyClasses": ["<class>", …], // optional; absent = unrestricted
//!   "constraints": { … } }
//! ```
//!
//! with `validFrom`, `validUntil` and a `credentialStatus` revocation entry required
//! (PROFILE G-33, BIND-III-B-05). Every missing or invalid claim is 1101.
//!
//! [`verify_chain`] verifies a chain Principal → … → Agent of any depth (SPEC-III-A-2-02):
//! per link the proof (`credential::verify`, 1100 for a bad signature), the type and
//! claims, the linkage (link 0 issued by the Principal, link i by the subject of link i−1,
//! the last subject the Agent; broken → 1101), the validity window at the transaction start
//! (expired = scheduled revocation → 1102, not yet valid → 1101), the status list (revoked →
//! 1102; after commit the typed dispute disposition, PROFILE G-55) and the subset rule
//! against the preceding link (SPEC-III-A-2-04; → 1101). The result is the
//! [`EffectiveAuthority`], which enforces value type, amount, jurisdiction, rail and
//! counterparty class (PROFILE G-33; → 1101).

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::errors::{Coded, ErrorCode};
use crate::identity::credential::{self, Credential, CredentialError, KeyResolver};
use crate::identity::did::{AnyDid, Did};
use crate::identity::jsonld;
use crate::identity::status_list::{
    self, ExpiryWarning, RevocationDisposition, StatusEntry, StatusListError, StatusOutcome,
    StatusPurpose, StatusSource, TransactionTimes, ValidityWindow,
};
use crate::primitives::common::{PriceSpec, PriceUnit};
use crate::primitives::request::DelegationLink;
use crate::taxonomy::Classifier;
use crate::time::Timestamp;
use crate::verification::{Decimal, minor_unit_exponent};

/// The ADC credential type (BIND-III-B-01).
pub const ADC_TYPE: &str = "MTPAuthorityDelegation";
/// Claims (BIND-III-B-04; PROFILE G-33, G-36).
pub const SCOPE: &str = "scope";
pub const MAX_TRANSACTION_VALUE: &str = "maxTransactionValue";
pub const MAX_TRANSACTION_VALUE_COMMITMENT: &str = "maxTransactionValueCommitment";
pub const PERMITTED_JURISDICTIONS: &str = "permittedJurisdictions";
pub const PERMITTED_PAYMENT_RAILS: &str = "permittedPaymentRails";
pub const PERMITTED_COUNTERPARTY_CLASSES: &str = "permittedCounterpartyClasses";
pub const CONSTRAINTS: &str = "constraints";
pub const PRINCIPAL: &str = "principal";
/// Minor-unit exponent of custom (`ext:…`) units (PROFILE G-03).
pub const CUSTOM_UNIT_EXPONENT: u32 = 6;
/// Longest rail / counterparty-class identifier accepted.
pub const MAX_IDENTIFIER_LEN: usize = 256;

/// One dimension of delegated authority (SPEC-III-A-2-01).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    Scope,
    MaxTransactionValue,
    Jurisdictions,
    PaymentRails,
    CounterpartyClasses,
    ValidityWindow,
}

/// A child link exceeding its parent in one dimension (SPEC-III-A-2-04, SPEC-III-A-2-05;
/// PROFILE G-33). Always 1101.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubsetViolation {
    #[error("scope {classifier} is not within any parent scope")]
    Scope { classifier: String },
    #[error("maxTransactionValue currency {child} differs from the parent's {parent}")]
    Currency { parent: String, child: String },
    #[error("maxTransactionValue {child} exceeds the parent's {parent}")]
    Value { parent: String, child: String },
    /// Only the last link may hide its limit (PROFILE G-36).
    #[error("the parent's maxTransactionValue is hidden, so this link cannot be checked")]
    HiddenParentLimit,
    #[error("jurisdiction {code} is not permitted by the parent")]
    Jurisdiction { code: String },
    #[error("payment rail {rail} is not permitted by the parent")]
    PaymentRail { rail: String },
    #[error("counterparty class {class} is not permitted by the parent")]
    CounterpartyClass { class: String },
    #[error("unrestricted counterparty classes under a restricted parent")]
    CounterpartyClassesUnrestricted,
    #[error("validFrom {child} is before the parent's {parent}")]
    ValidFrom { parent: Timestamp, child: Timestamp },
    #[error("validUntil {child} is after the parent's {parent}")]
    ValidUntil { parent: Timestamp, child: Timestamp },
}

impl SubsetViolation {
    pub fn dimension(&self) -> Dimension {
        match self {
            SubsetViolation::Scope { .. } => Dimension::Scope,
            SubsetViolation::Currency { .. }
            | SubsetViolation::Value { .. }
            | SubsetViolation::HiddenParentLimit => Dimension::MaxTransactionValue,
            SubsetViolation::Jurisdiction { .. } => Dimension::Jurisdictions,
            SubsetViolation::PaymentRail { .. } => Dimension::PaymentRails,
            SubsetViolation::CounterpartyClass { .. }
            | SubsetViolation::CounterpartyClassesUnrestricted => Dimension::CounterpartyClasses,
            SubsetViolation::ValidFrom { .. } | SubsetViolation::ValidUntil { .. } => {
                Dimension::ValidityWindow
            }
        }
    }
}

impl Coded for SubsetViolation {
    fn code(&self) -> ErrorCode {
        ErrorCode::AuthorityAttestationInvalid
    }
    fn requirement(&self) -> Option<&'static str> {
        Some("SPEC-III-A-2-04")
    }
}

/// Why an ADC or a chain is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DelegationError {
    /// `type` lacks `MTPAuthorityDelegation` (1101).
    #[error("credential type is not MTPAuthorityDelegation")]
    NotDelegation,
    /// A required `@context` is missing (1101).
    #[error("@context must include {0}")]
    Context(&'static str),
    /// A claim is missing or invalid (1101).
    #[error("{claim}: {reason}")]
    Claim { claim: &'static str, reason: String },
    /// The credential is not a VC or its proof fails (the credential error's code: 1100
    /// for a bad signature).
    #[error("credential: {0}")]
    Credential(CredentialError),
    /// The status information is unusable, or the link is outside its validity window
    /// (its code: 1102 expired, 1101 otherwise).
    #[error("status: {0}")]
    Status(StatusListError),
    /// The status list marks the link revoked (1102); the disposition says whether the
    /// transaction is refused or goes the dispute path (PROFILE G-55).
    #[error("revoked ({disposition:?})")]
    Revoked {
        index: u64,
        purpose: StatusPurpose,
        disposition: RevocationDisposition,
    },
    /// Authority wider than the preceding link (1101).
    #[error("not a subset of the preceding link: {}", .0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
    Subset(Vec<SubsetViolation>),
    /// No link at all (1101; PROFILE G-04).
    #[error("empty delegation chain")]
    EmptyChain,
    /// Link issuer is not the Principal / the previous subject (1101).
    #[error("issuer {found}, expected {expected}")]
    IssuerMismatch { expected: String, found: String },
    /// The last subject is not the Agent, or a `delegation-link` disagrees with its
    /// credential (1101).
    #[error("subject {found}, expected {expected}")]
    SubjectMismatch { expected: String, found: String },
    /// A `principal` claim naming another Principal (1101).
    #[error("principal claim {found}, expected {expected}")]
    PrincipalMismatch { expected: String, found: String },
}

impl Coded for DelegationError {
    fn code(&self) -> ErrorCode {
        match self {
            DelegationError::Credential(e) => e.code(),
            DelegationError::Status(e) => e.code(),
            DelegationError::Revoked { .. } => ErrorCode::CredentialRevoked,
            _ => ErrorCode::AuthorityAttestationInvalid,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            DelegationError::NotDelegation => "BIND-III-B-01",
            DelegationError::Context(_) | DelegationError::Claim { .. } => "BIND-III-B-04",
            DelegationError::Credential(e) => return e.requirement(),
            DelegationError::Status(e) => return e.requirement(),
            DelegationError::Revoked { disposition, .. } => {
                if disposition.is_dispute() {
                    "SPEC-III-A-3-03"
                } else {
                    "SPEC-III-A-3-02"
                }
            }
            DelegationError::Subset(_) => "SPEC-III-A-2-04",
            DelegationError::EmptyChain => "SPEC-III-A-2-06",
            DelegationError::IssuerMismatch { .. } => "BIND-III-B-03",
            DelegationError::SubjectMismatch { .. } => "BIND-III-B-02",
            DelegationError::PrincipalMismatch { .. } => "SPEC-III-A-2-01",
        })
    }
}

/// A chain failure at link `index` (0 = issued by the Principal).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("delegation link {index}: {error}")]
pub struct ChainError {
    pub index: usize,
    pub error: DelegationError,
}

impl ChainError {
    /// Revoked after commit: the dispute path rather than a refusal (PROFILE G-55).
    pub fn is_dispute(&self) -> bool {
        matches!(&self.error, DelegationError::Revoked { disposition, .. } if disposition.is_dispute())
    }
}

impl Coded for ChainError {
    fn code(&self) -> ErrorCode {
        self.error.code()
    }
    fn requirement(&self) -> Option<&'static str> {
        self.error.requirement()
    }
}

fn claim(claim: &'static str, reason: impl Into<String>) -> DelegationError {
    DelegationError::Claim {
        claim,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------

/// `maxTransactionValue` at the currency's precision (PROFILE G-03).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxTransactionValue {
    /// The amount as written.
    pub amount: Decimal,
    pub currency: String,
    /// Minor-unit exponent of the currency (ISO 4217, `MTP_COMPUTE_CREDIT` 6, `ext:` 6).
    pub exponent: u32,
    /// The amount in minor units, rounded half to even.
    pub minor_units: i128,
    /// A hidden limit (PROFILE G-36): the claim is `{currency}` only and the credential
    /// carries `maxTransactionValueCommitment`; `amount` and `minor_units` are then 0, so
    /// every visible comparison fails safe and an amount needs a zk_range proof
    /// ([`EffectiveAuthority::check_amount_proven`]).
    pub hidden: bool,
}

/// Precision of a money unit (PROFILE G-03): ISO 4217 minor units, `MTP_COMPUTE_CREDIT` 6,
/// custom units 6; `RECIPROCAL` and ISO codes without minor units have none.
pub fn unit_exponent(unit: &str) -> Option<u32> {
    match PriceUnit::parse(unit).ok()? {
        PriceUnit::Custom(_) => Some(CUSTOM_UNIT_EXPONENT),
        PriceUnit::Reciprocal => None,
        _ => minor_unit_exponent(unit),
    }
}

impl MaxTransactionValue {
    pub fn new(amount: Decimal, currency: &str) -> Result<MaxTransactionValue, DelegationError> {
        if amount.mantissa < 0 {
            return Err(claim(MAX_TRANSACTION_VALUE, "amount is negative"));
        }
        let exponent = unit_exponent(currency).ok_or_else(|| {
            claim(
                MAX_TRANSACTION_VALUE,
                format!("currency {currency:?} has no defined precision (PROFILE G-03)"),
            )
        })?;
        let minor_units = amount
            .to_scaled_half_even(exponent)
            .map_err(|e| claim(MAX_TRANSACTION_VALUE, e.to_string()))?;
        Ok(MaxTransactionValue {
            amount,
            currency: currency.to_owned(),
            exponent,
            minor_units,
            hidden: false,
        })
    }

    /// A hidden limit in `currency` (PROFILE G-36).
    pub fn hidden(currency: &str) -> Result<MaxTransactionValue, DelegationError> {
        let mut v = MaxTransactionValue::new(Decimal::from_int(0), currency)?;
        v.hidden = true;
        Ok(v)
    }

    /// `{amount: <JSON number>, currency}`.
    pub fn from_json(v: &Value) -> Result<MaxTransactionValue, DelegationError> {
        let m = v
            .as_object()
            .ok_or_else(|| claim(MAX_TRANSACTION_VALUE, "must be an object"))?;
        let amount = match m.get("amount") {
            Some(Value::Number(n)) => Decimal::parse(&n.to_string()).map_err(|_| {
                claim(
                    MAX_TRANSACTION_VALUE,
                    format!("amount {n} is not a plain decimal"),
                )
            })?,
            Some(_) => return Err(claim(MAX_TRANSACTION_VALUE, "amount must be a number")),
            None => {
                let currency = m
                    .get("currency")
                    .and_then(Value::as_str)
                    .ok_or_else(|| claim(MAX_TRANSACTION_VALUE, "currency must be a string"))?;
                return MaxTransactionValue::hidden(currency);
            }
        };
        let currency = m
            .get("currency")
            .and_then(Value::as_str)
            .ok_or_else(|| claim(MAX_TRANSACTION_VALUE, "currency must be a string"))?;
        MaxTransactionValue::new(amount, currency)
    }

    /// `{amount, currency}` with `amount` an integer when integral, else the nearest
    /// binary64 (exact for ≤ 15 significant digits).
    pub fn to_json(&self) -> Value {
        let amount = if self.amount.is_integral() {
            self.amount
                .to_scaled_half_even(0)
                .ok()
                .and_then(|i| i64::try_from(i).ok())
                .map(Value::from)
        } else {
            None
        };
        let amount = amount.unwrap_or_else(|| {
            self.amount
                .to_string()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number)
        });
        let mut m = Map::new();
        if !self.hidden {
            m.insert("amount".into(), amount);
        }
        m.insert("currency".into(), Value::String(self.currency.clone()));
        Value::Object(m)
    }
}

/// The typed view of an ADC (BIND-III-B-01..05; PROFILE G-33).
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorityDelegation {
    pub id: Option<String>,
    /// The Principal's DID, or the delegating Agent's (BIND-III-B-03).
    pub issuer: String,
    /// The Principal named by the optional `principal` claim.
    pub principal: Option<String>,
    /// `credentialSubject.id`: the delegatee Agent (BIND-III-B-02).
    pub subject: Did,
    pub scope: Vec<Classifier>,
    pub max_transaction_value: MaxTransactionValue,
    /// Pedersen commitment to the limit (PROFILE G-36).
    pub max_transaction_value_commitment: Option<[u8; 32]>,
    pub permitted_jurisdictions: Vec<String>,
    pub permitted_payment_rails: Vec<String>,
    /// `None` = unrestricted (PROFILE G-33).
    pub permitted_counterparty_classes: Option<Vec<String>>,
    pub constraints: Map<String, Value>,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    /// Every `credentialStatus` entry (at least one `revocation` entry).
    pub status: Vec<StatusEntry>,
}

fn string_array(
    name: &'static str,
    v: Option<&Value>,
    check: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, DelegationError> {
    let items = v
        .ok_or_else(|| claim(name, "missing"))?
        .as_array()
        .ok_or_else(|| claim(name, "must be an array"))?;
    items
        .iter()
        .map(|i| match i.as_str() {
            Some(s) if check(s) => Ok(s.to_owned()),
            _ => Err(claim(name, format!("{i} is not {what}"))),
        })
        .collect()
}

fn is_alpha2(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_IDENTIFIER_LEN
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn date(c: &Credential, member: &'static str) -> Result<Timestamp, DelegationError> {
    let v = c
        .as_map()
        .get(member)
        .ok_or_else(|| claim(member, "required for an ADC (PROFILE G-33)"))?;
    status_list::parse_datetime(member, v).map_err(|e| claim(member, e.to_string()))
}

impl AuthorityDelegation {
    /// Reads the claims of an ADC (its proof is not checked here). Missing or invalid
    /// claims → 1101.
    pub fn from_credential(c: &Credential) -> Result<AuthorityDelegation, DelegationError> {
        if !c.has_type(ADC_TYPE) {
            return Err(DelegationError::NotDelegation);
        }
        let contexts = c.contexts();
        for required in [jsonld::STATUS_LIST_2021_V1, jsonld::MTP_V1] {
            if !contexts.contains(&required) {
                return Err(DelegationError::Context(required));
            }
        }
        let issuer = c
            .issuer()
            .ok_or_else(|| claim("issuer", "missing"))?
            .to_owned();
        AnyDid::parse(&issuer).map_err(|e| claim("issuer", e.to_string()))?;
        let s = c
            .subject()
            .ok_or_else(|| claim("credentialSubject", "must be one object"))?;
        let subject = s
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| claim("credentialSubject.id", "missing"))?;
        let subject = Did::parse(subject)
            .map_err(|e| claim("credentialSubject.id", format!("not an Agent did:mtp: {e}")))?;
        let principal = match s.get(PRINCIPAL) {
            None => None,
            Some(v) => {
                let p = v
                    .as_str()
                    .ok_or_else(|| claim(PRINCIPAL, "must be a DID string"))?;
                AnyDid::parse(p).map_err(|e| claim(PRINCIPAL, e.to_string()))?;
                Some(p.to_owned())
            }
        };
        let scope = string_array(SCOPE, s.get(SCOPE), |_| true, "a classifier")?
            .iter()
            .map(|c| Classifier::parse(c).map_err(|e| claim(SCOPE, format!("{c:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let max_transaction_value = MaxTransactionValue::from_json(
            s.get(MAX_TRANSACTION_VALUE)
                .ok_or_else(|| claim(MAX_TRANSACTION_VALUE, "missing"))?,
        )?;
        let max_transaction_value_commitment = match s.get(MAX_TRANSACTION_VALUE_COMMITMENT) {
            None => None,
            Some(v) => {
                let bad = || {
                    claim(
                        MAX_TRANSACTION_VALUE_COMMITMENT,
                        "must be base64url (no padding) of 32 bytes",
                    )
                };
                let text = v.as_str().ok_or_else(bad)?;
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .map_err(|_| bad())?;
                Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad())?)
            }
        };
        let permitted_jurisdictions = string_array(
            PERMITTED_JURISDICTIONS,
            s.get(PERMITTED_JURISDICTIONS),
            is_alpha2,
            "an ISO 3166-1 alpha-2 code",
        )?;
        let permitted_payment_rails = string_array(
            PERMITTED_PAYMENT_RAILS,
            s.get(PERMITTED_PAYMENT_RAILS),
            is_identifier,
            "a settlement method identifier",
        )?;
        let permitted_counterparty_classes = match s.get(PERMITTED_COUNTERPARTY_CLASSES) {
            // An absent optional restriction reads as unrestricted; in a selectively
            // disclosable ADC it could have been withheld, so it must be visible (PROFILE G-35).
            None if s.contains_key("_sd") => {
                return Err(claim(
                    PERMITTED_COUNTERPARTY_CLASSES,
                    "must be a visible claim of a selectively disclosable ADC (PROFILE G-35)",
                ));
            }
            None => None,
            v => Some(string_array(
                PERMITTED_COUNTERPARTY_CLASSES,
                v,
                is_identifier,
                "a counterparty class",
            )?),
        };
        let constraints = s
            .get(CONSTRAINTS)
            .ok_or_else(|| claim(CONSTRAINTS, "missing"))?
            .as_object()
            .ok_or_else(|| claim(CONSTRAINTS, "must be an object"))?
            .clone();
        let valid_from = date(c, "validFrom")?;
        let valid_until = date(c, "validUntil")?;
        if valid_until < valid_from {
            return Err(claim("validUntil", "before validFrom"));
        }
        let status = StatusEntry::all_from_json(
            c.credential_status()
                .ok_or_else(|| claim("credentialStatus", "required (BIND-III-B-05)"))?,
        )
        .map_err(|e| claim("credentialStatus", e.to_string()))?;
        if !status
            .iter()
            .any(|e| e.purpose == StatusPurpose::Revocation)
        {
            return Err(claim(
                "credentialStatus",
                "needs a revocation entry (BIND-III-B-05)",
            ));
        }
        if max_transaction_value.hidden && max_transaction_value_commitment.is_none() {
            return Err(claim(
                MAX_TRANSACTION_VALUE,
                "amount is missing (a hidden limit needs maxTransactionValueCommitment, PROFILE G-36)",
            ));
        }
        Ok(AuthorityDelegation {
            id: c.id().map(str::to_owned),
            issuer,
            principal,
            subject,
            scope,
            max_transaction_value,
            max_transaction_value_commitment,
            permitted_jurisdictions,
            permitted_payment_rails,
            permitted_counterparty_classes,
            constraints,
            valid_from,
            valid_until,
            status,
        })
    }

    /// The unsigned ADC credential (sign it with `credential::sign`).
    pub fn to_unsigned_credential(&self) -> Result<Credential, DelegationError> {
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        let mut s = Map::new();
        s.insert("id".into(), Value::String(self.subject.to_string()));
        if let Some(p) = &self.principal {
            s.insert(PRINCIPAL.into(), Value::String(p.clone()));
        }
        s.insert(
            SCOPE.into(),
            Value::Array(
                self.scope
                    .iter()
                    .map(|c| Value::String(c.as_str().to_owned()))
                    .collect(),
            ),
        );
        s.insert(
            MAX_TRANSACTION_VALUE.into(),
            self.max_transaction_value.to_json(),
        );
        if let Some(c) = &self.max_transaction_value_commitment {
            s.insert(
                MAX_TRANSACTION_VALUE_COMMITMENT.into(),
                Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c)),
            );
        }
        s.insert(
            PERMITTED_JURISDICTIONS.into(),
            strings(&self.permitted_jurisdictions),
        );
        s.insert(
            PERMITTED_PAYMENT_RAILS.into(),
            strings(&self.permitted_payment_rails),
        );
        if let Some(c) = &self.permitted_counterparty_classes {
            s.insert(PERMITTED_COUNTERPARTY_CLASSES.into(), strings(c));
        }
        s.insert(CONSTRAINTS.into(), Value::Object(self.constraints.clone()));
        let mut m = Map::new();
        m.insert(
            "@context".into(),
            Value::Array(
                [
                    jsonld::CREDENTIALS_V2,
                    jsonld::STATUS_LIST_2021_V1,
                    jsonld::MTP_V1,
                ]
                .into_iter()
                .map(|c| Value::String(c.into()))
                .collect(),
            ),
        );
        if let Some(id) = &self.id {
            m.insert("id".into(), Value::String(id.clone()));
        }
        m.insert(
            "type".into(),
            Value::Array(vec![
                Value::String(credential::VERIFIABLE_CREDENTIAL.into()),
                Value::String(ADC_TYPE.into()),
            ]),
        );
        m.insert("issuer".into(), Value::String(self.issuer.clone()));
        m.insert(
            "validFrom".into(),
            Value::String(self.valid_from.to_rfc3339()),
        );
        m.insert(
            "validUntil".into(),
            Value::String(self.valid_until.to_rfc3339()),
        );
        m.insert("credentialSubject".into(), Value::Object(s));
        let status = match self.status.as_slice() {
            [one] => one.to_json(),
            many => Value::Array(many.iter().map(StatusEntry::to_json).collect()),
        };
        m.insert("credentialStatus".into(), status);
        let c = Credential::from_value(Value::Object(m)).map_err(DelegationError::Credential)?;
        // What is built must read back (catches invalid hand-built claims).
        AuthorityDelegation::from_credential(&c)?;
        Ok(c)
    }

    /// The validity window.
    pub fn window(&self) -> ValidityWindow {
        ValidityWindow {
            valid_from: Some(self.valid_from),
            valid_until: Some(self.valid_until),
        }
    }

    /// Every way `self` (child) exceeds `parent` (SPEC-III-A-2-04; PROFILE G-33): scope
    /// containment (G-07), same currency and value ≤ at the unit's precision,
    /// jurisdictions ⊆, rails ⊆, counterparty classes ⊆ (absent = unrestricted), validity
    /// window inside the parent's. `constraints` are not compared (their semantics are
    /// open); the effective authority keeps every link's.
    pub fn subset_violations(&self, parent: &AuthorityDelegation) -> Vec<SubsetViolation> {
        let mut out = Vec::new();
        for c in &self.scope {
            if !parent.scope.iter().any(|p| c.is_within(p)) {
                out.push(SubsetViolation::Scope {
                    classifier: c.as_str().to_owned(),
                });
            }
        }
        let (cv, pv) = (&self.max_transaction_value, &parent.max_transaction_value);
        if cv.currency != pv.currency {
            out.push(SubsetViolation::Currency {
                parent: pv.currency.clone(),
                child: cv.currency.clone(),
            });
        } else if pv.hidden {
            out.push(SubsetViolation::HiddenParentLimit);
        } else if !cv.hidden && cv.minor_units > pv.minor_units {
            out.push(SubsetViolation::Value {
                parent: pv.amount.to_string(),
                child: cv.amount.to_string(),
            });
        }
        for j in &self.permitted_jurisdictions {
            if !parent.permitted_jurisdictions.contains(j) {
                out.push(SubsetViolation::Jurisdiction { code: j.clone() });
            }
        }
        for r in &self.permitted_payment_rails {
            if !parent.permitted_payment_rails.contains(r) {
                out.push(SubsetViolation::PaymentRail { rail: r.clone() });
            }
        }
        match (
            &self.permitted_counterparty_classes,
            &parent.permitted_counterparty_classes,
        ) {
            (_, None) => {}
            (None, Some(_)) => out.push(SubsetViolation::CounterpartyClassesUnrestricted),
            (Some(c), Some(p)) => {
                for class in c.iter().filter(|x| !p.contains(x)) {
                    out.push(SubsetViolation::CounterpartyClass {
                        class: class.clone(),
                    });
                }
            }
        }
        if self.valid_from < parent.valid_from {
            out.push(SubsetViolation::ValidFrom {
                parent: parent.valid_from,
                child: self.valid_from,
            });
        }
        if self.valid_until > parent.valid_until {
            out.push(SubsetViolation::ValidUntil {
                parent: parent.valid_until,
                child: self.valid_until,
            });
        }
        out
    }

    /// `Ok` when `self` is within `parent` in every dimension; otherwise 1101.
    pub fn check_subset_of(&self, parent: &AuthorityDelegation) -> Result<(), DelegationError> {
        let v = self.subset_violations(parent);
        if v.is_empty() {
            Ok(())
        } else {
            Err(DelegationError::Subset(v))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Chain verification
// ---------------------------------------------------------------------------------------

/// What [`verify_chain`] needs besides the chain.
#[derive(Clone, Copy)]
pub struct ChainContext<'a> {
    /// The Principal's DID (issuer of link 0).
    pub principal: &'a str,
    /// The Agent's DID (subject of the last link).
    pub agent: &'a str,
    /// The evaluation time: the transaction's start (entry into Initiated, PROFILE G-55).
    pub at: Timestamp,
    /// Entry into Committed, when re-verifying after commit: a revocation after it is the
    /// dispute path (PROFILE G-55).
    pub committed_at: Option<Timestamp>,
    /// Assertion keys of every issuer (including rotated keys, BIND-II-B-05).
    pub keys: &'a dyn KeyResolver,
    /// Status list credentials by URL.
    pub status: &'a dyn StatusSource,
}

/// The authority a verified chain grants the Agent: the last link's dimensions (each link
/// is within its predecessor), with every link's `constraints`.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveAuthority {
    pub principal: String,
    pub agent: Did,
    pub scope: Vec<Classifier>,
    pub max_transaction_value: MaxTransactionValue,
    pub max_transaction_value_commitment: Option<[u8; 32]>,
    /// When the last link's limit is hidden: the nearest visible ancestor limit, which the
    /// amount must also respect (PROFILE G-36).
    pub ceiling: Option<MaxTransactionValue>,
    pub permitted_jurisdictions: Vec<String>,
    pub permitted_payment_rails: Vec<String>,
    pub permitted_counterparty_classes: Option<Vec<String>>,
    /// Every link's `constraints`, link 0 first (all apply).
    pub constraints: Vec<Map<String, Value>>,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    /// The links, link 0 first.
    pub links: Vec<AuthorityDelegation>,
    /// 1300 warnings for links expiring soon (SPEC VI).
    pub warnings: Vec<ExpiryWarning>,
}

fn verify_link(
    c: &Credential,
    previous: Option<&AuthorityDelegation>,
    ctx: &ChainContext<'_>,
) -> Result<(AuthorityDelegation, Option<ExpiryWarning>), DelegationError> {
    credential::verify(c, ctx.keys).map_err(DelegationError::Credential)?;
    let adc = AuthorityDelegation::from_credential(c)?;
    let expected_issuer = match previous {
        None => ctx.principal,
        Some(p) => p.subject.as_str(),
    };
    if adc.issuer != expected_issuer {
        return Err(DelegationError::IssuerMismatch {
            expected: expected_issuer.to_owned(),
            found: adc.issuer.clone(),
        });
    }
    if let Some(p) = &adc.principal
        && p != ctx.principal
    {
        return Err(DelegationError::PrincipalMismatch {
            expected: ctx.principal.to_owned(),
            found: p.clone(),
        });
    }
    let warning = adc
        .window()
        .check(ctx.at)
        .map_err(DelegationError::Status)?;
    let tx = TransactionTimes {
        initiated_at: ctx.at,
        committed_at: ctx.committed_at,
    };
    for entry in &adc.status {
        let list = ctx
            .status
            .status_list_credential(&entry.list_credential)
            .map_err(DelegationError::Status)?;
        let outcome = status_list::check_entry(entry, &adc.issuer, &list, ctx.keys, ctx.at)
            .map_err(DelegationError::Status)?;
        if let StatusOutcome::Revoked { purpose, index, .. } = outcome {
            return Err(DelegationError::Revoked {
                index,
                purpose,
                disposition: outcome.disposition(&tx),
            });
        }
    }
    if let Some(p) = previous {
        adc.check_subset_of(p)?;
    }
    Ok((adc, warning))
}

/// Verifies a delegation chain Principal → … → Agent of any depth (SPEC-III-A-2-02,
/// SPEC-III-A-2-03, SPEC-III-A-2-06; PROFILE G-04, G-33, G-55) and returns the effective
/// authority. Every link is verified independently (proof, claims, window, status) and
/// against its predecessor (linkage, subset).
pub fn verify_chain(
    chain: &[Credential],
    ctx: &ChainContext<'_>,
) -> Result<EffectiveAuthority, ChainError> {
    if chain.is_empty() {
        return Err(ChainError {
            index: 0,
            error: DelegationError::EmptyChain,
        });
    }
    let mut links: Vec<AuthorityDelegation> = Vec::with_capacity(chain.len());
    let mut warnings = Vec::new();
    for (index, c) in chain.iter().enumerate() {
        let (adc, warning) =
            verify_link(c, links.last(), ctx).map_err(|error| ChainError { index, error })?;
        warnings.extend(warning);
        links.push(adc);
    }
    let last_index = links.len().saturating_sub(1);
    let Some(last) = links.last() else {
        return Err(ChainError {
            index: 0,
            error: DelegationError::EmptyChain,
        });
    };
    if last.subject.as_str() != ctx.agent {
        return Err(ChainError {
            index: last_index,
            error: DelegationError::SubjectMismatch {
                expected: ctx.agent.to_owned(),
                found: last.subject.to_string(),
            },
        });
    }
    // PROFILE G-36: only the presenting Agent's own link may hide its limit; the visible
    // ceiling is then the nearest ancestor's (limits never grow along a chain).
    let ceiling = if last.max_transaction_value.hidden {
        links[..last_index]
            .iter()
            .rev()
            .map(|l| &l.max_transaction_value)
            .find(|v| !v.hidden)
            .cloned()
    } else {
        None
    };
    Ok(EffectiveAuthority {
        ceiling,
        principal: ctx.principal.to_owned(),
        agent: last.subject.clone(),
        scope: last.scope.clone(),
        max_transaction_value: last.max_transaction_value.clone(),
        max_transaction_value_commitment: last.max_transaction_value_commitment,
        permitted_jurisdictions: last.permitted_jurisdictions.clone(),
        permitted_payment_rails: last.permitted_payment_rails.clone(),
        permitted_counterparty_classes: last.permitted_counterparty_classes.clone(),
        constraints: links.iter().map(|l| l.constraints.clone()).collect(),
        valid_from: last.valid_from,
        valid_until: last.valid_until,
        warnings,
        links,
    })
}

/// [`verify_chain`] over the `delegation-link`s of a Request (PROFILE G-04): each link's
/// `credential` is the ADC as JSON text, and its `issuer` / `subject` must be the
/// credential's.
pub fn verify_delegation_links(
    links: &[DelegationLink],
    ctx: &ChainContext<'_>,
) -> Result<EffectiveAuthority, ChainError> {
    let mut chain = Vec::with_capacity(links.len());
    for (index, l) in links.iter().enumerate() {
        let at = |error| ChainError { index, error };
        let c =
            Credential::from_json(&l.credential).map_err(|e| at(DelegationError::Credential(e)))?;
        if c.issuer() != Some(l.issuer.as_str()) {
            return Err(at(DelegationError::IssuerMismatch {
                expected: l.issuer.to_string(),
                found: c.issuer().unwrap_or_default().to_owned(),
            }));
        }
        if c.subject_id() != Some(l.subject.as_str()) {
            return Err(at(DelegationError::SubjectMismatch {
                expected: l.subject.to_string(),
                found: c.subject_id().unwrap_or_default().to_owned(),
            }));
        }
        chain.push(c);
    }
    verify_chain(&chain, ctx)
}

// ---------------------------------------------------------------------------------------
// Enforcement (PROFILE G-33)
// ---------------------------------------------------------------------------------------

/// A Request or Terms outside the effective authority (PROFILE G-33). Always 1101.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnforcementError {
    #[error("value type {value_type} is not within the delegated scope")]
    ValueType { value_type: String },
    #[error("amount in {unit}, authority limited in {currency} (no FX)")]
    Currency { unit: String, currency: String },
    #[error("amount {amount} {unit} exceeds the delegated maximum {max}")]
    Amount {
        amount: String,
        unit: String,
        max: String,
    },
    #[error("amount is not an exact decimal: {0}")]
    AmountInvalid(String),
    #[error("jurisdiction {jurisdiction} is not permitted")]
    Jurisdiction { jurisdiction: String },
    #[error("payment rail {rail} is not permitted")]
    PaymentRail { rail: String },
    #[error("counterparty class {class} is not permitted")]
    CounterpartyClass { class: String },
    /// The limit is hidden: the amount needs a zk_range authority proof (PROFILE G-36).
    #[error("the delegated maximum is hidden; a zk_range authority proof is required")]
    HiddenLimit,
    #[error("zk_range authority proof refused: {0}")]
    RangeProof(String),
}

impl Coded for EnforcementError {
    fn code(&self) -> ErrorCode {
        ErrorCode::AuthorityAttestationInvalid
    }
    fn requirement(&self) -> Option<&'static str> {
        Some("SPEC-III-A-2-01")
    }
}

impl EffectiveAuthority {
    /// `value_type` within some scope classifier (PROFILE G-07, G-33).
    pub fn check_value_type(&self, value_type: &Classifier) -> Result<(), EnforcementError> {
        if self.scope.iter().any(|s| value_type.is_within(s)) {
            Ok(())
        } else {
            Err(EnforcementError::ValueType {
                value_type: value_type.as_str().to_owned(),
            })
        }
    }

    /// `amount` in `unit` ≤ the maximum: same unit, compared exactly at the unit's
    /// precision, round-half-even (PROFILE G-03, G-33).
    pub fn check_amount(&self, amount: Decimal, unit: &str) -> Result<(), EnforcementError> {
        let max = &self.max_transaction_value;
        if max.hidden {
            return Err(EnforcementError::HiddenLimit);
        }
        if unit != max.currency {
            return Err(EnforcementError::Currency {
                unit: unit.to_owned(),
                currency: max.currency.clone(),
            });
        }
        let minor = amount
            .to_scaled_half_even(max.exponent)
            .map_err(|e| EnforcementError::AmountInvalid(e.to_string()))?;
        if minor > max.minor_units {
            return Err(EnforcementError::Amount {
                amount: amount.to_string(),
                unit: unit.to_owned(),
                max: max.amount.to_string(),
            });
        }
        Ok(())
    }

    /// An amount against a hidden limit (PROFILE G-36): the zk_range proof must verify against
    /// the commitment signed in the last link, bound to `ctx` (request, counterparty and that
    /// credential's proofValue), and the amount must be within the visible ancestor ceiling.
    pub fn check_amount_proven(
        &self,
        price: &PriceSpec,
        proof: &crate::identity::authority_proof::ZkRangeProof,
        ctx: &crate::identity::authority_proof::ProofContext,
    ) -> Result<(), EnforcementError> {
        use crate::identity::authority_proof::{self as ap, MaxValueCommitment};
        let point = self
            .max_transaction_value_commitment
            .ok_or_else(|| EnforcementError::RangeProof("no committed limit".into()))?;
        let commitment = MaxValueCommitment {
            point,
            currency: self.max_transaction_value.currency.clone(),
        };
        ap::verify(&commitment, price, ctx, proof)
            .map_err(|e| EnforcementError::RangeProof(e.to_string()))?;
        if let Some(ceiling) = &self.ceiling {
            let parent = EffectiveAuthority {
                max_transaction_value: ceiling.clone(),
                ceiling: None,
                ..self.clone()
            };
            parent.check_price(price)?;
        }
        Ok(())
    }

    /// [`EffectiveAuthority::check_amount`] for a `price-spec` (Terms `price`).
    pub fn check_price(&self, price: &PriceSpec) -> Result<(), EnforcementError> {
        let d = Decimal::from_number(&price.amount)
            .map_err(|e| EnforcementError::AmountInvalid(e.to_string()))?;
        self.check_amount(d, price.unit.as_str())
    }

    /// A jurisdiction (`CC` or `CC-SUB`): its country must be permitted.
    pub fn check_jurisdiction(&self, jurisdiction: &str) -> Result<(), EnforcementError> {
        let country = jurisdiction.split('-').next().unwrap_or_default();
        if self.permitted_jurisdictions.iter().any(|j| j == country) {
            Ok(())
        } else {
            Err(EnforcementError::Jurisdiction {
                jurisdiction: jurisdiction.to_owned(),
            })
        }
    }

    pub fn check_rail(&self, rail: &str) -> Result<(), EnforcementError> {
        if self.permitted_payment_rails.iter().any(|r| r == rail) {
            Ok(())
        } else {
            Err(EnforcementError::PaymentRail {
                rail: rail.to_owned(),
            })
        }
    }

    /// Any class is allowed when the classes are unrestricted.
    pub fn check_counterparty_class(&self, class: &str) -> Result<(), EnforcementError> {
        match &self.permitted_counterparty_classes {
            Some(c) if !c.iter().any(|x| x == class) => Err(EnforcementError::CounterpartyClass {
                class: class.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}
