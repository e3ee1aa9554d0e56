//! Zero-knowledge authority proofs: Bulletproofs range proofs on Ristretto that
//! `maxTransactionValue ≥ amount` (SPEC-III-A-1-08, BIND-III-C-02..04; PROFILE G-36).
//!
//! The Authority Delegation Certificate carries `maxTransactionValueCommitment`, the
//! base64url (no padding) encoding of the compressed Ristretto point
//! `C_max = max·B + r·B_blinding` (dalek `PedersenGens::default()`), `max` in minor units
//! of the currency (PROFILE G-03). The holder proves that `C_max − amount·B` commits to a
//! value in `[0, 2⁶⁴)` with the same blinding `r`, i.e. `max − amount ≥ 0`, without
//! revealing `max` (BIND-III-C-I01).
//!
//! Everything is deterministic (BIND-III-C-04): `r` = HKDF-SHA-256 of a holder secret and
//! the credential id; the prover's RNG is seeded by HKDF over the holder secret and the
//! statement; the verifier's batching RNG is seeded by SHA-256 over the statement and the
//! proof bytes (a Fiat–Shamir derivation: fixed only once the proof is fixed).

use std::sync::OnceLock;

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use merlin::Transcript;
use rand_chacha03::ChaCha20Rng;
use rand_chacha03::rand_core::SeedableRng;
use serde_json::Value as Json;

use crate::cbor::{self, DecodeError, EncodeError, Value};
use crate::crypto::hash::{Sha256Hasher, hkdf_sha256};
use crate::errors::{Coded, ErrorCode};
use crate::identity::credential::Credential;
use crate::primitives::common::{Number, PriceSpec, PriceUnit, ValidationError};
use crate::primitives::request::AuthorityProof;
use crate::uuid::MtpUuid;
use crate::verification::{Decimal, minor_unit_exponent};

/// Merlin transcript label (PROFILE G-36).
pub const TRANSCRIPT_LABEL: &[u8] = b"MTP-Authority-v1";
/// Range of the proof: `max − amount ∈ [0, 2⁶⁴)` (PROFILE G-36).
pub const RANGE_BITS: usize = 64;
/// Length of a 64-bit single range proof: (2·log₂64 + 9) × 32 bytes.
pub const PROOF_LEN: usize = (2 * 6 + 9) * 32;
/// Credential claim carrying `C_max` (PROFILE G-36).
pub const COMMITMENT_CLAIM: &str = "maxTransactionValueCommitment";
/// Credential claim whose `currency` member names the committed currency (PROFILE G-36).
pub const LIMIT_CLAIM: &str = "maxTransactionValue";
/// HKDF `info` prefix of the blinding derivation; the credential id follows.
pub const BLINDING_INFO: &str = "MTP-Authority-v1/blinding/";
/// HKDF `info` prefix of the prover's RNG seed; the statement encoding follows.
pub const PROVER_RNG_INFO: &str = "MTP-Authority-v1/prover-rng/";
/// SHA-256 prefix of the verifier's RNG seed; statement and proof bytes follow.
pub const VERIFIER_RNG_PREFIX: &str = "MTP-Authority-v1/verifier-rng/";

/// Requirement every proof failure cites.
const REQ: &str = "BIND-III-C-02";

/// Why a proof could not be produced, decoded or verified. Every variant is 1101
/// Authority Attestation Invalid except the CBOR shape errors (0103 / their own codes).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AuthorityProofError {
    /// `amount > max`: there is no proof to produce (BIND-III-C-I01).
    #[error("amount {amount} exceeds the committed limit: no proof can be produced")]
    AmountExceedsLimit { amount: u64 },
    #[error("currency mismatch: limit committed in {committed:?}, amount in {amount:?}")]
    CurrencyMismatch { committed: String, amount: String },
    #[error("price unit {0:?} has no minor-unit precision (PROFILE G-03)")]
    NoMinorUnit(String),
    #[error("amount is negative, not exact or beyond 2^64 minor units")]
    AmountOutOfRange,
    #[error("maxTransactionValueCommitment is not base64url of a 32-byte Ristretto point")]
    InvalidCommitment,
    #[error("the credential lacks {0}")]
    MissingClaim(&'static str),
    #[error("the credential is unsigned (no proof.proofValue to bind to)")]
    UnsignedCredential,
    #[error("the proof's commitment is not the credential's maxTransactionValueCommitment")]
    CommitmentMismatch,
    #[error("the proof's amount is not the transaction amount")]
    AmountMismatch,
    #[error("range proof bytes are malformed")]
    MalformedProof,
    #[error("range proof does not verify")]
    InvalidProof,
    #[error("the HKDF derivation failed")]
    Derivation,
    #[error("authority-proof is not a zk_range proof")]
    NotZkRange,
    #[error("authority-proof shape: {0:?}")]
    Schema(Vec<ValidationError>),
    #[error("authority-proof CBOR: {0}")]
    Decode(DecodeError),
    #[error("authority-proof CBOR: {0}")]
    Encode(EncodeError),
}

impl Coded for AuthorityProofError {
    fn code(&self) -> ErrorCode {
        match self {
            AuthorityProofError::Schema(es) => {
                es.first().map_or(ErrorCode::SchemaViolation, |e| e.code)
            }
            AuthorityProofError::Decode(e) => e.code(),
            AuthorityProofError::Encode(e) => e.code(),
            _ => ErrorCode::AuthorityAttestationInvalid,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            AuthorityProofError::Schema(es) => es.first().map(|e| e.requirement),
            AuthorityProofError::Decode(e) => e.requirement(),
            AuthorityProofError::Encode(e) => e.requirement(),
            AuthorityProofError::AmountExceedsLimit { .. } => Some("BIND-III-C-I01"),
            _ => Some(REQ),
        }
    }
}

/// An amount in minor units of a currency (PROFILE G-03).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MinorAmount {
    pub units: u64,
    pub currency: String,
}

impl MinorAmount {
    pub fn new(units: u64, currency: impl Into<String>) -> MinorAmount {
        MinorAmount {
            units,
            currency: currency.into(),
        }
    }

    /// `decimal` at the currency's minor-unit exponent, rounded half to even (PROFILE G-03).
    pub fn from_decimal(
        decimal: Decimal,
        currency: &str,
    ) -> Result<MinorAmount, AuthorityProofError> {
        let e = exponent(currency)
            .ok_or_else(|| AuthorityProofError::NoMinorUnit(currency.to_owned()))?;
        let scaled = decimal
            .to_scaled_half_even(e)
            .map_err(|_| AuthorityProofError::AmountOutOfRange)?;
        let units = u64::try_from(scaled).map_err(|_| AuthorityProofError::AmountOutOfRange)?;
        Ok(MinorAmount::new(units, currency))
    }

    /// A `price-spec` in minor units of its unit.
    pub fn from_price_spec(p: &PriceSpec) -> Result<MinorAmount, AuthorityProofError> {
        let d =
            Decimal::from_number(&p.amount).map_err(|_| AuthorityProofError::AmountOutOfRange)?;
        MinorAmount::from_decimal(d, p.unit.as_str())
    }

    /// The BIND III-B `{amount, currency}` JSON object (`amount` a JSON number).
    pub fn from_json(v: &Json) -> Result<MinorAmount, AuthorityProofError> {
        let currency =
            v.get("currency")
                .and_then(Json::as_str)
                .ok_or(AuthorityProofError::MissingClaim(
                    "maxTransactionValue.currency",
                ))?;
        let n = v.get("amount").and_then(|a| a.as_number()).ok_or(
            AuthorityProofError::MissingClaim("maxTransactionValue.amount"),
        )?;
        let d =
            Decimal::parse(&n.to_string()).map_err(|_| AuthorityProofError::AmountOutOfRange)?;
        MinorAmount::from_decimal(d, currency)
    }

    /// Back to a `price-spec` (exact: the decimal `units × 10^-exponent`).
    pub fn to_price_spec(&self) -> Result<PriceSpec, AuthorityProofError> {
        let e = exponent(&self.currency)
            .ok_or_else(|| AuthorityProofError::NoMinorUnit(self.currency.clone()))?;
        let unit = PriceUnit::parse(&self.currency)
            .map_err(|_| AuthorityProofError::NoMinorUnit(self.currency.clone()))?;
        let amount: Number = Decimal {
            mantissa: i128::from(self.units),
            scale: e,
        }
        .to_number();
        Ok(PriceSpec::new(amount, unit))
    }
}

/// Minor-unit exponent of a currency (PROFILE G-03): ISO 4217 and `MTP_COMPUTE_CREDIT` per
/// [`minor_unit_exponent`], custom `ext:` units 6; `None` for `RECIPROCAL` and ISO codes
/// without minor units.
pub fn exponent(currency: &str) -> Option<u32> {
    minor_unit_exponent(currency)
        .or_else(|| matches!(PriceUnit::parse(currency), Ok(PriceUnit::Custom(_))).then_some(6))
}

/// The Pedersen generators (PROFILE G-36).
fn pc_gens() -> PedersenGens {
    PedersenGens::default()
}

/// `BulletproofGens(64, 1)`, built once.
fn bp_gens() -> &'static BulletproofGens {
    static GENS: OnceLock<BulletproofGens> = OnceLock::new();
    GENS.get_or_init(|| BulletproofGens::new(RANGE_BITS, 1))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The blinding `r` = `Scalar::from_bytes_mod_order_wide(HKDF-SHA-256(ikm = holder secret,
/// salt = empty, info = "MTP-Authority-v1/blinding/" ‖ credential id, L = 64))`
/// (PROFILE G-36; BIND-III-C-04).
pub fn derive_blinding(
    holder_secret: &[u8; 32],
    credential_id: &str,
) -> Result<Scalar, AuthorityProofError> {
    let mut info = Vec::with_capacity(BLINDING_INFO.len() + credential_id.len());
    info.extend_from_slice(BLINDING_INFO.as_bytes());
    info.extend_from_slice(credential_id.as_bytes());
    let mut wide = [0u8; 64];
    hkdf_sha256(holder_secret, &[], &info, &mut wide)
        .map_err(|_| AuthorityProofError::Derivation)?;
    Ok(Scalar::from_bytes_mod_order_wide(&wide))
}

/// `C_max` and the currency it is denominated in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxValueCommitment {
    /// Compressed Ristretto encoding of `C_max` (BIND-III-C-03).
    pub point: [u8; 32],
    pub currency: String,
}

impl MaxValueCommitment {
    /// `C_max = max·B + r·B_blinding` with `r` from [`derive_blinding`] (PROFILE G-36).
    pub fn commit(
        max: &MinorAmount,
        holder_secret: &[u8; 32],
        credential_id: &str,
    ) -> Result<MaxValueCommitment, AuthorityProofError> {
        if exponent(&max.currency).is_none() {
            return Err(AuthorityProofError::NoMinorUnit(max.currency.clone()));
        }
        let r = derive_blinding(holder_secret, credential_id)?;
        let c = pc_gens().commit(Scalar::from(max.units), r);
        Ok(MaxValueCommitment {
            point: c.compress().to_bytes(),
            currency: max.currency.clone(),
        })
    }

    /// The claim text: base64url without padding of the 32-byte point.
    pub fn to_claim(&self) -> String {
        base64::Engine::encode(&b64(), self.point)
    }

    /// Parses a claim text; the point must decompress to a Ristretto element.
    pub fn from_claim(
        claim: &str,
        currency: &str,
    ) -> Result<MaxValueCommitment, AuthorityProofError> {
        let bytes = base64::Engine::decode(&b64(), claim)
            .map_err(|_| AuthorityProofError::InvalidCommitment)?;
        let point = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| AuthorityProofError::InvalidCommitment)?;
        decompress(&point)?;
        if exponent(currency).is_none() {
            return Err(AuthorityProofError::NoMinorUnit(currency.to_owned()));
        }
        Ok(MaxValueCommitment {
            point,
            currency: currency.to_owned(),
        })
    }

    /// Reads `credentialSubject.maxTransactionValueCommitment` and the currency from
    /// `credentialSubject.maxTransactionValue.currency` (PROFILE G-36). Call it on a
    /// credential whose proof has been verified.
    pub fn from_credential(
        credential: &Credential,
    ) -> Result<MaxValueCommitment, AuthorityProofError> {
        let subject = credential_subject(credential)
            .ok_or(AuthorityProofError::MissingClaim("credentialSubject"))?;
        let claim = subject
            .get(COMMITMENT_CLAIM)
            .and_then(Json::as_str)
            .ok_or(AuthorityProofError::MissingClaim(COMMITMENT_CLAIM))?;
        let currency = subject
            .get(LIMIT_CLAIM)
            .and_then(|m| m.get("currency"))
            .and_then(Json::as_str)
            .ok_or(AuthorityProofError::MissingClaim(
                "maxTransactionValue.currency",
            ))?;
        MaxValueCommitment::from_claim(claim, currency)
    }
}

fn decompress(point: &[u8; 32]) -> Result<RistrettoPoint, AuthorityProofError> {
    CompressedRistretto(*point)
        .decompress()
        .ok_or(AuthorityProofError::InvalidCommitment)
}

/// The single `credentialSubject` object of a credential.
fn credential_subject(credential: &Credential) -> Option<&serde_json::Map<String, Json>> {
    credential.subject()
}

/// What a proof is bound to besides the commitment and the amount (PROFILE G-36).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofContext {
    /// The Request's `request_id` (32 bytes).
    pub request_id: [u8; 32],
    /// The counterparty DID (UTF-8).
    pub counterparty: String,
    /// SHA-256 of the credential's `proof.proofValue` string.
    pub credential_binding: [u8; 32],
}

impl ProofContext {
    pub fn new(request_id: &MtpUuid, counterparty: &str, proof_value: &str) -> ProofContext {
        ProofContext {
            request_id: *request_id.as_bytes(),
            counterparty: counterparty.to_owned(),
            credential_binding: crate::crypto::sha256(proof_value.as_bytes()),
        }
    }

    /// Binds to a signed credential (its `proof.proofValue`).
    pub fn for_credential(
        request_id: &MtpUuid,
        counterparty: &str,
        credential: &Credential,
    ) -> Result<ProofContext, AuthorityProofError> {
        let pv = credential
            .proof_value()
            .and_then(|p| p.get("proofValue"))
            .and_then(Json::as_str)
            .ok_or(AuthorityProofError::UnsignedCredential)?;
        Ok(ProofContext::new(request_id, counterparty, pv))
    }
}

/// The statement: everything the transcript absorbs before the range proof, in order.
struct Statement<'a> {
    ctx: &'a ProofContext,
    amount: &'a MinorAmount,
    commitment: &'a [u8; 32],
}

impl Statement<'_> {
    fn transcript(&self) -> Transcript {
        let mut t = Transcript::new(TRANSCRIPT_LABEL);
        t.append_message(b"request_id", &self.ctx.request_id);
        t.append_message(b"counterparty", self.ctx.counterparty.as_bytes());
        t.append_u64(b"amount", self.amount.units);
        t.append_message(b"currency", self.amount.currency.as_bytes());
        t.append_message(b"credential", &self.ctx.credential_binding);
        t.append_message(b"commitment", self.commitment);
        t
    }

    /// Unambiguous byte encoding (length-prefixed texts) for the RNG derivations.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(&self.ctx.request_id);
        push_text(&mut out, &self.ctx.counterparty);
        out.extend_from_slice(&self.amount.units.to_be_bytes());
        push_text(&mut out, &self.amount.currency);
        out.extend_from_slice(&self.ctx.credential_binding);
        out.extend_from_slice(self.commitment);
        out
    }

    /// `C_max − amount·B`: the commitment to `max − amount`.
    fn shifted(&self) -> Result<CompressedRistretto, AuthorityProofError> {
        let c = decompress(self.commitment)?;
        Ok((c - pc_gens().B * Scalar::from(self.amount.units)).compress())
    }
}

fn push_text(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A `zk_range` authority proof (PROFILE G-04, G-36).
#[derive(Clone, Debug, PartialEq)]
pub struct ZkRangeProof {
    pub commitment: [u8; 32],
    /// Serialised Bulletproof (dalek `RangeProof::to_bytes`, [`PROOF_LEN`] bytes).
    pub proof: Vec<u8>,
    /// The transaction amount the proof is for.
    pub amount: PriceSpec,
}

impl ZkRangeProof {
    pub fn to_authority_proof(&self) -> AuthorityProof {
        AuthorityProof::ZkRange {
            commitment: self.commitment,
            proof: self.proof.clone(),
            amount: self.amount.clone(),
            unknown: Vec::new(),
        }
    }

    /// Unknown members of the map are ignored (PROFILE G-26).
    pub fn from_authority_proof(p: &AuthorityProof) -> Result<ZkRangeProof, AuthorityProofError> {
        match p {
            AuthorityProof::ZkRange {
                commitment,
                proof,
                amount,
                ..
            } => Ok(ZkRangeProof {
                commitment: *commitment,
                proof: proof.clone(),
                amount: amount.clone(),
            }),
            AuthorityProof::VcPresentation { .. } => Err(AuthorityProofError::NotZkRange),
        }
    }

    /// `{ type: "zk_range", commitment: bstr .size 32, proof: bstr, amount: price-spec }`.
    pub fn to_value(&self) -> Value {
        self.to_authority_proof().to_value()
    }

    pub fn from_value(v: &Value) -> Result<ZkRangeProof, AuthorityProofError> {
        let p = AuthorityProof::from_value(v, "").map_err(AuthorityProofError::Schema)?;
        ZkRangeProof::from_authority_proof(&p)
    }

    /// Deterministic CBOR (BIND IV-A).
    pub fn to_cbor(&self) -> Result<Vec<u8>, AuthorityProofError> {
        cbor::to_vec(&self.to_value()).map_err(AuthorityProofError::Encode)
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<ZkRangeProof, AuthorityProofError> {
        let v = cbor::from_slice(bytes).map_err(AuthorityProofError::Decode)?;
        ZkRangeProof::from_value(&v)
    }
}

/// Proves `max ≥ amount` for the commitment `C_max` made by [`MaxValueCommitment::commit`]
/// with the same `holder_secret` and `credential_id` (BIND-III-C-02/03/04, BIND-III-C-I01).
/// Same inputs → same proof bytes.
pub fn prove(
    max: &MinorAmount,
    holder_secret: &[u8; 32],
    credential_id: &str,
    amount: &PriceSpec,
    ctx: &ProofContext,
) -> Result<ZkRangeProof, AuthorityProofError> {
    let amt = MinorAmount::from_price_spec(amount)?;
    if amt.currency != max.currency {
        return Err(AuthorityProofError::CurrencyMismatch {
            committed: max.currency.clone(),
            amount: amt.currency,
        });
    }
    let v = max
        .units
        .checked_sub(amt.units)
        .ok_or(AuthorityProofError::AmountExceedsLimit { amount: amt.units })?;
    let commitment = MaxValueCommitment::commit(max, holder_secret, credential_id)?;
    let r = derive_blinding(holder_secret, credential_id)?;
    let st = Statement {
        ctx,
        amount: &amt,
        commitment: &commitment.point,
    };
    let mut info = PROVER_RNG_INFO.as_bytes().to_vec();
    info.extend_from_slice(&st.encode());
    let mut seed = [0u8; 32];
    hkdf_sha256(holder_secret, &[], &info, &mut seed)
        .map_err(|_| AuthorityProofError::Derivation)?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut transcript = st.transcript();
    let (proof, committed) = RangeProof::prove_single_with_rng(
        bp_gens(),
        &pc_gens(),
        &mut transcript,
        v,
        &r,
        RANGE_BITS,
        &mut rng,
    )
    .map_err(|_| AuthorityProofError::InvalidProof)?;
    // The proof's value commitment must be exactly C_max − amount·B.
    if committed != st.shifted()? {
        return Err(AuthorityProofError::InvalidProof);
    }
    Ok(ZkRangeProof {
        commitment: commitment.point,
        proof: proof.to_bytes(),
        amount: amount.clone(),
    })
}

/// Verifies a `zk_range` proof against the commitment taken from the verified credential
/// and the transaction amount (BIND-III-C-02/03/04). Deterministic: the batching scalar
/// comes from SHA-256 over the statement and the proof bytes.
pub fn verify(
    commitment: &MaxValueCommitment,
    amount: &PriceSpec,
    ctx: &ProofContext,
    proof: &ZkRangeProof,
) -> Result<(), AuthorityProofError> {
    if proof.commitment != commitment.point {
        return Err(AuthorityProofError::CommitmentMismatch);
    }
    let amt = MinorAmount::from_price_spec(amount)?;
    if amt.currency != commitment.currency {
        return Err(AuthorityProofError::CurrencyMismatch {
            committed: commitment.currency.clone(),
            amount: amt.currency,
        });
    }
    if MinorAmount::from_price_spec(&proof.amount)? != amt {
        return Err(AuthorityProofError::AmountMismatch);
    }
    if proof.proof.len() != PROOF_LEN {
        return Err(AuthorityProofError::MalformedProof);
    }
    let rp =
        RangeProof::from_bytes(&proof.proof).map_err(|_| AuthorityProofError::MalformedProof)?;
    let st = Statement {
        ctx,
        amount: &amt,
        commitment: &commitment.point,
    };
    let shifted = st.shifted()?;
    let mut h = Sha256Hasher::new();
    h.update(VERIFIER_RNG_PREFIX.as_bytes())
        .update(&st.encode())
        .update(&proof.proof);
    let mut rng = ChaCha20Rng::from_seed(h.finalize());
    let mut transcript = st.transcript();
    rp.verify_single_with_rng(
        bp_gens(),
        &pc_gens(),
        &mut transcript,
        &shifted,
        RANGE_BITS,
        &mut rng,
    )
    .map_err(|_| AuthorityProofError::InvalidProof)
}
