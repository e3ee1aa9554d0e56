//! Known-answer self-check of `mtp-protocol`: every check names the requirement ids it
//! exercises and ends in pass or fail with a detail line. The expected values are written
//! here from the spec and the wire profile, not taken from the code under check.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use mtp_protocol::cbor::{self, Value, diag, mutate};
use mtp_protocol::crypto::{
    self, AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SeededRng, SignatureAlgorithm,
    SigningKey, aead::IvTracker,
};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::Did;
use mtp_protocol::primitives::{CborObject, Offer, SingleSigned};
use mtp_protocol::state_machine::{self, TxEvent, TxState};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType, UuidRegistry};
use mtp_protocol::{audit, wire};

type CheckResult = Result<String, String>;
/// A `cbor::mutate` fault injector.
type Mutator = fn(&[u8]) -> Option<Vec<u8>>;

struct Check {
    id: &'static str,
    title: &'static str,
    requirements: &'static [&'static str],
    run: fn(&Ctx) -> CheckResult,
}

/// Everything a check may derive its keys and randomness from.
struct Ctx {
    seed: u64,
}

impl Ctx {
    fn master(&self) -> [u8; 32] {
        crypto::sha256(format!("mtp-cert self-check seed {}", self.seed).as_bytes())
    }
    fn key(&self, alg: SignatureAlgorithm, label: &str) -> SigningKey {
        SigningKey::from_seed(alg, &crypto::seed::derive(&self.master(), label))
    }
    fn rng(&self, label: &str) -> SeededRng {
        SeededRng::from_master(&self.master(), label)
    }
    fn now(&self) -> Timestamp {
        // A fixed instant: the self-check never reads the clock, so reruns are byte-identical.
        Timestamp::from_unix_nanos(1_772_755_200_000_000_000)
    }
}

fn ensure(cond: bool, msg: impl Into<String>) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg.into()) }
}

fn code_of<T>(r: Result<T, impl Coded>) -> Option<ErrorCode> {
    r.err().map(|e| e.code())
}

const CHECKS: &[Check] = &[
    Check {
        id: "cbor.bytewise-key-order",
        title: "map keys are sorted bytewise by their encoding (RFC 8949 §4.2.1)",
        requirements: &["BIND-IV-A-02", "SPEC-VII-B-01"],
        run: |_| {
            // {"aa": 2, "b": 1}: "b" (0x61 0x62) sorts before "aa" (0x62 0x61 0x61).
            let v = Value::map([("aa", Value::Integer(2)), ("b", Value::Integer(1))]);
            let got = cbor::to_vec(&v).map_err(|e| e.to_string())?;
            let want = [0xa2, 0x61, 0x62, 0x01, 0x62, 0x61, 0x61, 0x02];
            ensure(got == want, format!("got {}", hex::encode(&got)))?;
            Ok("a2 61 62 01 62 61 61 02".into())
        },
    },
    Check {
        id: "cbor.shortest-forms",
        title: "integers and floats take their shortest exact form",
        requirements: &["BIND-IV-A-04"],
        run: |_| {
            for (v, want) in [
                (Value::Integer(23), "17"),
                (Value::Integer(24), "1818"),
                (Value::Integer(-25), "3818"),
                (Value::Float(0.5), "f93800"),
                (Value::Float(0.92f32 as f64), "fa3f6b851f"),
                (Value::Float(0.08), "fb3fb47ae147ae147b"),
                (Value::Float(f64::NAN), "f97e00"),
            ] {
                let got = hex::encode(cbor::to_vec(&v).map_err(|e| e.to_string())?);
                ensure(got == want, format!("{v:?}: got {got}, want {want}"))?;
            }
            Ok("7 known encodings".into())
        },
    },
    Check {
        id: "cbor.strict-decoder-rejects",
        title: "the strict decoder refuses every non-deterministic variant with 0101",
        requirements: &[
            "BIND-IV-A-01",
            "BIND-IV-A-02",
            "BIND-IV-A-03",
            "BIND-IV-A-04",
            "BIND-IV-A-05",
        ],
        run: |_| {
            // Text keys sort the same bytewise and length-first (the head encodes the length);
            // an integer key inside an open map makes the RFC 7049 order differ.
            let v = Value::Map(vec![
                (Value::text("amount"), Value::Float(1.5)),
                (
                    Value::text("items"),
                    Value::Array(vec![Value::Integer(1), Value::Integer(300)]),
                ),
                (Value::text("unit"), Value::text("USD")),
                (Value::Integer(1000), Value::Null),
                (Value::text("a"), Value::Bool(true)),
            ]);
            let good = cbor::to_vec(&v).map_err(|e| e.to_string())?;
            ensure(cbor::from_slice(&good).is_ok(), "valid encoding refused")?;
            let variants: [(&str, Mutator); 6] = [
                ("reordered keys", mutate::reorder_map_keys),
                ("indefinite length", mutate::indefinite_length),
                ("non-shortest integer", mutate::non_shortest_int),
                ("non-shortest float", mutate::non_shortest_float),
                ("duplicate key", mutate::duplicate_key),
                ("RFC 7049 length-first order", mutate::length_first_order),
            ];
            for (name, f) in variants {
                let bad = f(&good).ok_or(format!("no {name} variant"))?;
                match cbor::from_slice(&bad) {
                    Ok(_) => return Err(format!("{name} accepted")),
                    Err(e) if e.code() != ErrorCode::SerializationMismatch => {
                        return Err(format!("{name}: code {} not 0101", e.code()));
                    }
                    Err(_) => {}
                }
            }
            Ok("6 variants refused with 0101".into())
        },
    },
    Check {
        id: "cbor.diagnostic-lossless",
        title: "CBOR ⇄ diagnostic notation is lossless",
        requirements: &["BIND-IV-B-01"],
        run: |_| {
            let v = Value::map([
                (
                    "t",
                    Value::Tag(0, Box::new(Value::text("2026-03-06T00:00:00Z"))),
                ),
                ("b", Value::bytes(vec![0, 1, 2])),
                ("f", Value::Float(1.5)),
            ]);
            let bytes = cbor::to_vec(&v).map_err(|e| e.to_string())?;
            let text = diag::to_diag(&bytes).map_err(|e| e.to_string())?;
            let back = diag::from_diag(&text).map_err(|e| e.to_string())?;
            ensure(back == bytes, format!("{text} did not round-trip"))?;
            Ok(text)
        },
    },
    Check {
        id: "uuid.layout",
        title: "MTP-UUIDs: 256 bits, 67-character lowercase text, lossless text ⇄ bytes",
        requirements: &["SPEC-IX-02", "SPEC-IX-03", "BIND-IX-01"],
        run: |c| {
            let did = "did:mtp:self-check";
            let mut rng = c.rng("uuid");
            for ty in ObjectType::ALL {
                let id =
                    MtpUuid::generate(ty, c.now(), did, rng.bytes()).map_err(|e| e.to_string())?;
                let text = id.to_string();
                ensure(text.len() == 67, format!("{text} is {} chars", text.len()))?;
                ensure(text == text.to_lowercase(), "text not lowercase")?;
                ensure(
                    MtpUuid::parse(&text).ok() == Some(id),
                    "text did not round-trip",
                )?;
                ensure(
                    MtpUuid::from_bytes(id.as_bytes()).ok() == Some(id),
                    "bytes did not round-trip",
                )?;
                ensure(id.as_bytes()[0] == 0x10 | ty as u8, "version/type nibbles")?;
                // Source = first 48 bits of SHA-256 of the DID (BIND IX).
                ensure(
                    id.as_bytes()[9..15] == crypto::sha256(did.as_bytes())[..6],
                    "source field",
                )?;
            }
            Ok("9 object types".into())
        },
    },
    Check {
        id: "uuid.malformed",
        title: "malformed MTP-UUIDs (incl. the SPEC II example ids) are rejected with 0102",
        requirements: &["SPEC-IX-03"],
        run: |_| {
            // A valid Terms id (version 1, type 3), then single-rule violations of it.
            let good = format!("13-0018a3f29bc7a103-7a3f2b9c1d4e-4f5a{}", "0".repeat(30));
            ensure(
                good.len() == 67 && MtpUuid::parse(&good).is_ok(),
                "reference id refused",
            )?;
            let bad = [
                good.to_uppercase(),              // uppercase
                format!("03{}", &good[2..]),      // version 0 (as in the SPEC II examples)
                format!("10{}", &good[2..]),      // reserved type 0x0
                format!("{}{}", &good[..66], ""), // 66 characters
                format!("{good}0"),               // 68 characters
                good.replacen('-', "", 1) + "-",  // misplaced hyphen
                good.replacen('a', "g", 1),       // non-hex character
                // The SPEC II-A example id, completed to 67 characters.
                format!("01-0018A3F29B7C4E01-7A3F2B9C1D4E-8F2A{}", "0".repeat(30)),
            ];
            for b in &bad {
                match MtpUuid::parse(b) {
                    Ok(_) => return Err(format!("{b} accepted")),
                    Err(e) if e.code() != ErrorCode::MalformedUuid => {
                        return Err(format!("{b}: code {}", e.code()));
                    }
                    Err(_) => {}
                }
            }
            Ok(format!("{} malformed ids refused", bad.len()))
        },
    },
    Check {
        id: "uuid.reuse",
        title: "a reused MTP-UUID is Fatal 0100; a byte-identical resend is a duplicate",
        requirements: &["SPEC-IX-04"],
        run: |c| {
            let id = MtpUuid::generate(ObjectType::Offer, c.now(), "did:mtp:x", [7; 17])
                .map_err(|e| e.to_string())?;
            let mut reg = UuidRegistry::new();
            reg.reserve(id, [1; 32]).map_err(|e| e.to_string())?;
            ensure(reg.reserve(id, [1; 32]).is_ok(), "identical resend refused")?;
            ensure(
                code_of(reg.reserve(id, [2; 32])) == Some(ErrorCode::UuidReuse),
                "reuse not 0100",
            )?;
            Ok("reuse → 0100".into())
        },
    },
    Check {
        id: "identity.did-mtp",
        title: "did:mtp = Base58btc(SHA-256(ML-DSA public key))",
        requirements: &["BIND-II-A-I02"],
        run: |c| {
            let pk = c.key(SignatureAlgorithm::MlDsa65, "did").public_key();
            let did = Did::derive(SignatureAlgorithm::MlDsa65, pk.as_bytes())
                .map_err(|e| e.to_string())?;
            let want = format!("did:mtp:{}", bs58_encode(&crypto::sha256(pk.as_bytes())));
            ensure(did.as_str() == want, format!("{} != {want}", did.as_str()))?;
            ensure(Did::parse(&want).is_ok(), "derived DID does not parse")?;
            ensure(
                Did::parse(&want.replace("did:mtp:", "did:mtp:z")).is_err(),
                "multibase prefix accepted",
            )?;
            Ok(want)
        },
    },
    Check {
        id: "crypto.signatures",
        title: "ML-DSA-65, ML-DSA-87 and SLH-DSA-SHA2-192s sign and verify with the designated sizes",
        requirements: &[
            "SPEC-VIII-A-01",
            "SPEC-VIII-A-06",
            "BIND-VI-A-01",
            "BIND-VI-A-03",
            "BIND-VI-C-01",
        ],
        run: |c| {
            let mut out = Vec::new();
            for (alg, pk_len, sig_len) in [
                (SignatureAlgorithm::MlDsa65, 1952, 3309),
                (SignatureAlgorithm::MlDsa87, 2592, 4627),
                (SignatureAlgorithm::SlhDsaSha2_192s, 48, 16224),
            ] {
                let key = c.key(alg, alg.label());
                let pk = key.public_key();
                let sig = key.sign(b"mtp self-check");
                ensure(
                    pk.as_bytes().len() == pk_len,
                    format!("{} pk {}", alg.label(), pk.as_bytes().len()),
                )?;
                ensure(
                    sig.len() == sig_len,
                    format!("{} sig {}", alg.label(), sig.len()),
                )?;
                pk.verify(b"mtp self-check", &sig)
                    .map_err(|e| e.to_string())?;
                ensure(
                    code_of(pk.verify(b"mtp self-check!", &sig))
                        == Some(ErrorCode::SignatureVerificationFailure),
                    "tampered message verified",
                )?;
                out.push(format!("{} {sig_len} B", alg.label()));
            }
            Ok(out.join(", "))
        },
    },
    Check {
        id: "crypto.forbidden-algorithms",
        title: "ML-DSA-44, ML-KEM-512 and pre-quantum algorithms are refused",
        requirements: &[
            "BIND-VI-A-03",
            "BIND-VI-B-02",
            "SPEC-VIII-A-02",
            "SPEC-VIII-A-05",
        ],
        run: |_| {
            for label in ["ML-DSA-44", "Ed25519", "ECDSA", "RSA"] {
                ensure(
                    crypto::verify(label, &[0; 32], b"m", &[0; 64]).is_err(),
                    format!("{label} accepted"),
                )?;
                ensure(
                    SignatureAlgorithm::from_label(label).is_err(),
                    format!("{label} parsed"),
                )?;
            }
            for label in ["ML-KEM-512", "X25519", "ECDH", "X25519MLKEM768"] {
                ensure(
                    KemAlgorithm::from_label(label).is_err(),
                    format!("{label} parsed"),
                )?;
            }
            let p = AlgorithmSupportProfile::from_labels(
                &["ML-DSA-65", "ML-DSA-44"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256"],
            );
            ensure(
                code_of(p) == Some(ErrorCode::AlgorithmNegotiationFailure),
                "profile with ML-DSA-44 accepted",
            )?;
            Ok("8 labels refused".into())
        },
    },
    Check {
        id: "crypto.kem",
        title: "ML-KEM-768/1024 encapsulation agrees on the shared secret with the designated sizes",
        requirements: &["SPEC-VIII-A-04", "BIND-VI-B-01"],
        run: |c| {
            let mut rng = c.rng("kem");
            for (alg, ek_len, ct_len) in [
                (KemAlgorithm::MlKem768, 1184, 1088),
                (KemAlgorithm::MlKem1024, 1568, 1568),
            ] {
                let dk = DecapsulationKey::from_seed(alg, &rng.bytes());
                let ek = dk.encapsulation_key();
                let (ct, ss) =
                    crypto::encapsulate(alg, &ek, &rng.bytes()).map_err(|e| e.to_string())?;
                ensure(
                    ek.len() == ek_len && ct.len() == ct_len,
                    format!("{} sizes", alg.label()),
                )?;
                ensure(
                    dk.decapsulate(&ct).map_err(|e| e.to_string())? == ss,
                    "shared secrets differ",
                )?;
            }
            Ok("768 and 1024".into())
        },
    },
    Check {
        id: "crypto.aead-iv-reuse",
        title: "AES-256-GCM with a 96-bit IV and 128-bit tag; a repeated (key, IV) is Fatal 0104",
        requirements: &["BIND-VI-D-01", "BIND-VI-D-03", "BIND-VI-D-I01"],
        run: |_| {
            let (key, iv) = ([3u8; 32], [4u8; 12]);
            let ct = crypto::aead::seal(&key, &iv, b"aad", b"plaintext");
            ensure(ct.len() == 9 + 16, "tag is not 128 bits")?;
            ensure(
                crypto::aead::open(&key, &iv, b"aad", &ct).ok().as_deref()
                    == Some(&b"plaintext"[..]),
                "open",
            )?;
            let mut t = IvTracker::new();
            t.check_and_record(&key, &iv).map_err(|e| e.to_string())?;
            ensure(
                code_of(t.check_and_record(&key, &iv)) == Some(ErrorCode::IvReuse),
                "IV reuse not 0104",
            )?;
            Ok("reuse → 0104".into())
        },
    },
    Check {
        id: "crypto.algorithm-negotiation",
        title: "negotiation picks the highest common security level, deterministically",
        requirements: &["SPEC-VIII-B-01", "BIND-X-I01"],
        run: |_| {
            let base = AlgorithmSupportProfile::baseline();
            let full = AlgorithmSupportProfile::full();
            let bb = crypto::negotiate(&base, &base).map_err(|e| e.to_string())?;
            let ff = crypto::negotiate(&full, &full).map_err(|e| e.to_string())?;
            let bf = crypto::negotiate(&base, &full).map_err(|e| e.to_string())?;
            ensure(
                bb.signature == SignatureAlgorithm::MlDsa65 && bb.kem == KemAlgorithm::MlKem768,
                "baseline",
            )?;
            ensure(
                ff.signature == SignatureAlgorithm::MlDsa87 && ff.kem == KemAlgorithm::MlKem1024,
                "full",
            )?;
            ensure(
                bf == crypto::negotiate(&full, &base).map_err(|e| e.to_string())?,
                "not symmetric",
            )?;
            ensure(
                bf.signature == SignatureAlgorithm::MlDsa65,
                "baseline × full",
            )?;
            Ok("baseline→65/768, full→87/1024, symmetric".into())
        },
    },
    Check {
        id: "objects.offer-signature",
        title: "an Offer's ML-DSA-65 signature covers the deterministic CBOR of every other field",
        requirements: &[
            "SPEC-II-A-03",
            "SPEC-II-A-05",
            "BIND-VII-A-06",
            "BIND-IV-C-03",
        ],
        run: |c| {
            let key = c.key(SignatureAlgorithm::MlDsa65, "offer-signer");
            let did = Did::derive(SignatureAlgorithm::MlDsa65, key.public_key().as_bytes())
                .map_err(|e| e.to_string())?;
            let id = MtpUuid::generate(
                ObjectType::Offer,
                c.now(),
                did.as_str(),
                c.rng("offer").bytes(),
            )
            .map_err(|e| e.to_string())?;
            let tdate = |s: &str| Value::Tag(0, Box::new(Value::text(s)));
            // Written from BIND VII-A and BIND VIII-B (inference quality dimensions).
            let v = Value::map([
                ("offer_id", Value::bytes(id.as_bytes().to_vec())),
                ("agent_id", Value::text(did.as_str())),
                ("value_type", Value::text("inference.text_generation")),
                (
                    "description",
                    Value::map([
                        ("human", Value::text("Product description generation")),
                        (
                            "machine",
                            Value::map([("max_tokens", Value::Integer(2048))]),
                        ),
                    ]),
                ),
                (
                    "terms_template",
                    Value::map([
                        (
                            "price",
                            Value::map([
                                ("amount", Value::Float(0.08)),
                                ("unit", Value::text("USD")),
                            ]),
                        ),
                        (
                            "delivery",
                            Value::map([("method", Value::text("synchronous"))]),
                        ),
                        (
                            "quality",
                            Value::map([
                                ("accuracy_threshold", Value::Float(0.92f32 as f64)),
                                ("max_latency_ms", Value::Integer(3000)),
                                ("output_format", Value::text("application/json")),
                                ("model_version", Value::text("m-2026-03")),
                            ]),
                        ),
                    ]),
                ),
                (
                    "validity_window",
                    Value::map([
                        ("not_before", tdate("2026-03-06T00:00:00Z")),
                        ("not_after", tdate("2026-06-06T00:00:00Z")),
                    ]),
                ),
                (
                    "signature",
                    Value::map([
                        ("algorithm", Value::text("ML-DSA-65")),
                        ("value", Value::bytes(vec![0; 3309])),
                    ]),
                ),
            ]);
            let mut offer = Offer::from_value(&v).map_err(|e| e.to_string())?;
            offer.sign(&key, None).map_err(|e| e.to_string())?;
            let pk = key.public_key();
            offer.verify_signature(&pk).map_err(|e| e.to_string())?;
            // Decoded from its bytes, it still verifies; a field changed after signing does not.
            let bytes = offer.to_cbor();
            Offer::from_cbor(&bytes)
                .map_err(|e| e.to_string())?
                .verify_signature(&pk)
                .map_err(|e| e.to_string())?;
            let mut tampered = Value::clone(&offer.to_value());
            if let Value::Map(m) = &mut tampered {
                for (k, val) in m.iter_mut() {
                    if k.as_text() == Some("value_type") {
                        *val = Value::text("inference.translation");
                    }
                }
            }
            let t = Offer::from_value(&tampered).map_err(|e| e.to_string())?;
            ensure(
                code_of(t.verify_signature(&pk)) == Some(ErrorCode::SignatureVerificationFailure),
                "tampered offer verified",
            )?;
            // JSON is converted back to deterministic CBOR before verification (BIND IV-C).
            let json =
                mtp_protocol::primitives::json::to_json(&offer).map_err(|e| e.to_string())?;
            let back: Offer =
                mtp_protocol::primitives::json::from_json(&json).map_err(|e| e.to_string())?;
            back.verify_signature(&pk).map_err(|e| e.to_string())?;
            Ok(format!(
                "offer {} bytes, tamper → 1100, JSON round trip verifies",
                bytes.len()
            ))
        },
    },
    Check {
        id: "state-machine.transitions",
        title: "exactly the 14 allowed (from, to) pairs of the profile; everything else is 0105",
        requirements: &["SPEC-IV-01", "SPEC-IV-02", "SPEC-IV-B-01"],
        run: |_| {
            let allowed: Vec<_> = TxState::ALL
                .iter()
                .flat_map(|&f| TxState::ALL.iter().map(move |&t| (f, t)))
                .filter(|&(f, t)| state_machine::is_allowed(f, t))
                .collect();
            ensure(
                allowed.len() == 14,
                format!("{} allowed pairs", allowed.len()),
            )?;
            let e = state_machine::transition(TxState::Fulfilled, &TxEvent::MandateActivated);
            ensure(
                code_of(e) == Some(ErrorCode::UndefinedTransition),
                "terminal state left",
            )?;
            let f = state_machine::transition(
                TxState::Settling,
                &TxEvent::FatalError {
                    code: ErrorCode::SettlementReversalFailed,
                },
            );
            ensure(
                f.ok() == Some(TxState::Failed),
                "Fatal does not lead to Failed",
            )?;
            Ok("14 of 100 pairs allowed".into())
        },
    },
    Check {
        id: "audit.hash-chain",
        title: "the audit trail is hash-chained and a tampered entry is pinpointed",
        requirements: &["SPEC-IV-B-03", "SPEC-X-C-01"],
        run: |c| {
            let mut trail = audit::AuditTrail::new([5; 32]);
            let agents = vec!["did:mtp:a".to_owned(), "did:mtp:b".to_owned()];
            let steps = [
                (
                    TxState::Initiated,
                    TxState::Negotiating,
                    TxEvent::NegotiationInitiated,
                ),
                (
                    TxState::Negotiating,
                    TxState::Committed,
                    TxEvent::MandateFullySigned,
                ),
                (
                    TxState::Committed,
                    TxState::Settling,
                    TxEvent::MandateActivated,
                ),
            ];
            for (i, (f, t, e)) in steps.iter().enumerate() {
                let at = c.now().add_secs(i as i64).ok_or("time")?;
                trail
                    .record_transition(*f, *t, e, &agents, at)
                    .map_err(|e| e.to_string())?;
            }
            audit::AuditTrail::verify(trail.entries()).map_err(|e| e.to_string())?;
            let mut bad = trail.entries().to_vec();
            bad[1].agents.push("did:mtp:mallory".into());
            match audit::AuditTrail::verify(&bad) {
                Err(e) if e.to_string().contains('1') => Ok("tamper at entry 1 detected".into()),
                Err(e) => Err(format!("wrong link reported: {e}")),
                Ok(()) => Err("tampered trail verified".into()),
            }
        },
    },
    Check {
        id: "wire.frame-and-envelope",
        title: "gRPC frames and NATS envelopes carry a checked SHA-256; envelopes are ML-KEM + AES-256-GCM",
        requirements: &["SPEC-VII-A-05", "SPEC-VII-A-06", "BIND-V-B-01"],
        run: |c| {
            let f = wire::Frame::new("ack", Value::map([("ok", Value::Bool(true))]))
                .map_err(|e| e.to_string())?;
            let bytes = f.encode().map_err(|e| e.to_string())?;
            ensure(wire::Frame::decode(&bytes).is_ok(), "frame refused")?;
            let signer = c.key(SignatureAlgorithm::MlDsa65, "envelope-signer");
            let mut rng = c.rng("envelope");
            let dk = DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &rng.bytes());
            let ek = dk.encapsulation_key();
            let rcpt = [wire::RecipientKey {
                kid: "k1",
                algorithm: KemAlgorithm::MlKem768,
                encapsulation_key: &ek,
            }];
            let header = wire::EnvelopeHeader {
                msg_type: "notification".into(),
                sender: "did:mtp:self".into(),
                msg_id: Value::text("m1"),
            };
            let body = Value::map([("n", Value::Integer(1))]);
            let rnd = wire::EnvelopeRandomness::draw(&mut rng, 1);
            let env = wire::seal("mtp.alg", &header, &body, &rcpt, &rnd, &signer, None)
                .map_err(|e| e.to_string())?;
            let opened = wire::open("mtp.alg", &env, &signer.public_key(), "k1", &dk)
                .map_err(|e| e.to_string())?;
            ensure(opened.body == body, "envelope body differs")?;
            Ok(format!("envelope {} bytes", env.len()))
        },
    },
];

/// Base58btc (Bitcoin alphabet), written here so the DID check does not trust the code
/// under check.
fn bs58_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u32> = Vec::new();
    for &b in bytes {
        let mut carry = b as u32;
        for d in digits.iter_mut() {
            carry += *d << 8;
            *d = carry % 58;
            carry /= 58;
        }
        while carry > 0 {
            digits.push(carry % 58);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char))
        .collect()
}

struct Outcome {
    check: &'static Check,
    result: CheckResult,
    millis: u128,
}

pub fn run(seed: u64, out: &Path, only: Option<&str>) -> ExitCode {
    let ctx = Ctx { seed };
    let mut outcomes = Vec::new();
    for check in CHECKS
        .iter()
        .filter(|c| only.is_none_or(|p| c.id.starts_with(p)))
    {
        let start = Instant::now();
        let result = std::panic::catch_unwind(|| (check.run)(&ctx))
            .unwrap_or_else(|_| Err("the check panicked (a defect in the protocol crate)".into()));
        let millis = start.elapsed().as_millis();
        let (mark, detail) = match &result {
            Ok(d) => ("PASS", d.as_str()),
            Err(d) => ("FAIL", d.as_str()),
        };
        mtp_harness::outln!(
            "{mark}  {:<32} {}  [{}]  {detail}",
            check.id,
            check.title,
            check.requirements.join(", ")
        );
        outcomes.push(Outcome {
            check,
            result,
            millis,
        });
    }
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    mtp_harness::outln!("\n{} passed, {} failed", outcomes.len() - failed, failed);
    if let Err(e) = write_reports(seed, out, &outcomes) {
        eprintln!("error: cannot write reports to {}: {e}", out.display());
        return ExitCode::from(2);
    }
    mtp_harness::outln!(
        "reports: {}/self-check.json, {}/self-check.md",
        out.display(),
        out.display()
    );
    if failed > 0 {
        mtp_harness::outln!("replay: mtp-cert self-check --seed {seed}");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn write_reports(seed: u64, out: &Path, outcomes: &[Outcome]) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let checks: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({
                "id": o.check.id,
                "title": o.check.title,
                "requirements": o.check.requirements,
                "verdict": if o.result.is_ok() { "pass" } else { "fail" },
                "detail": match &o.result { Ok(d) | Err(d) => d },
                "duration_ms": o.millis,
            })
        })
        .collect();
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    let report = serde_json::json!({
        "schema": "mtp-cert/self-check/1",
        "suite_version": env!("CARGO_PKG_VERSION"),
        "profile": mtp_protocol::profile::PROFILE_VERSION,
        "seed": seed,
        "totals": { "checks": outcomes.len(), "passed": outcomes.len() - failed, "failed": failed },
        "checks": checks,
    });
    let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    std::fs::write(out.join("self-check.json"), json + "\n")?;
    let mut md = format!(
        "# mtp-cert self-check\n\nseed {seed} · {} checks · {} passed · {} failed\n\n| verdict | check | requirements | detail |\n|---|---|---|---|\n",
        outcomes.len(),
        outcomes.len() - failed,
        failed
    );
    for o in outcomes {
        let (v, d) = match &o.result {
            Ok(d) => ("pass", d),
            Err(d) => ("**FAIL**", d),
        };
        md.push_str(&format!(
            "| {v} | `{}` {} | {} | {} |\n",
            o.check.id,
            o.check.title,
            o.check.requirements.join(", "),
            d.replace('|', "\\|")
        ));
    }
    std::fs::write(out.join("self-check.md"), md)
}
