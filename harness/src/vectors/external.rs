//! Public vector sets in their native formats (`/work/shared/vectors/external/`, not shipped
//! to users), run through the project's own crypto and CBOR layers: NIST ACVP JSON
//! (ML-DSA keyGen / sigGen / sigVer, ML-KEM keyGen / encapDecap, SHA2-256, SLH-DSA),
//! C2SP Wycheproof JSON (ML-DSA, ML-KEM, AES-GCM), the RFC 8949 Appendix A examples and the
//! dCBOR valid / invalid sets.
//!
//! The project's own entry points are used wherever they exist (`mtp_protocol::crypto`:
//! key generation from seeds, pure ML-DSA with the empty context, ML-KEM encapsulation and
//! decapsulation, AES-256-GCM, SHA-256; `mtp_protocol::cbor`). Interfaces MTP does not use
//! (ML-DSA contexts, `Sign_internal`, external μ, HashML-DSA, expanded keys) go to the
//! `ml-dsa` / `ml-kem` / `slh-dsa` crates directly — never hand-rolled cryptography (SLH-DSA:
//! the FIPS 205 internal functions the ACVP sets test).
//!
//! Per file: total, passed, failed (unexplained), explained (an expected divergence, with
//! its reason), skipped (with its reason; parameter sets and sizes MTP does not use are
//! "not applicable").

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use ml_dsa::{B32, EncodedVerifyingKey, ExpandedSigningKey, MlDsa65, MlDsa87, MlDsaParams};
use mtp_protocol::cbor::{self, Value, diag};
use mtp_protocol::crypto::{
    self, DecapsulationKey, KemAlgorithm, PublicKey, SignatureAlgorithm, SigningKey, aead, kem,
};
use sha2::Digest as _;

use super::VectorError;

/// Limits on slow cases.
#[derive(Clone, Debug, Default)]
pub struct ExternalOptions {
    /// Run at most this many slow cases (SHA-256 large-data tests of 1 GiB and more);
    /// `None`: all.
    pub limit_slow: Option<usize>,
}

/// The outcome of one external file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalFileReport {
    /// Path relative to the external folder.
    pub file: String,
    /// What the file tests (`ML-DSA sigGen (ACVP)`).
    pub suite: String,
    pub total: usize,
    pub passed: usize,
    /// Unexplained failures (must be 0).
    pub failed: usize,
    /// Expected divergences, by reason.
    pub explained: BTreeMap<String, usize>,
    /// Skipped and not-applicable cases, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// The first failures (`tcId ...: what`), at most [`MAX_DETAILS`].
    pub failures: Vec<String>,
}

/// Failures listed per file.
pub const MAX_DETAILS: usize = 10;

impl ExternalFileReport {
    fn new(file: &str, suite: &str) -> Self {
        ExternalFileReport {
            file: file.to_owned(),
            suite: suite.to_owned(),
            ..Default::default()
        }
    }

    fn pass(&mut self) {
        self.total += 1;
        self.passed += 1;
    }

    fn fail(&mut self, what: String) {
        self.total += 1;
        self.failed += 1;
        if self.failures.len() < MAX_DETAILS {
            self.failures.push(what);
        }
    }

    fn explain(&mut self, reason: &str) {
        self.total += 1;
        *self.explained.entry(reason.to_owned()).or_default() += 1;
    }

    fn skip(&mut self, reason: &str) {
        self.total += 1;
        *self.skipped.entry(reason.to_owned()).or_default() += 1;
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if ok { self.pass() } else { self.fail(what()) }
    }

    /// Skipped + explained cases.
    pub fn skipped_count(&self) -> usize {
        self.skipped.values().sum()
    }

    pub fn explained_count(&self) -> usize {
        self.explained.values().sum()
    }
}

/// A printable table: one row per file, then the reasons.
pub fn render_table(reports: &[ExternalFileReport]) -> String {
    let mut out = String::new();
    let w = reports
        .iter()
        .map(|r| r.file.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "{:<w$}  {:>6}  {:>6}  {:>6}  {:>9}  {:>7}\n",
        "file", "total", "passed", "failed", "explained", "skipped"
    ));
    for r in reports {
        out.push_str(&format!(
            "{:<w$}  {:>6}  {:>6}  {:>6}  {:>9}  {:>7}\n",
            r.file,
            r.total,
            r.passed,
            r.failed,
            r.explained_count(),
            r.skipped_count()
        ));
    }
    let totals = reports.iter().fold([0usize; 5], |mut a, r| {
        a[0] += r.total;
        a[1] += r.passed;
        a[2] += r.failed;
        a[3] += r.explained_count();
        a[4] += r.skipped_count();
        a
    });
    out.push_str(&format!(
        "{:<w$}  {:>6}  {:>6}  {:>6}  {:>9}  {:>7}\n",
        "total", totals[0], totals[1], totals[2], totals[3], totals[4]
    ));
    for r in reports {
        for (reason, n) in &r.explained {
            out.push_str(&format!("{}: {n} explained: {reason}\n", r.file));
        }
        for (reason, n) in &r.skipped {
            out.push_str(&format!("{}: {n} skipped: {reason}\n", r.file));
        }
        for f in &r.failures {
            out.push_str(&format!("{}: FAILED {f}\n", r.file));
        }
    }
    out
}

/// Runs every known file under `dir` (the external folder with its `SOURCE.md` files).
pub fn check_external(
    dir: &Path,
    options: &ExternalOptions,
) -> Result<Vec<ExternalFileReport>, VectorError> {
    let mut slow_budget = options.limit_slow;
    let mut out = Vec::new();
    let acvp = dir.join("acvp-server");
    if acvp.is_dir() {
        out.push(acvp_mldsa_keygen(&acvp.join("ML-DSA-keyGen-FIPS204"))?);
        out.push(acvp_mldsa_siggen(&acvp.join("ML-DSA-sigGen-FIPS204-tr1"))?);
        out.push(acvp_mldsa_sigver(&acvp.join("ML-DSA-sigVer-FIPS204"))?);
        out.push(acvp_mlkem_keygen(&acvp.join("ML-KEM-keyGen-FIPS203"))?);
        out.push(acvp_mlkem_encap(&acvp.join("ML-KEM-encapDecap-FIPS203"))?);
        out.push(acvp_sha256(&acvp.join("SHA2-256-1.0"), &mut slow_budget)?);
        out.push(acvp_slhdsa(
            &acvp.join("SLH-DSA-keyGen-FIPS205"),
            "SLH-DSA keyGen (ACVP)",
        )?);
    }
    let slh = dir.join("acvp-server-slh-dsa-2024");
    if slh.is_dir() {
        out.push(acvp_slhdsa(
            &slh.join("SLH-DSA-sigGen-FIPS205"),
            "SLH-DSA sigGen (ACVP)",
        )?);
        out.push(acvp_slhdsa(
            &slh.join("SLH-DSA-sigVer-FIPS205"),
            "SLH-DSA sigVer (ACVP)",
        )?);
    }
    let wp = dir.join("wycheproof/testvectors_v1");
    if wp.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&wp)
            .map_err(|source| VectorError::Io {
                path: wp.clone(),
                source,
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        for p in names {
            out.push(wycheproof(&p)?);
        }
    }
    let a = dir.join("cbor-test-vectors/appendix_a.json");
    if a.is_file() {
        out.push(cbor_appendix_a(&a)?);
    }
    let dc = dir.join("dcbor-test-vectors");
    if dc.is_dir() {
        out.push(dcbor(&dc.join("valid.json"), true)?);
        out.push(dcbor(&dc.join("invalid.json"), false)?);
    }
    for r in &mut out {
        if let Ok(rel) = Path::new(&r.file).strip_prefix(dir) {
            r.file = rel.to_string_lossy().into_owned();
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn read(path: &Path) -> Result<Json, VectorError> {
    let bytes = std::fs::read(path).map_err(|source| VectorError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| VectorError::Corpus {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

fn hx(v: &Json, key: &str) -> Option<Vec<u8>> {
    v.get(key)
        .and_then(Json::as_str)
        .and_then(|s| hex::decode(s).ok())
}

fn s<'a>(v: &'a Json, key: &str) -> &'a str {
    v.get(key).and_then(Json::as_str).unwrap_or_default()
}

fn tests(g: &Json) -> &[Json] {
    g.get("tests")
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

fn groups(d: &Json) -> &[Json] {
    d.get("testGroups")
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

/// ACVP prompt + expectedResults, paired by tgId / tcId: (group, test, expected).
fn acvp_pairs(dir: &Path) -> Result<(Json, Json), VectorError> {
    Ok((
        read(&dir.join("prompt.json"))?,
        read(&dir.join("expectedResults.json"))?,
    ))
}

fn expected(results: &Json, tg: u64, tc: u64) -> Option<&Json> {
    groups(results)
        .iter()
        .find(|g| g.get("tgId").and_then(Json::as_u64) == Some(tg))
        .and_then(|g| {
            tests(g)
                .iter()
                .find(|t| t.get("tcId").and_then(Json::as_u64) == Some(tc))
        })
}

fn id_of(t: &Json) -> u64 {
    t.get("tcId").and_then(Json::as_u64).unwrap_or(0)
}

fn report_name(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

const NA_MLDSA44: &str = "not applicable: ML-DSA-44 is not an MTP parameter set (BIND VI-A); the project refuses the label (checked)";

fn mldsa44_refused() -> bool {
    SignatureAlgorithm::from_label("ML-DSA-44").is_err()
        && crypto::verify("ML-DSA-44", &[0; 1312], b"m", &[0; 2420]).is_err()
}

/// A fixed 32-byte `rnd` as an RNG (the randomised ML-DSA interfaces draw exactly it).
struct FixedRnd([u8; 32], usize);

impl crypto::rng::rand_core::TryRng for FixedRnd {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for d in dst {
            *d = self.0.get(self.1).copied().unwrap_or(0);
            self.1 += 1;
        }
        Ok(())
    }
}

impl crypto::rng::rand_core::TryCryptoRng for FixedRnd {}

/// DER OID of a pre-hash function (FIPS 204 §5.4) and the digest, when the harness has it.
fn prehash(alg: &str, m: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let oid = |last: u8| {
        vec![
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last,
        ]
    };
    Some(match alg {
        "SHA2-224" => (oid(0x04), sha2::Sha224::digest(m).to_vec()),
        "SHA2-256" => (oid(0x01), crypto::sha256(m).to_vec()),
        "SHA2-384" => (oid(0x02), sha2::Sha384::digest(m).to_vec()),
        "SHA2-512" => (oid(0x03), sha2::Sha512::digest(m).to_vec()),
        "SHA2-512/224" => (oid(0x05), sha2::Sha512_224::digest(m).to_vec()),
        "SHA2-512/256" => (oid(0x06), sha2::Sha512_256::digest(m).to_vec()),
        "SHA3-256" => (oid(0x08), crypto::sha3_256(m).to_vec()),
        _ => return None,
    })
}

const NO_HASH: &str = "HashML-DSA with SHA3-224/384/512 or SHAKE: the harness has no such hash (sha3 is not a harness dependency); MTP signs with pure ML-DSA only (PROFILE G-02)";

/// Message representative M' of the external interface (FIPS 204 Algorithms 2 and 4).
fn m_prime(prehash_alg: Option<&str>, ctx: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    let len = u8::try_from(ctx.len()).ok()?;
    let mut out = Vec::new();
    match prehash_alg {
        None => {
            out.extend([0u8, len]);
            out.extend_from_slice(ctx);
            out.extend_from_slice(msg);
        }
        Some(h) => {
            let (oid, digest) = prehash(h, msg)?;
            out.extend([1u8, len]);
            out.extend_from_slice(ctx);
            out.extend(oid);
            out.extend(digest);
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// ML-DSA
// ---------------------------------------------------------------------------------------

fn sig_alg(set: &str) -> Option<SignatureAlgorithm> {
    match set {
        "ML-DSA-65" => Some(SignatureAlgorithm::MlDsa65),
        "ML-DSA-87" => Some(SignatureAlgorithm::MlDsa87),
        _ => None,
    }
}

#[allow(deprecated)]
fn keygen_check<P: MlDsaParams>(
    seed: &[u8],
    pk: &[u8],
    sk: &[u8],
    alg: SignatureAlgorithm,
) -> bool {
    let Ok(seed32) = <[u8; 32]>::try_from(seed) else {
        return false;
    };
    // The project's key generation (FIPS 204 KeyGen_internal with xi = seed).
    let ours = SigningKey::from_seed(alg, &seed32).public_key();
    let expanded = ExpandedSigningKey::<P>::from_seed(&B32::from(seed32));
    ours.as_bytes() == pk && expanded.to_expanded().as_slice() == sk
}

fn acvp_mldsa_keygen(dir: &Path) -> Result<ExternalFileReport, VectorError> {
    let mut r = ExternalFileReport::new(&report_name(dir), "ML-DSA keyGen (ACVP)");
    let (prompt, results) = acvp_pairs(dir)?;
    for g in groups(&prompt) {
        let tg = g.get("tgId").and_then(Json::as_u64).unwrap_or(0);
        let set = s(g, "parameterSet");
        for t in tests(g) {
            let tc = id_of(t);
            let Some(alg) = sig_alg(set) else {
                if set == "ML-DSA-44" && mldsa44_refused() {
                    r.skip(NA_MLDSA44);
                } else {
                    r.fail(format!("tcId {tc}: {set} not refused"));
                }
                continue;
            };
            let (Some(seed), Some(e)) = (hx(t, "seed"), expected(&results, tg, tc)) else {
                r.fail(format!("tcId {tc}: malformed case"));
                continue;
            };
            let (pk, sk) = (
                hx(e, "pk").unwrap_or_default(),
                hx(e, "sk").unwrap_or_default(),
            );
            let ok = match alg {
                SignatureAlgorithm::MlDsa87 => keygen_check::<MlDsa87>(&seed, &pk, &sk, alg),
                _ => keygen_check::<MlDsa65>(&seed, &pk, &sk, alg),
            };
            r.check(ok, || format!("tcId {tc}: key pair differs"));
        }
    }
    Ok(r)
}

/// An ML-DSA signing key from a seed or an expanded key (the latter can panic on malformed
/// input in the crate: caught).
#[allow(deprecated)]
fn signing_key<P: MlDsaParams>(
    seed: Option<&[u8]>,
    sk: Option<&[u8]>,
) -> Option<ExpandedSigningKey<P>> {
    if let Some(seed) = seed {
        let s = <[u8; 32]>::try_from(seed).ok()?;
        return Some(ExpandedSigningKey::<P>::from_seed(&B32::from(s)));
    }
    let sk = sk?;
    let enc = ml_dsa::ExpandedSigningKeyBytes::<P>::try_from(sk).ok()?;
    catch_unwind(AssertUnwindSafe(|| {
        ExpandedSigningKey::<P>::from_expanded(&enc)
    }))
    .ok()
}

/// One signature: `interface` external (pure / preHash) or internal (message = M', or μ).
struct SignCase<'a> {
    seed: Option<&'a [u8]>,
    sk: Option<&'a [u8]>,
    message: Option<&'a [u8]>,
    mu: Option<&'a [u8]>,
    ctx: &'a [u8],
    prehash: Option<&'a str>,
    internal: bool,
    rnd: [u8; 32],
}

enum Outcome {
    Signature(Vec<u8>),
    Refused,
    NoHash,
}

fn sign_case<P: MlDsaParams>(alg: SignatureAlgorithm, c: &SignCase<'_>) -> Outcome {
    // The project's own path: pure ML-DSA, empty context, deterministic, seed keys.
    if !c.internal
        && c.prehash.is_none()
        && c.ctx.is_empty()
        && c.rnd == [0; 32]
        && let (Some(seed), Some(msg)) = (c.seed, c.message)
        && let Ok(s) = <[u8; 32]>::try_from(seed)
    {
        return Outcome::Signature(SigningKey::from_seed(alg, &s).sign(msg));
    }
    let Some(key) = signing_key::<P>(c.seed, c.sk) else {
        return Outcome::Refused;
    };
    let rnd = B32::from(c.rnd);
    let sig = if let Some(mu) = c.mu {
        let Ok(mu) = mu.try_into() else {
            return Outcome::Refused;
        };
        if c.rnd == [0; 32] {
            key.sign_mu_deterministic(&mu)
        } else {
            match key.sign_mu_randomized(&mu, &mut FixedRnd(c.rnd, 0)) {
                Ok(s) => s,
                Err(_) => return Outcome::Refused,
            }
        }
    } else if c.internal {
        let Some(m) = c.message else {
            return Outcome::Refused;
        };
        key.sign_internal(&[m], &rnd)
    } else {
        let Some(m) = c.message else {
            return Outcome::Refused;
        };
        if c.ctx.len() > 255 {
            return Outcome::Refused;
        }
        let Some(mp) = m_prime(c.prehash, c.ctx, m) else {
            return Outcome::NoHash;
        };
        key.sign_internal(&[&mp], &rnd)
    };
    Outcome::Signature(sig.encode().to_vec())
}

fn acvp_mldsa_siggen(dir: &Path) -> Result<ExternalFileReport, VectorError> {
    let mut r = ExternalFileReport::new(&report_name(dir), "ML-DSA sigGen (ACVP)");
    let (prompt, results) = acvp_pairs(dir)?;
    for g in groups(&prompt) {
        let tg = g.get("tgId").and_then(Json::as_u64).unwrap_or(0);
        let Some(alg) = sig_alg(s(g, "parameterSet")) else {
            for _ in tests(g) {
                r.skip(NA_MLDSA44);
            }
            continue;
        };
        let internal = s(g, "signatureInterface") == "internal";
        let pre = s(g, "preHash") == "preHash";
        let deterministic = g
            .get("deterministic")
            .and_then(Json::as_bool)
            .unwrap_or(true);
        let external_mu = g.get("externalMu").and_then(Json::as_bool).unwrap_or(false);
        for t in tests(g) {
            let tc = id_of(t);
            let Some(want) = expected(&results, tg, tc).and_then(|e| hx(e, "signature")) else {
                r.fail(format!("tcId {tc}: no expected signature"));
                continue;
            };
            let seed = hx(t, "seed");
            let sk = hx(t, "sk");
            let msg = hx(t, "message");
            let mu = hx(t, "mu");
            let ctx = hx(t, "context").unwrap_or_default();
            let rnd: [u8; 32] = if deterministic {
                [0; 32]
            } else {
                match hx(t, "rnd").and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                    Some(x) => x,
                    None => {
                        r.fail(format!("tcId {tc}: no rnd"));
                        continue;
                    }
                }
            };
            let hash_alg = t
                .get("hashAlg")
                .and_then(Json::as_str)
                .or(g.get("hashAlg").and_then(Json::as_str));
            let case = SignCase {
                seed: seed.as_deref(),
                sk: sk.as_deref(),
                message: if external_mu { None } else { msg.as_deref() },
                mu: if external_mu { mu.as_deref() } else { None },
                ctx: &ctx,
                prehash: if pre { hash_alg } else { None },
                internal,
                rnd,
            };
            let got = match alg {
                SignatureAlgorithm::MlDsa87 => sign_case::<MlDsa87>(alg, &case),
                _ => sign_case::<MlDsa65>(alg, &case),
            };
            match got {
                Outcome::Signature(sig) => {
                    r.check(sig == want, || format!("tcId {tc}: signature differs"));
                }
                Outcome::NoHash => r.skip(NO_HASH),
                Outcome::Refused => r.fail(format!("tcId {tc}: could not sign")),
            }
        }
    }
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
fn verify_case<P: MlDsaParams>(
    alg: SignatureAlgorithm,
    pk: &[u8],
    msg: Option<&[u8]>,
    mu: Option<&[u8]>,
    ctx: &[u8],
    prehash_alg: Option<&str>,
    internal: bool,
    sig: &[u8],
) -> Option<bool> {
    // The project's own verification for pure ML-DSA with the empty context.
    if !internal
        && prehash_alg.is_none()
        && ctx.is_empty()
        && let Some(m) = msg
    {
        return Some(
            PublicKey::from_bytes(alg, pk)
                .map(|k| k.verify(m, sig).is_ok())
                .unwrap_or(false),
        );
    }
    let Ok(enc) = EncodedVerifyingKey::<P>::try_from(pk) else {
        return Some(false);
    };
    let vk = ml_dsa::VerifyingKey::<P>::decode(&enc);
    let Ok(sig) = ml_dsa::Signature::<P>::try_from(sig) else {
        return Some(false);
    };
    if let Some(mu) = mu {
        return Some(match mu.try_into() {
            Ok(mu) => vk.verify_mu(&mu, &sig),
            Err(_) => false,
        });
    }
    let m = msg?;
    if internal {
        return Some(vk.verify_internal(m, &sig));
    }
    if ctx.len() > 255 {
        return Some(false);
    }
    let mp = m_prime(prehash_alg, ctx, m)?;
    Some(vk.verify_internal(&mp, &sig))
}

fn acvp_mldsa_sigver(dir: &Path) -> Result<ExternalFileReport, VectorError> {
    let mut r = ExternalFileReport::new(&report_name(dir), "ML-DSA sigVer (ACVP)");
    let (prompt, results) = acvp_pairs(dir)?;
    for g in groups(&prompt) {
        let tg = g.get("tgId").and_then(Json::as_u64).unwrap_or(0);
        let Some(alg) = sig_alg(s(g, "parameterSet")) else {
            for _ in tests(g) {
                r.skip(NA_MLDSA44);
            }
            continue;
        };
        let internal = s(g, "signatureInterface") == "internal";
        let pre = s(g, "preHash") == "preHash";
        let external_mu = g.get("externalMu").and_then(Json::as_bool).unwrap_or(false);
        let group_pk = hx(g, "pk");
        for t in tests(g) {
            let tc = id_of(t);
            let Some(want) = expected(&results, tg, tc)
                .and_then(|e| e.get("testPassed"))
                .and_then(Json::as_bool)
            else {
                r.fail(format!("tcId {tc}: no testPassed"));
                continue;
            };
            let pk = hx(t, "pk").or_else(|| group_pk.clone()).unwrap_or_default();
            let sig = hx(t, "signature").unwrap_or_default();
            let msg = hx(t, "message");
            let mu = hx(t, "mu");
            let ctx = hx(t, "context").unwrap_or_default();
            let hash_alg = t.get("hashAlg").and_then(Json::as_str);
            let got = match alg {
                SignatureAlgorithm::MlDsa87 => verify_case::<MlDsa87>(
                    alg,
                    &pk,
                    if external_mu { None } else { msg.as_deref() },
                    if external_mu { mu.as_deref() } else { None },
                    &ctx,
                    if pre { hash_alg } else { None },
                    internal,
                    &sig,
                ),
                _ => verify_case::<MlDsa65>(
                    alg,
                    &pk,
                    if external_mu { None } else { msg.as_deref() },
                    if external_mu { mu.as_deref() } else { None },
                    &ctx,
                    if pre { hash_alg } else { None },
                    internal,
                    &sig,
                ),
            };
            match got {
                Some(ok) => r.check(ok == want, || {
                    format!("tcId {tc}: verification {ok}, expected {want}")
                }),
                None => r.skip(NO_HASH),
            }
        }
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// ML-KEM
// ---------------------------------------------------------------------------------------

fn kem_alg(set: &str) -> Option<KemAlgorithm> {
    match set {
        "ML-KEM-768" => Some(KemAlgorithm::MlKem768),
        "ML-KEM-1024" => Some(KemAlgorithm::MlKem1024),
        _ => None,
    }
}

const NA_MLKEM512: &str = "not applicable: ML-KEM-512 is not an MTP parameter set (BIND VI-B)";

/// The expanded decapsulation key of a seed (FIPS 203 dk encoding), via the ml-kem crate.
#[allow(deprecated)]
fn expanded_dk(alg: KemAlgorithm, seed: &[u8; 64]) -> Vec<u8> {
    use ml_kem::ExpandedKeyEncoding as _;
    match alg {
        KemAlgorithm::MlKem768 => {
            ml_kem::DecapsulationKey::<ml_kem::MlKem768>::from_seed((*seed).into())
                .to_expanded_bytes()
                .to_vec()
        }
        KemAlgorithm::MlKem1024 => {
            ml_kem::DecapsulationKey::<ml_kem::MlKem1024>::from_seed((*seed).into())
                .to_expanded_bytes()
                .to_vec()
        }
    }
}

/// Decapsulation with an expanded key (FIPS 203 dk), via the ml-kem crate; `None` when the
/// key or the ciphertext is refused.
#[allow(deprecated)]
fn decaps_expanded(alg: KemAlgorithm, dk: &[u8], c: &[u8]) -> Option<[u8; 32]> {
    use ml_kem::{Decapsulate as _, ExpandedKeyEncoding as _};
    match alg {
        KemAlgorithm::MlKem768 => {
            let enc = ml_kem::array::Array::try_from(dk).ok()?;
            let key =
                ml_kem::DecapsulationKey::<ml_kem::MlKem768>::from_expanded_bytes(&enc).ok()?;
            let ct = ml_kem::Ciphertext::<ml_kem::MlKem768>::try_from(c).ok()?;
            Some(key.decapsulate(&ct).into())
        }
        KemAlgorithm::MlKem1024 => {
            let enc = ml_kem::array::Array::try_from(dk).ok()?;
            let key =
                ml_kem::DecapsulationKey::<ml_kem::MlKem1024>::from_expanded_bytes(&enc).ok()?;
            let ct = ml_kem::Ciphertext::<ml_kem::MlKem1024>::try_from(c).ok()?;
            Some(key.decapsulate(&ct).into())
        }
    }
}

fn acvp_mlkem_keygen(dir: &Path) -> Result<ExternalFileReport, VectorError> {
    let mut r = ExternalFileReport::new(&report_name(dir), "ML-KEM keyGen (ACVP)");
    let (prompt, results) = acvp_pairs(dir)?;
    for g in groups(&prompt) {
        let tg = g.get("tgId").and_then(Json::as_u64).unwrap_or(0);
        let Some(alg) = kem_alg(s(g, "parameterSet")) else {
            for _ in tests(g) {
                r.skip(NA_MLKEM512);
            }
            continue;
        };
        for t in tests(g) {
            let tc = id_of(t);
            let (Some(d), Some(z), Some(e)) = (hx(t, "d"), hx(t, "z"), expected(&results, tg, tc))
            else {
                r.fail(format!("tcId {tc}: malformed case"));
                continue;
            };
            let Ok(seed) = <[u8; 64]>::try_from([d, z].concat()) else {
                r.fail(format!("tcId {tc}: d || z is not 64 bytes"));
                continue;
            };
            let ek = DecapsulationKey::from_seed(alg, &seed).encapsulation_key();
            let ok = Some(ek) == hx(e, "ek") && Some(expanded_dk(alg, &seed)) == hx(e, "dk");
            r.check(ok, || format!("tcId {tc}: key pair differs"));
        }
    }
    Ok(r)
}

fn acvp_mlkem_encap(dir: &Path) -> Result<ExternalFileReport, VectorError> {
    let mut r = ExternalFileReport::new(&report_name(dir), "ML-KEM encapDecap (ACVP)");
    let (prompt, results) = acvp_pairs(dir)?;
    for g in groups(&prompt) {
        let tg = g.get("tgId").and_then(Json::as_u64).unwrap_or(0);
        let Some(alg) = kem_alg(s(g, "parameterSet")) else {
            for _ in tests(g) {
                r.skip(NA_MLKEM512);
            }
            continue;
        };
        let function = s(g, "function");
        for t in tests(g) {
            let tc = id_of(t);
            let Some(e) = expected(&results, tg, tc) else {
                r.fail(format!("tcId {tc}: no expected result"));
                continue;
            };
            match function {
                "encapsulation" => {
                    let (ek, m) = (
                        hx(t, "ek").unwrap_or_default(),
                        hx(t, "m").unwrap_or_default(),
                    );
                    let Ok(m) = <[u8; 32]>::try_from(m) else {
                        r.fail(format!("tcId {tc}: m is not 32 bytes"));
                        continue;
                    };
                    let ok = crypto::encapsulate(alg, &ek, &m).is_ok_and(|(c, k)| {
                        Some(c) == hx(e, "c") && Some(k.to_vec()) == hx(e, "k")
                    });
                    r.check(ok, || format!("tcId {tc}: encapsulation differs"));
                }
                "decapsulation" => {
                    let k = decaps_expanded(
                        alg,
                        &hx(t, "dk").unwrap_or_default(),
                        &hx(t, "c").unwrap_or_default(),
                    );
                    r.check(k.map(|k| k.to_vec()) == hx(e, "k"), || {
                        format!("tcId {tc}: decapsulation differs")
                    });
                }
                "encapsulationKeyCheck" => {
                    let want = e.get("testPassed").and_then(Json::as_bool).unwrap_or(false);
                    let got =
                        kem::check_encapsulation_key(alg, &hx(t, "ek").unwrap_or_default()).is_ok();
                    r.check(got == want, || {
                        format!("tcId {tc}: ek check {got}, expected {want}")
                    });
                }
                "decapsulationKeyCheck" => {
                    let want = e.get("testPassed").and_then(Json::as_bool).unwrap_or(false);
                    let dk = hx(t, "dk").unwrap_or_default();
                    let got = decaps_expanded(alg, &dk, &vec![0u8; alg.ciphertext_len()]).is_some();
                    r.check(got == want, || {
                        format!("tcId {tc}: dk check {got}, expected {want}")
                    });
                }
                other => r.skip(&format!("unknown ML-KEM function {other}")),
            }
        }
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// SHA-256, SLH-DSA
// ---------------------------------------------------------------------------------------

/// ACVP SHA-2 Monte Carlo test, "alternate" version (messages cut or zero-padded to the
/// initial seed length).
fn sha_mct_alternate(seed: &[u8]) -> Vec<[u8; 32]> {
    let len = seed.len();
    let mut seed = seed.to_vec();
    let mut out = Vec::with_capacity(100);
    for _ in 0..100 {
        let (mut a, mut b, mut c) = (seed.clone(), seed.clone(), seed.clone());
        let mut md = [0u8; 32];
        for _ in 0..1000 {
            let mut msg = [a.as_slice(), b.as_slice(), c.as_slice()].concat();
            msg.resize(len, 0);
            md = crypto::sha256(&msg);
            a = b;
            b = c;
            c = md.to_vec();
        }
        out.push(md);
        seed = md.to_vec();
    }
    out
}

fn acvp_sha256(dir: &Path, slow: &mut Option<usize>) -> Result<ExternalFileReport, VectorError> {
    let mut r = ExternalFileReport::new(&report_name(dir), "SHA2-256 (ACVP)");
    let (prompt, results) = acvp_pairs(dir)?;
    for g in groups(&prompt) {
        let tg = g.get("tgId").and_then(Json::as_u64).unwrap_or(0);
        let kind = s(g, "testType");
        for t in tests(g) {
            let tc = id_of(t);
            let Some(e) = expected(&results, tg, tc) else {
                r.fail(format!("tcId {tc}: no expected result"));
                continue;
            };
            match kind {
                "AFT" => {
                    let len = t.get("len").and_then(Json::as_u64).unwrap_or(0);
                    if len % 8 != 0 {
                        r.skip("bit-oriented message (the project hashes bytes)");
                        continue;
                    }
                    let msg = hx(t, "msg").unwrap_or_default();
                    let msg = &msg[..(len / 8) as usize];
                    r.check(Some(crypto::sha256(msg).to_vec()) == hx(e, "md"), || {
                        format!("tcId {tc}: digest differs")
                    });
                }
                "MCT" => {
                    let seed = hx(t, "msg").unwrap_or_default();
                    let want: Vec<Vec<u8>> = e
                        .get("resultsArray")
                        .and_then(Json::as_array)
                        .map(|a| a.iter().filter_map(|x| hx(x, "md")).collect())
                        .unwrap_or_default();
                    let got: Vec<Vec<u8>> = sha_mct_alternate(&seed)
                        .iter()
                        .map(|d| d.to_vec())
                        .collect();
                    r.check(got == want, || {
                        format!("tcId {tc}: Monte Carlo results differ")
                    });
                }
                "LDT" => {
                    if slow.is_some_and(|n| n == 0) {
                        r.skip("large-data test beyond --limit-slow");
                        continue;
                    }
                    if let Some(n) = slow.as_mut() {
                        *n -= 1;
                    }
                    let big = t.get("largeMsg").cloned().unwrap_or(Json::Null);
                    let content = hx(&big, "content").unwrap_or_default();
                    let full_bits = big.get("fullLength").and_then(Json::as_u64).unwrap_or(0);
                    if content.is_empty()
                        || full_bits % 8 != 0
                        || s(&big, "expansionTechnique") != "repeating"
                    {
                        r.fail(format!("tcId {tc}: unsupported large-data form"));
                        continue;
                    }
                    let total = full_bits / 8;
                    let mut block = Vec::with_capacity(1 << 20);
                    while block.len() + content.len() <= 1 << 20 {
                        block.extend_from_slice(&content);
                    }
                    let mut h = crypto::hash::Sha256Hasher::new();
                    let mut done = 0u64;
                    while done + block.len() as u64 <= total {
                        h.update(&block);
                        done += block.len() as u64;
                    }
                    let rest = (total - done) as usize;
                    let tail: Vec<u8> = content.iter().copied().cycle().take(rest).collect();
                    h.update(&tail);
                    r.check(Some(h.finalize().to_vec()) == hx(e, "md"), || {
                        format!("tcId {tc}: large-data digest differs")
                    });
                }
                other => r.skip(&format!("unknown SHA test type {other}")),
            }
        }
    }
    Ok(r)
}

/// SLH-DSA-SHA2-192s through the `slh-dsa` crate's FIPS 205 internal functions
/// (`slh_keygen_internal`, `slh_sign_internal`, `slh_verify_internal`): the ACVP sets test the
/// internal interface. n = 24 for this parameter set.
fn acvp_slhdsa(dir: &Path, suite: &str) -> Result<ExternalFileReport, VectorError> {
    use slh_dsa::{Sha2_192s, Signature, SigningKey, VerifyingKey};
    const N: usize = 24;
    let mut r = ExternalFileReport::new(&report_name(dir), suite);
    let (prompt, results) = acvp_pairs(dir)?;
    for g in groups(&prompt) {
        let tg = g.get("tgId").and_then(Json::as_u64).unwrap_or(0);
        let set = s(g, "parameterSet");
        if set != SignatureAlgorithm::SlhDsaSha2_192s.label() {
            for _ in tests(g) {
                r.skip("not applicable: SLH-DSA parameter set other than SLH-DSA-SHA2-192s");
            }
            continue;
        }
        for t in tests(g) {
            let tc = id_of(t);
            let Some(want) = expected(&results, tg, tc) else {
                r.fail(format!("tcId {tc}: no expected result"));
                continue;
            };
            if let (Some(sk_seed), Some(sk_prf), Some(pk_seed)) =
                (hx(t, "skSeed"), hx(t, "skPrf"), hx(t, "pkSeed"))
            {
                // keyGen
                if [&sk_seed, &sk_prf, &pk_seed].iter().any(|b| b.len() != N) {
                    r.fail(format!("tcId {tc}: seed lengths"));
                    continue;
                }
                let sk = SigningKey::<Sha2_192s>::slh_keygen_internal(&sk_seed, &sk_prf, &pk_seed);
                let vk: &VerifyingKey<Sha2_192s> = sk.as_ref();
                if Some(sk.to_vec()) == hx(want, "sk") && Some(vk.to_vec()) == hx(want, "pk") {
                    r.pass();
                } else {
                    r.fail(format!("tcId {tc}: key pair differs"));
                }
            } else if let Some(expected_sig) = hx(want, "signature") {
                // sigGen (deterministic: opt_rand = PK.seed; else additionalRandomness)
                let (Some(skb), Some(msg)) = (hx(t, "sk"), hx(t, "message")) else {
                    r.fail(format!("tcId {tc}: no sk or message"));
                    continue;
                };
                let Ok(sk) = SigningKey::<Sha2_192s>::try_from(skb.as_slice()) else {
                    r.fail(format!("tcId {tc}: bad sk"));
                    continue;
                };
                let rand = hx(t, "additionalRandomness");
                if rand.as_ref().is_some_and(|x| x.len() != N) {
                    r.fail(format!("tcId {tc}: additionalRandomness length"));
                    continue;
                }
                let sig = sk.slh_sign_internal(&[&msg], rand.as_deref());
                if sig.to_vec() == expected_sig {
                    r.pass();
                } else {
                    r.fail(format!("tcId {tc}: signature differs"));
                }
            } else if let Some(passed) = want.get("testPassed").and_then(Json::as_bool) {
                // sigVer
                let (Some(pkb), Some(msg), Some(sigb)) =
                    (hx(t, "pk"), hx(t, "message"), hx(t, "signature"))
                else {
                    r.fail(format!("tcId {tc}: no pk, message or signature"));
                    continue;
                };
                let ok = match (
                    VerifyingKey::<Sha2_192s>::try_from(pkb.as_slice()),
                    Signature::<Sha2_192s>::try_from(sigb.as_slice()),
                ) {
                    (Ok(vk), Ok(sig)) => vk.slh_verify_internal(&[&msg], &sig).is_ok(),
                    _ => false,
                };
                if ok == passed {
                    r.pass();
                } else {
                    r.fail(format!("tcId {tc}: verify gave {ok}, expected {passed}"));
                }
            } else {
                r.fail(format!("tcId {tc}: unrecognised test"));
            }
        }
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// Wycheproof
// ---------------------------------------------------------------------------------------

fn wycheproof(path: &Path) -> Result<ExternalFileReport, VectorError> {
    let d = read(path)?;
    let algorithm = s(&d, "algorithm").to_owned();
    let schema = s(&d, "schema").to_owned();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut r = ExternalFileReport::new(
        &report_name(path),
        &format!("{algorithm} (Wycheproof {schema})"),
    );
    for g in groups(&d) {
        for t in tests(g) {
            let tc = id_of(t);
            let valid = match s(t, "result") {
                "valid" => Some(true),
                "invalid" => Some(false),
                _ => None,
            };
            let Some(valid) = valid else {
                r.skip("result \"acceptable\"");
                continue;
            };
            if algorithm == "AES-GCM" {
                wp_aes_gcm(&mut r, g, t, tc, valid);
            } else if algorithm.starts_with("ML-DSA") {
                wp_mldsa(&mut r, &algorithm, &schema, g, t, tc, valid);
            } else if algorithm == "ML-KEM" {
                wp_mlkem(&mut r, &name, g, t, tc, valid);
            } else {
                r.skip(&format!("no runner for {algorithm}"));
            }
        }
    }
    Ok(r)
}

fn wp_aes_gcm(r: &mut ExternalFileReport, g: &Json, t: &Json, tc: u64, valid: bool) {
    let key_size = g.get("keySize").and_then(Json::as_u64).unwrap_or(0);
    let iv_size = g.get("ivSize").and_then(Json::as_u64).unwrap_or(0);
    let tag_size = g.get("tagSize").and_then(Json::as_u64).unwrap_or(0);
    if key_size != 256 {
        r.skip("not applicable: AES-128/192-GCM (MTP uses 256-bit keys only, BIND-VI-D-01)");
        return;
    }
    if iv_size != 96 || tag_size != 128 {
        // The project's AES-256-GCM takes a 96-bit IV and appends a 128-bit tag: other
        // sizes cannot even be expressed.
        r.skip("not applicable: IV other than 96 bits or tag other than 128 bits (BIND-VI-D-01)");
        return;
    }
    let (Some(key), Some(iv), Some(aad), Some(msg), Some(ct), Some(tag)) = (
        hx(t, "key").and_then(|k| <[u8; 32]>::try_from(k).ok()),
        hx(t, "iv").and_then(|k| <[u8; 12]>::try_from(k).ok()),
        hx(t, "aad"),
        hx(t, "msg"),
        hx(t, "ct"),
        hx(t, "tag"),
    ) else {
        r.fail(format!("tcId {tc}: malformed case"));
        return;
    };
    let sealed = [ct.as_slice(), tag.as_slice()].concat();
    let opened = aead::open(&key, &iv, &aad, &sealed);
    if valid {
        let ok =
            aead::seal(&key, &iv, &aad, &msg) == sealed && opened.as_deref() == Ok(msg.as_slice());
        r.check(ok, || format!("tcId {tc}: AES-256-GCM result differs"));
    } else {
        r.check(opened.is_err(), || {
            format!("tcId {tc}: an invalid ciphertext opens")
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn wp_mldsa(
    r: &mut ExternalFileReport,
    algorithm: &str,
    schema: &str,
    g: &Json,
    t: &Json,
    tc: u64,
    valid: bool,
) {
    let Some(alg) = sig_alg(algorithm) else {
        if algorithm == "ML-DSA-44" && mldsa44_refused() {
            r.skip(NA_MLDSA44);
        } else {
            r.fail(format!("tcId {tc}: {algorithm} not refused"));
        }
        return;
    };
    let ctx = hx(t, "ctx").unwrap_or_default();
    let msg = hx(t, "msg");
    let mu = hx(t, "mu");
    let internal = t
        .get("flags")
        .and_then(Json::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("Internal")));
    if schema.contains("verify") {
        let pk = hx(g, "publicKey").unwrap_or_default();
        let sig = hx(t, "sig").unwrap_or_default();
        let got = match alg {
            SignatureAlgorithm::MlDsa87 => verify_case::<MlDsa87>(
                alg,
                &pk,
                msg.as_deref(),
                if msg.is_none() { mu.as_deref() } else { None },
                &ctx,
                None,
                false,
                &sig,
            ),
            _ => verify_case::<MlDsa65>(
                alg,
                &pk,
                msg.as_deref(),
                if msg.is_none() { mu.as_deref() } else { None },
                &ctx,
                None,
                false,
                &sig,
            ),
        };
        match got {
            Some(ok) => r.check(ok == valid, || {
                format!("tcId {tc}: verification {ok}, expected {valid}")
            }),
            None => r.fail(format!("tcId {tc}: could not verify")),
        }
        return;
    }
    // Signing: sign_seed (privateSeed) or sign_noseed (expanded privateKey).
    let seed = hx(g, "privateSeed");
    let sk = hx(g, "privateKey");
    let rnd = hx(t, "rnd")
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .unwrap_or([0; 32]);
    let use_mu = internal || msg.is_none();
    let case = SignCase {
        seed: seed.as_deref(),
        sk: sk.as_deref(),
        message: if use_mu { None } else { msg.as_deref() },
        mu: if use_mu { mu.as_deref() } else { None },
        ctx: &ctx,
        prehash: None,
        internal: false,
        rnd,
    };
    let got = match alg {
        SignatureAlgorithm::MlDsa87 => sign_case::<MlDsa87>(alg, &case),
        _ => sign_case::<MlDsa65>(alg, &case),
    };
    let want = hx(t, "sig").unwrap_or_default();
    match (got, valid) {
        (Outcome::Signature(s), true) => {
            r.check(s == want, || format!("tcId {tc}: signature differs"))
        }
        (Outcome::Refused, false) => r.pass(),
        (Outcome::Signature(_), false) => r.fail(format!("tcId {tc}: an invalid case was signed")),
        (Outcome::Refused, true) => r.fail(format!("tcId {tc}: could not sign")),
        (Outcome::NoHash, _) => r.skip(NO_HASH),
    }
}

fn wp_mlkem(r: &mut ExternalFileReport, name: &str, g: &Json, t: &Json, tc: u64, valid: bool) {
    let Some(alg) = kem_alg(s(g, "parameterSet")) else {
        r.skip(NA_MLKEM512);
        return;
    };
    if name.contains("keygen_seed") {
        let seed = hx(t, "seed").and_then(|b| <[u8; 64]>::try_from(b).ok());
        let got = seed.map(|sd| {
            (
                DecapsulationKey::from_seed(alg, &sd).encapsulation_key(),
                expanded_dk(alg, &sd),
            )
        });
        match (got, valid) {
            (Some((ek, dk)), true) => r
                .check(Some(ek) == hx(t, "ek") && Some(dk) == hx(t, "dk"), || {
                    format!("tcId {tc}: key pair differs")
                }),
            (None, false) => r.pass(),
            (Some(_), false) => r.fail(format!("tcId {tc}: an invalid seed was accepted")),
            (None, true) => r.fail(format!("tcId {tc}: seed refused")),
        }
    } else if name.contains("encaps") {
        let ek = hx(t, "ek").unwrap_or_default();
        let m = hx(t, "m").and_then(|b| <[u8; 32]>::try_from(b).ok());
        let got = m.and_then(|m| crypto::encapsulate(alg, &ek, &m).ok());
        match (got, valid) {
            (Some((c, k)), true) => r.check(
                Some(c) == hx(t, "c") && Some(k.to_vec()) == hx(t, "K"),
                || format!("tcId {tc}: encapsulation differs"),
            ),
            (None, false) => r.pass(),
            (Some(_), false) => r.fail(format!(
                "tcId {tc}: an invalid encapsulation key was accepted"
            )),
            (None, true) => r.fail(format!("tcId {tc}: encapsulation refused")),
        }
    } else if name.contains("semi_expanded") {
        let got = decaps_expanded(
            alg,
            &hx(t, "dk").unwrap_or_default(),
            &hx(t, "c").unwrap_or_default(),
        );
        match (got, valid) {
            (Some(k), true) => r.check(Some(k.to_vec()) == hx(t, "K"), || format!("tcId {tc}: K differs")),
            (None, false) => r.pass(),
            (Some(_), false) => r.explain(
                "the ml-kem crate validates an expanded key by H(ek) only (FIPS 203 §7.3 input check); MTP keys are always seeds (PROFILE G-06)",
            ),
            (None, true) => r.fail(format!("tcId {tc}: decapsulation refused")),
        }
    } else {
        // *_test: seed and ciphertext → ek and K (implicit rejection included).
        let seed = hx(t, "seed").and_then(|b| <[u8; 64]>::try_from(b).ok());
        let got = seed.and_then(|sd| {
            let dk = DecapsulationKey::from_seed(alg, &sd);
            let k = dk.decapsulate(&hx(t, "c").unwrap_or_default()).ok()?;
            Some((dk.encapsulation_key(), k))
        });
        match (got, valid) {
            (Some((ek, k)), true) => r.check(
                Some(ek) == hx(t, "ek") && Some(k.to_vec()) == hx(t, "K"),
                || format!("tcId {tc}: decapsulation differs"),
            ),
            (None, false) => r.pass(),
            (Some(_), false) => r.fail(format!("tcId {tc}: an invalid input was accepted")),
            (None, true) => r.fail(format!("tcId {tc}: refused")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// CBOR
// ---------------------------------------------------------------------------------------

/// Compares a decoded CBOR value with the JSON of the test file (numbers numerically).
fn json_equals(v: &Value, j: &Json) -> bool {
    match (v, j) {
        (Value::Integer(i), Json::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(x), _, _) => *i == i128::from(x),
            (_, Some(x), _) => *i == i128::from(x),
            (_, _, Some(f)) => (*i as f64) == f,
            _ => false,
        },
        (Value::Float(f), Json::Number(n)) => n.as_f64().is_some_and(|x| x == *f),
        (Value::Tag(2 | 3, inner), Json::Number(n)) => {
            // Bignums: compare as f64 (the file's JSON numbers are f64 there).
            let mag = inner.as_bytes().map_or(0f64, |b| {
                b.iter().fold(0f64, |a, x| a * 256.0 + f64::from(*x))
            });
            let val = if matches!(v, Value::Tag(3, _)) {
                -1.0 - mag
            } else {
                mag
            };
            n.as_f64().is_some_and(|x| x == val)
        }
        (Value::Text(a), Json::String(b)) => a == b,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Null, Json::Null) => true,
        (Value::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_equals(x, y))
        }
        (Value::Map(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, x)| {
                    k.as_text()
                        .and_then(|k| b.get(k))
                        .is_some_and(|y| json_equals(x, y))
                })
        }
        _ => false,
    }
}

fn cbor_appendix_a(path: &Path) -> Result<ExternalFileReport, VectorError> {
    let mut r = ExternalFileReport::new(
        &report_name(path),
        "RFC 8949 Appendix A (cbor/test-vectors)",
    );
    let d = read(path)?;
    for (i, case) in d
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .enumerate()
    {
        let Some(bytes) = hx(case, "hex") else {
            r.fail(format!("#{i}: no hex"));
            continue;
        };
        let roundtrip = case
            .get("roundtrip")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let decoded = match cbor::from_slice_lenient(&bytes) {
            Ok(v) => v,
            Err(e) => {
                if bytes.first() == Some(&0xf8) && bytes.get(1).is_some_and(|b| *b < 32) {
                    r.explain("simple(24) as f8 18 is well-formed under RFC 7049 but not under RFC 8949 §3.3 (two-byte simple values below 32); rejected");
                } else {
                    r.fail(format!("#{i} {}: not decoded: {e}", case["hex"]));
                }
                continue;
            }
        };
        // The item again through diagnostic notation (lossless, PROFILE G-28).
        let diag_ok = diag::to_diag(&bytes)
            .ok()
            .and_then(|t| diag::from_diag(&t).ok())
            .is_some_and(|b| b == bytes);
        let value_ok = match (
            case.get("decoded"),
            case.get("diagnostic").and_then(Json::as_str),
        ) {
            (Some(j), _) => json_equals(&decoded, j),
            (None, Some(text)) => diag::from_diag(text)
                .ok()
                .and_then(|b| cbor::from_slice_lenient(&b).ok())
                .is_some_and(|v| v.canonical().bitwise_eq(&decoded.canonical())),
            (None, None) => true,
        };
        // Preferred serialization: the deterministic encoder reproduces `roundtrip` items.
        let round_ok =
            !roundtrip || cbor::to_vec(&decoded).ok().as_deref() == Some(bytes.as_slice());
        if diag_ok && value_ok && round_ok {
            r.pass();
        } else {
            r.fail(format!(
                "#{i} {}: value {value_ok}, diagnostic round trip {diag_ok}, re-encoding {round_ok}",
                case["hex"]
            ));
        }
    }
    Ok(r)
}

/// Why a dCBOR-invalid item is still valid RFC 8949 §4.2.1 deterministic CBOR.
fn dcbor_only_rule(v: &Value) -> Option<&'static str> {
    fn walk(v: &Value, found: &mut Option<&'static str>) {
        match v {
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1.8e19 => {
                *found = Some(
                    "dCBOR numeric reduction (an integral float must be an integer); RFC 8949 §4.2.1 keeps the float",
                );
            }
            Value::Float(f) if f.is_nan() => {
                found.get_or_insert("dCBOR allows one NaN encoding only");
            }
            Value::Undefined | Value::Simple(_) => {
                found.get_or_insert("dCBOR restricts simple values to false, true, null and floats; RFC 8949 §4.2.1 allows them");
            }
            Value::Integer(i) if *i < i128::from(i64::MIN) => {
                found.get_or_insert("dCBOR forbids 65-bit negative integers (below -2^63); RFC 8949 major type 1 reaches -2^64");
            }
            Value::Text(t) if t.chars().any(|c| ('\u{300}'..='\u{36f}').contains(&c)) => {
                found.get_or_insert("dCBOR requires NFC-normalised text (this one has a combining mark); RFC 8949 §4.2.1 has no normalisation rule");
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, found)),
            Value::Map(m) => m.iter().for_each(|(k, x)| {
                walk(k, found);
                walk(x, found);
            }),
            Value::Tag(_, x) => walk(x, found),
            _ => {}
        }
    }
    let mut found = None;
    walk(v, &mut found);
    found
}

fn dcbor(path: &Path, valid: bool) -> Result<ExternalFileReport, VectorError> {
    let suite = if valid {
        "dCBOR valid"
    } else {
        "dCBOR invalid"
    };
    let mut r = ExternalFileReport::new(&report_name(path), suite);
    let d = read(path)?;
    for (i, case) in d
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .enumerate()
    {
        let Some(bytes) = hx(case, "hex") else {
            r.fail(format!("#{i}: no hex"));
            continue;
        };
        let strict = cbor::from_slice(&bytes);
        if valid {
            match strict {
                Ok(v) => {
                    let roundtrip = case
                        .get("roundtrip")
                        .and_then(Json::as_bool)
                        .unwrap_or(false);
                    let ok =
                        !roundtrip || cbor::to_vec(&v).ok().as_deref() == Some(bytes.as_slice());
                    r.check(ok, || format!("#{i} {}: re-encoding differs", case["hex"]));
                }
                Err(e) => r.fail(format!("#{i} {}: refused: {e}", case["hex"])),
            }
        } else {
            match strict {
                Err(_) => {
                    let roundtrip = case
                        .get("roundtrip")
                        .and_then(Json::as_bool)
                        .unwrap_or(false);
                    if roundtrip {
                        // Decoded permissively, the encoder must refuse it too.
                        match cbor::from_slice_lenient(&bytes).map(|v| cbor::to_vec(&v)) {
                            Ok(Ok(_)) => r.explain("RFC 8949 §4.2.1 encoder canonicalises the permissively decoded item (sorts keys, shortens heads) instead of refusing it; the strict decoder refuses the input"),
                            _ => r.pass(),
                        }
                    } else {
                        r.pass();
                    }
                }
                Ok(v) => match dcbor_only_rule(&v) {
                    Some(reason) => r.explain(reason),
                    None => r.fail(format!(
                        "#{i} {}: accepted by the strict decoder",
                        case["hex"]
                    )),
                },
            }
        }
    }
    Ok(r)
}
