//! Authority Delegation Certificates, delegation chains and Status List 2021 revocation
//! (SPEC-III-A-2-01..06, SPEC-III-A-3-01..04, BIND-III-B-01..05; PROFILE G-33, G-55).

use std::collections::BTreeMap;
use std::io::Write;

use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SignatureAlgorithm, SigningKey, sha256,
};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::Did;
use mtp_protocol::identity::credential::{
    self, Credential, CredentialError, DocumentResolver, KeyResolver, ProofOptions,
};
use mtp_protocol::identity::delegation::*;
use mtp_protocol::identity::document::{AgentDocumentParams, DidDocument, SyncEndpoint};
use mtp_protocol::identity::status_list::*;
use mtp_protocol::primitives::common::{Number, PriceSpec, PriceUnit};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::verification::Decimal;
use serde_json::{Value, json};

const DAY: i64 = 86_400;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(1_780_000_000 + secs).expect("in range")
}

/// Issuance time of every fixture credential.
fn t0() -> Timestamp {
    ts(0)
}

/// Default transaction start.
fn start() -> Timestamp {
    ts(3600)
}

struct Party {
    key: SigningKey,
    doc: DidDocument,
    did: Did,
}

impl Party {
    fn vm(&self) -> String {
        self.did.url("key-1")
    }
}

fn party(seed: u8) -> Party {
    let key = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[seed; 32]);
    let kem = DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[seed; 64]);
    let doc = DidDocument::new_agent(&AgentDocumentParams {
        signing_keys: vec![(key.algorithm(), key.public_key().as_bytes().to_vec())],
        kem_keys: vec![(KemAlgorithm::MlKem768, kem.encapsulation_key())],
        sync: SyncEndpoint {
            host: "agent.example".into(),
            port: 7443,
            tls_certificate_sha256: [seed; 32],
        },
        nats_host: "nats.example".into(),
        nats_port: 4222,
        nats_cluster: "mtp-test".into(),
        delegation_chain: vec![],
        algorithms: AlgorithmSupportProfile::full(),
    })
    .expect("document");
    let did = doc.did().expect("did");
    Party { key, doc, did }
}

/// Principal = parties[0]; Agents parties[1..]. One revocation list per issuer.
struct World {
    parties: Vec<Party>,
    lists: Vec<StatusListIssuer>,
}

impl World {
    fn new(n: usize) -> World {
        let parties: Vec<Party> = (0..n).map(|i| party(10 + i as u8)).collect();
        let lists = parties
            .iter()
            .enumerate()
            .map(|(i, p)| {
                StatusListIssuer::new(
                    &format!("https://status.example/lists/{i}"),
                    p.did.as_str(),
                    StatusListFormat::StatusList2021,
                    StatusPurpose::Revocation,
                    MIN_LIST_BITS,
                    p.key.clone(),
                    &p.vm(),
                )
                .expect("list")
            })
            .collect();
        World { parties, lists }
    }

    fn resolver(&self) -> DocumentResolver {
        self.parties.iter().map(|p| p.doc.clone()).collect()
    }

    /// Publishes every list at `t0` (once) and returns the current lists by URL.
    fn status(&mut self) -> BTreeMap<String, Credential> {
        let mut out = BTreeMap::new();
        for l in &mut self.lists {
            let c = match l.current() {
                Some(c) => c.clone(),
                None => l.publish(t0()).expect("publish"),
            };
            out.insert(l.url().to_owned(), c);
        }
        out
    }

    fn principal(&self) -> &str {
        self.parties[0].did.as_str()
    }

    fn agent(&self, depth: usize) -> &str {
        self.parties[depth].did.as_str()
    }

    /// The unsigned ADC issued by party `i` to party `i + 1`.
    fn adc(&mut self, i: usize) -> AuthorityDelegation {
        let entry = self.lists[i].allocate().expect("index");
        AuthorityDelegation {
            id: Some(format!("urn:uuid:adc-{i}")),
            issuer: self.parties[i].did.to_string(),
            principal: Some(self.principal().to_owned()),
            subject: self.parties[i + 1].did.clone(),
            scope: vec![
                Classifier::parse("services.consulting").expect("classifier"),
                Classifier::parse("compute.gpu").expect("classifier"),
            ],
            max_transaction_value: MaxTransactionValue::new(
                Decimal::parse("500").expect("decimal"),
                "USD",
            )
            .expect("value"),
            max_transaction_value_commitment: None,
            permitted_jurisdictions: vec!["US".into(), "DE".into()],
            permitted_payment_rails: vec!["ach".into(), "sepa_credit".into()],
            permitted_counterparty_classes: Some(vec!["verified_business".into()]),
            constraints: json!({"maxDailyTransactions": 10})
                .as_object()
                .cloned()
                .expect("object"),
            valid_from: ts(-DAY),
            valid_until: ts(365 * DAY),
            status: vec![entry],
        }
    }

    fn sign(&self, i: usize, adc: &AuthorityDelegation) -> Credential {
        sign_with(&self.parties[i], adc)
    }

    /// A chain of `depth` links; `tweak(i, adc)` edits link i before signing.
    fn chain(
        &mut self,
        depth: usize,
        tweak: impl Fn(usize, &mut AuthorityDelegation),
    ) -> Vec<Credential> {
        (0..depth)
            .map(|i| {
                let mut a = self.adc(i);
                tweak(i, &mut a);
                self.sign(i, &a)
            })
            .collect()
    }
}

fn sign_with(p: &Party, adc: &AuthorityDelegation) -> Credential {
    let unsigned = adc.to_unsigned_credential().expect("unsigned ADC");
    credential::sign(
        &unsigned,
        &p.key,
        &ProofOptions {
            verification_method: p.vm(),
            created: t0(),
        },
    )
    .expect("sign")
}

fn verify(
    chain: &[Credential],
    w: &World,
    status: &BTreeMap<String, Credential>,
    depth: usize,
) -> Result<EffectiveAuthority, ChainError> {
    verify_at(chain, w, status, depth, start(), None)
}

fn verify_at(
    chain: &[Credential],
    w: &World,
    status: &BTreeMap<String, Credential>,
    depth: usize,
    at: Timestamp,
    committed_at: Option<Timestamp>,
) -> Result<EffectiveAuthority, ChainError> {
    let keys = w.resolver();
    verify_chain(
        chain,
        &ChainContext {
            principal: w.principal(),
            agent: w.agent(depth),
            at,
            committed_at,
            keys: &keys,
            status,
        },
    )
}

fn fails(r: Result<EffectiveAuthority, ChainError>, index: usize, code: ErrorCode) -> ChainError {
    let e = r.expect_err("chain must be refused");
    assert_eq!((e.index, e.code()), (index, code), "{e}");
    e
}

// ---------------------------------------------------------------------------------------
// Valid chains
// ---------------------------------------------------------------------------------------

#[test]
fn valid_chains_of_depth_1_2_and_5() {
    for depth in [1, 2, 5] {
        let mut w = World::new(depth + 1);
        let chain = w.chain(depth, |i, a| {
            // Each sub-delegation narrows something.
            if i > 0 {
                a.max_transaction_value =
                    MaxTransactionValue::new(Decimal::from_int(500 - 50 * i as i128), "USD")
                        .expect("value");
                a.valid_until = ts(365 * DAY - i as i64 * DAY);
            }
            if i >= 2 {
                a.scope = vec![Classifier::parse("services.consulting.legal").expect("c")];
                a.permitted_jurisdictions = vec!["US".into()];
            }
        });
        let status = w.status();
        let started = std::time::Instant::now();
        let eff = verify(&chain, &w, &status, depth).expect("valid chain");
        let elapsed = started.elapsed();
        if depth == 5 {
            println!("TIMING verify_chain depth 5: {elapsed:?}");
        }
        assert_eq!(eff.links.len(), depth);
        assert_eq!(eff.agent.as_str(), w.agent(depth));
        assert_eq!(eff.constraints.len(), depth);
        assert!(eff.warnings.is_empty());
        let max = 500 - 50 * (depth as i128 - 1);
        assert_eq!(eff.max_transaction_value.minor_units, max * 100);

        // Each link also reads back through the typed view.
        let again = AuthorityDelegation::from_credential(&chain[0]).expect("typed view");
        assert_eq!(again.issuer, w.principal());
    }
}

#[test]
fn enforcement_on_the_effective_authority() {
    let mut w = World::new(2);
    let chain = w.chain(1, |_, _| {});
    let status = w.status();
    let eff = verify(&chain, &w, &status, 1).expect("valid");
    let c = |s: &str| Classifier::parse(s).expect("classifier");
    assert!(eff.check_value_type(&c("services.consulting.tax")).is_ok());
    assert!(eff.check_value_type(&c("compute.gpu")).is_ok());
    let e = eff.check_value_type(&c("compute.cpu")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    let d = |s: &str| Decimal::parse(s).expect("decimal");
    assert!(eff.check_amount(d("500"), "USD").is_ok());
    assert!(eff.check_amount(d("500.00"), "USD").is_ok());
    // Unit precision with round-half-even (PROFILE G-03): 500.005 → 500.00, 500.015 → 500.02.
    assert!(eff.check_amount(d("500.005"), "USD").is_ok());
    assert!(eff.check_amount(d("500.015"), "USD").is_err());
    assert!(eff.check_amount(d("500.01"), "USD").is_err());
    assert!(matches!(
        eff.check_amount(d("1"), "EUR"),
        Err(EnforcementError::Currency { .. })
    ));
    let price = PriceSpec::new(
        Number::Float(499.99),
        PriceUnit::parse("USD").expect("unit"),
    );
    assert!(eff.check_price(&price).is_ok());
    assert!(eff.check_jurisdiction("US").is_ok());
    assert!(eff.check_jurisdiction("US-CA").is_ok());
    assert!(eff.check_jurisdiction("FR").is_err());
    assert!(eff.check_rail("ach").is_ok());
    assert!(eff.check_rail("card").is_err());
    assert!(eff.check_counterparty_class("verified_business").is_ok());
    assert!(eff.check_counterparty_class("anonymous").is_err());
}

// ---------------------------------------------------------------------------------------
// Subset violations (SPEC-III-A-2-04)
// ---------------------------------------------------------------------------------------

fn subset_failure(
    tweak: impl Fn(usize, &mut AuthorityDelegation),
    dimension: Dimension,
) -> Vec<SubsetViolation> {
    let mut w = World::new(3);
    let chain = w.chain(2, tweak);
    let status = w.status();
    let e = fails(
        verify(&chain, &w, &status, 2),
        1,
        ErrorCode::AuthorityAttestationInvalid,
    );
    let DelegationError::Subset(v) = e.error else {
        panic!("expected a subset violation, got {e}")
    };
    assert!(v.iter().all(|x| x.dimension() == dimension), "{v:?}");
    v
}

#[test]
fn widened_scope_is_refused() {
    let v = subset_failure(
        |i, a| {
            if i == 1 {
                a.scope = vec![Classifier::parse("services").expect("c")];
            }
        },
        Dimension::Scope,
    );
    assert_eq!(
        v,
        vec![SubsetViolation::Scope {
            classifier: "services".into()
        }]
    );
}

#[test]
fn raised_value_is_refused() {
    subset_failure(
        |i, a| {
            if i == 1 {
                a.max_transaction_value =
                    MaxTransactionValue::new(Decimal::parse("500.01").expect("d"), "USD")
                        .expect("v");
            }
        },
        Dimension::MaxTransactionValue,
    );
    // Another currency never compares (no FX).
    let v = subset_failure(
        |i, a| {
            if i == 1 {
                a.max_transaction_value =
                    MaxTransactionValue::new(Decimal::from_int(1), "EUR").expect("v");
            }
        },
        Dimension::MaxTransactionValue,
    );
    assert!(matches!(v[0], SubsetViolation::Currency { .. }));
}

#[test]
fn added_jurisdiction_is_refused() {
    let v = subset_failure(
        |i, a| {
            if i == 1 {
                a.permitted_jurisdictions.push("FR".into());
            }
        },
        Dimension::Jurisdictions,
    );
    assert_eq!(v, vec![SubsetViolation::Jurisdiction { code: "FR".into() }]);
}

#[test]
fn added_rail_is_refused() {
    subset_failure(
        |i, a| {
            if i == 1 {
                a.permitted_payment_rails.push("card".into());
            }
        },
        Dimension::PaymentRails,
    );
}

#[test]
fn counterparty_classes_and_window_are_subset_checked() {
    subset_failure(
        |i, a| {
            if i == 1 {
                a.permitted_counterparty_classes = None;
            }
        },
        Dimension::CounterpartyClasses,
    );
    subset_failure(
        |i, a| {
            if i == 1 {
                a.permitted_counterparty_classes = Some(vec!["consumer".into()]);
            }
        },
        Dimension::CounterpartyClasses,
    );
    subset_failure(
        |i, a| {
            if i == 1 {
                a.valid_until = ts(366 * DAY);
            }
        },
        Dimension::ValidityWindow,
    );
}

// ---------------------------------------------------------------------------------------
// Validity, revocation, linkage
// ---------------------------------------------------------------------------------------

#[test]
fn expired_link_is_scheduled_revocation() {
    let mut w = World::new(3);
    let chain = w.chain(2, |i, a| {
        if i == 1 {
            a.valid_until = ts(60);
        }
    });
    let status = w.status();
    let e = fails(
        verify(&chain, &w, &status, 2),
        1,
        ErrorCode::CredentialRevoked,
    );
    assert!(matches!(
        e.error,
        DelegationError::Status(StatusListError::Expired { .. })
    ));
    assert_eq!(e.requirement(), Some("SPEC-III-A-3-04"));
    // Still valid at a start before expiry (within the 30 s skew too).
    assert!(verify_at(&chain, &w, &status, 2, ts(80), None).is_ok());
    // Not yet valid → 1101.
    let mut w = World::new(2);
    let chain = w.chain(1, |_, a| a.valid_from = ts(2 * DAY));
    let status = w.status();
    let e = fails(
        verify(&chain, &w, &status, 1),
        0,
        ErrorCode::AuthorityAttestationInvalid,
    );
    assert!(matches!(
        e.error,
        DelegationError::Status(StatusListError::NotYetValid { .. })
    ));
}

#[test]
fn approaching_expiry_warns_1300() {
    let mut w = World::new(2);
    // 10 % of a 10-day window = 1 day; start is 1 h, expiry 12 h after issuance.
    let chain = w.chain(1, |_, a| {
        a.valid_from = ts(-10 * DAY + 12 * 3600);
        a.valid_until = ts(12 * 3600);
    });
    let status = w.status();
    let eff = verify(&chain, &w, &status, 1).expect("valid");
    assert_eq!(eff.warnings.len(), 1);
    assert_eq!(
        eff.warnings[0].code(),
        ErrorCode::CredentialApproachingExpiry
    );
}

#[test]
fn revoked_link_refused_or_disputed() {
    let mut w = World::new(3);
    let chain = w.chain(2, |_, _| {});
    let _ = w.status(); // publish the initial lists at t0
    let index = AuthorityDelegation::from_credential(&chain[1])
        .expect("adc")
        .status[0]
        .index;
    // Agent 1 revokes link 1 at t0 + 2 h.
    let revoked_at = ts(7200);
    w.lists[1].revoke(index, revoked_at).expect("revoke");
    let status = w.status();

    // Transaction started after the revocation: refused, 1102 (SPEC-III-A-3-02).
    let e = fails(
        verify_at(&chain, &w, &status, 2, ts(7300), None),
        1,
        ErrorCode::CredentialRevoked,
    );
    assert!(matches!(
        e.error,
        DelegationError::Revoked {
            disposition: RevocationDisposition::RefuseRevokedBeforeInitiation { .. },
            ..
        }
    ));
    assert!(!e.is_dispute());
    // Started before, not yet committed: rejected before commit (→ Failed).
    let e = fails(
        verify_at(&chain, &w, &status, 2, start(), None),
        1,
        ErrorCode::CredentialRevoked,
    );
    assert!(matches!(
        e.error,
        DelegationError::Revoked {
            disposition: RevocationDisposition::RejectBeforeCommit { .. },
            ..
        }
    ));
    // Committed before the revocation: the dispute path (PROFILE G-55).
    let e = fails(
        verify_at(&chain, &w, &status, 2, start(), Some(ts(3700))),
        1,
        ErrorCode::CredentialRevoked,
    );
    assert!(e.is_dispute());
    assert_eq!(e.requirement(), Some("SPEC-III-A-3-03"));
    // The other links are unaffected: the depth-1 prefix still verifies.
    assert!(verify_at(&chain[..1], &w, &status, 1, ts(7300), None).is_ok());
}

#[test]
fn wrong_issuer_and_broken_linkage_are_refused() {
    // Link 1 issued by an outsider (signed by its own key).
    let mut w = World::new(4);
    let mut a = w.adc(1);
    a.issuer = w.parties[3].did.to_string();
    let forged = sign_with(&w.parties[3], &a);
    let link0 = {
        let a0 = w.adc(0);
        w.sign(0, &a0)
    };
    let status = w.status();
    let e = fails(
        verify(&[link0.clone(), forged], &w, &status, 2),
        1,
        ErrorCode::AuthorityAttestationInvalid,
    );
    assert!(matches!(e.error, DelegationError::IssuerMismatch { .. }));
    // Link 0 not issued by the Principal.
    let keys = w.resolver();
    let e = verify_chain(
        std::slice::from_ref(&link0),
        &ChainContext {
            principal: w.parties[3].did.as_str(),
            agent: w.agent(1),
            at: start(),
            committed_at: None,
            keys: &keys,
            status: &status,
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    // Last subject is not the requesting Agent.
    fails(
        verify(std::slice::from_ref(&link0), &w, &status, 2),
        0,
        ErrorCode::AuthorityAttestationInvalid,
    );
    // Empty chain.
    fails(
        verify(&[], &w, &status, 1),
        0,
        ErrorCode::AuthorityAttestationInvalid,
    );
    // A proof by a key of another DID than the issuer.
    let mut w = World::new(3);
    let a0 = w.adc(0);
    let unsigned = a0.to_unsigned_credential().expect("unsigned");
    let e = credential::sign(
        &unsigned,
        &w.parties[2].key,
        &ProofOptions {
            verification_method: w.parties[2].vm(),
            created: t0(),
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
}

// ---------------------------------------------------------------------------------------
// Signature failures (1100)
// ---------------------------------------------------------------------------------------

#[test]
fn claim_tampered_after_signing() {
    let mut w = World::new(2);
    let mut chain = w.chain(1, |_, _| {});
    let status = w.status();
    chain[0].as_map_mut()["credentialSubject"]["maxTransactionValue"]["amount"] = json!(5000);
    let e = fails(
        verify(&chain, &w, &status, 1),
        0,
        ErrorCode::SignatureVerificationFailure,
    );
    assert!(matches!(
        e.error,
        DelegationError::Credential(CredentialError::Signature(_))
    ));
}

#[test]
fn wrong_cryptosuite() {
    let mut w = World::new(2);
    let chain = w.chain(1, |_, _| {});
    let status = w.status();
    for suite in ["eddsa-rdfc-2022", "mtp-slhdsa-2026"] {
        let mut c = chain.clone();
        c[0].as_map_mut()["proof"]["cryptosuite"] = json!(suite);
        fails(
            verify(&c, &w, &status, 1),
            0,
            ErrorCode::SignatureVerificationFailure,
        );
    }
}

#[test]
fn ml_dsa_44_key_is_refused() {
    let mut w = World::new(2);
    let chain = w.chain(1, |_, _| {});
    let status = w.status();
    // The Principal's document lists an ML-DSA-44 key (multicodec 0x1210) as #key-1.
    let mut raw = vec![0x90, 0x24];
    raw.extend(std::iter::repeat_n(7u8, 1312));
    let mldsa44 = format!("z{}", bs58::encode(raw).into_string());
    let mut doc = w.parties[0].doc.clone();
    for vm in doc.verification_method.iter_mut().flatten() {
        if vm.id.ends_with("#key-1") {
            vm.public_key_multibase = Some(mldsa44.clone());
        }
    }
    let keys: DocumentResolver = [doc, w.parties[1].doc.clone()].into_iter().collect();
    let e = keys
        .resolve_assertion_key(&w.parties[0].vm())
        .expect_err("ML-DSA-44 refused");
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
    let e = verify_chain(
        &chain,
        &ChainContext {
            principal: w.principal(),
            agent: w.agent(1),
            at: start(),
            committed_at: None,
            keys: &keys,
            status: &status,
        },
    )
    .unwrap_err();
    assert_eq!(
        (e.index, e.code()),
        (0, ErrorCode::SignatureVerificationFailure)
    );
    assert!(matches!(
        e.error,
        DelegationError::Credential(CredentialError::Key { .. })
    ));
}

#[test]
fn signature_over_non_canonical_form_is_refused() {
    let mut w = World::new(2);
    let adc = w.adc(0);
    let status = w.status();
    let p = &w.parties[0];
    let unsigned = adc.to_unsigned_credential().expect("unsigned");
    let mut proof = serde_json::Map::new();
    proof.insert("type".into(), json!("DataIntegrityProof"));
    proof.insert("cryptosuite".into(), json!("mtp-mldsa-2026"));
    proof.insert("created".into(), json!(t0().to_rfc3339()));
    proof.insert("verificationMethod".into(), json!(p.vm()));
    proof.insert("proofPurpose".into(), json!("assertionMethod"));
    // hashData over the JSON texts instead of the RDFC-1.0 N-Quads.
    let config = credential::proof_config(&unsigned, &proof);
    let mut data = sha256(Value::Object(config).to_string().as_bytes()).to_vec();
    data.extend_from_slice(&sha256(unsigned.to_json().as_bytes()));
    proof.insert(
        "proofValue".into(),
        json!(credential::encode_proof_value(&p.key.sign(&data))),
    );
    let mut c = unsigned.clone();
    c.as_map_mut().insert("proof".into(), Value::Object(proof));
    let e = fails(
        verify(&[c], &w, &status, 1),
        0,
        ErrorCode::SignatureVerificationFailure,
    );
    assert!(matches!(
        e.error,
        DelegationError::Credential(CredentialError::Signature(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Claims (BIND-III-B-01..05)
// ---------------------------------------------------------------------------------------

#[test]
fn missing_or_invalid_claims_are_1101() {
    let mut w = World::new(2);
    let base = w.adc(0).to_unsigned_credential().expect("unsigned");
    let refuse = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = base.clone();
        edit(c.as_map_mut());
        let e = AuthorityDelegation::from_credential(&c).expect_err("refused");
        assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid, "{e}");
        e
    };
    let subject = |m: &mut serde_json::Map<String, Value>| -> serde_json::Map<String, Value> {
        m["credentialSubject"]
            .as_object()
            .cloned()
            .expect("subject")
    };
    for claim in [
        "scope",
        "maxTransactionValue",
        "permittedJurisdictions",
        "permittedPaymentRails",
        "constraints",
        "id",
    ] {
        refuse(&|m| {
            let mut s = subject(m);
            s.remove(claim);
            m.insert("credentialSubject".into(), Value::Object(s));
        });
    }
    // A selectively disclosable ADC must show its counterparty restriction (it could have
    // been withheld, and absent reads as unrestricted).
    refuse(&|m| {
        let mut s = subject(m);
        s.remove("permittedCounterpartyClasses");
        s.insert("_sd".into(), json!(["AAAA"]));
        m.insert("credentialSubject".into(), Value::Object(s));
    });
    refuse(&|m| {
        m.remove("validUntil");
    });
    refuse(&|m| {
        m.remove("validFrom");
    });
    refuse(&|m| {
        m.remove("credentialStatus");
    });
    refuse(&|m| {
        m["credentialStatus"]["statusPurpose"] = json!("suspension");
    });
    refuse(&|m| {
        m["credentialStatus"]["statusListIndex"] = json!(5);
    });
    let e = refuse(&|m| {
        m["type"] = json!(["VerifiableCredential"]);
    });
    assert_eq!(e, DelegationError::NotDelegation);
    refuse(&|m| {
        m["credentialSubject"]["permittedJurisdictions"] = json!(["us"]);
    });
    refuse(&|m| {
        m["credentialSubject"]["permittedJurisdictions"] = json!(["USA"]);
    });
    refuse(&|m| {
        m["credentialSubject"]["scope"] = json!(["toys"]);
    });
    refuse(&|m| {
        m["credentialSubject"]["maxTransactionValue"] = json!({"amount": "500", "currency": "USD"});
    });
    refuse(&|m| {
        m["credentialSubject"]["maxTransactionValue"] = json!({"amount": -1, "currency": "USD"});
    });
    refuse(&|m| {
        m["credentialSubject"]["maxTransactionValue"] =
            json!({"amount": 1, "currency": "RECIPROCAL"});
    });
    refuse(&|m| {
        m["credentialSubject"]["id"] = json!("did:example:not-an-agent");
    });
    refuse(&|m| {
        m["credentialSubject"]["constraints"] = json!([]);
    });
    refuse(&|m| {
        m["credentialSubject"]["maxTransactionValueCommitment"] = json!("AAAA");
    });
    // The optional commitment: base64url of 32 bytes.
    let mut c = base.clone();
    c.as_map_mut()["credentialSubject"]["maxTransactionValueCommitment"] =
        json!("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE");
    let adc = AuthorityDelegation::from_credential(&c).expect("commitment accepted");
    assert_eq!(adc.max_transaction_value_commitment, Some([1; 32]));
    // The typed view round-trips.
    let back = AuthorityDelegation::from_credential(&base).expect("typed");
    assert_eq!(back.to_unsigned_credential().expect("rebuild"), base);
}

#[test]
fn delegation_links_of_a_request() {
    use mtp_protocol::identity::AnyDid;
    use mtp_protocol::primitives::request::DelegationLink;
    let mut w = World::new(3);
    let chain = w.chain(2, |_, _| {});
    let status = w.status();
    let links: Vec<DelegationLink> = chain
        .iter()
        .map(|c| DelegationLink {
            issuer: AnyDid::parse(c.issuer().expect("issuer")).expect("did"),
            subject: AnyDid::parse(c.subject_id().expect("subject")).expect("did"),
            credential: c.to_json(),
            unknown: vec![],
        })
        .collect();
    let keys = w.resolver();
    let ctx = ChainContext {
        principal: w.principal(),
        agent: w.agent(2),
        at: start(),
        committed_at: None,
        keys: &keys,
        status: &status,
    };
    assert!(verify_delegation_links(&links, &ctx).is_ok());
    let mut bad = links.clone();
    bad[1].subject = bad[0].issuer.clone();
    assert_eq!(
        verify_delegation_links(&bad, &ctx).unwrap_err().code(),
        ErrorCode::AuthorityAttestationInvalid
    );
}

// ---------------------------------------------------------------------------------------
// Status List 2021 (SPEC-III-A-3; PROFILE G-33, G-55)
// ---------------------------------------------------------------------------------------

#[test]
fn bitstring_round_trip_and_determinism() {
    let mut b = Bitstring::new(0).expect("list");
    assert_eq!(b.len(), MIN_LIST_BITS);
    assert_eq!(b.as_bytes().len(), 16 * 1024);
    b.set(0, true).expect("set");
    b.set(9, true).expect("set");
    b.set(131_071, true).expect("set");
    // Bit 0 is the most significant bit of byte 0.
    assert_eq!(&b.as_bytes()[..2], &[0x80, 0x40]);
    assert_eq!(b.as_bytes()[16 * 1024 - 1], 0x01);
    assert!(b.set(131_072, true).is_err());
    assert_eq!(b.get(131_072), None);

    let enc = b.encode();
    assert!(!enc.contains('='));
    assert_eq!(enc, b.clone().encode(), "deterministic");
    // Fixed gzip header: magic, deflate, no flags, mtime 0, OS 255.
    let gz = b.gzip();
    assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
    assert_eq!(gz[9], 255);
    let back = Bitstring::decode(&enc).expect("decode");
    assert_eq!(back, b);
    // Padding is accepted.
    let padded = format!("{enc}{}", "=".repeat((4 - enc.len() % 4) % 4));
    assert_eq!(Bitstring::decode(&padded).expect("padded"), b);
    assert_eq!(
        Bitstring::decode_multibase(&b.encode_multibase()).expect("multibase"),
        b
    );
    // Bad input.
    assert!(Bitstring::decode("not base64!").is_err());
    assert!(Bitstring::decode("AAAA").is_err());
    // Too short (< 16 KiB).
    let short = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&[0u8; 1024]).expect("write");
        e.finish().expect("gzip")
    };
    use base64::Engine as _;
    let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(short);
    assert_eq!(
        Bitstring::decode(&short).unwrap_err().code(),
        ErrorCode::AuthorityAttestationInvalid
    );
    // A zip bomb (8 MiB of zeros, ~8 KiB compressed) is refused without inflating it all.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..8 {
            e.write_all(&chunk).expect("write");
        }
        e.finish().expect("gzip")
    };
    let bomb = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bomb);
    assert!(matches!(
        Bitstring::decode(&bomb),
        Err(StatusListError::Encoding { .. })
    ));
}

#[test]
fn status_entries_parse() {
    let e = StatusEntry::from_json(&json!({
        "id": "https://status.example/lists/0#94567",
        "type": "StatusList2021Entry",
        "statusPurpose": "revocation",
        "statusListIndex": "94567",
        "statusListCredential": "https://status.example/lists/0"
    }))
    .expect("entry");
    assert_eq!(e.index, 94567);
    assert_eq!(e.format, StatusListFormat::StatusList2021);
    assert_eq!(StatusEntry::from_json(&e.to_json()).expect("again"), e);
    let b = StatusEntry::from_json(&json!({
        "type": "BitstringStatusListEntry",
        "statusPurpose": "suspension",
        "statusListIndex": "0",
        "statusListCredential": "https://status.example/lists/1"
    }))
    .expect("bitstring entry");
    assert_eq!(b.format, StatusListFormat::Bitstring);
    for bad in [
        json!({"type": "RevocationList2020Status", "statusPurpose": "revocation", "statusListIndex": "1", "statusListCredential": "https://x"}),
        json!({"type": "StatusList2021Entry", "statusPurpose": "message", "statusListIndex": "1", "statusListCredential": "https://x"}),
        json!({"type": "StatusList2021Entry", "statusPurpose": "revocation", "statusListIndex": "01", "statusListCredential": "https://x"}),
        json!({"type": "StatusList2021Entry", "statusPurpose": "revocation", "statusListIndex": "-1", "statusListCredential": "https://x"}),
        json!({"type": "StatusList2021Entry", "statusPurpose": "revocation", "statusListIndex": "1", "statusListCredential": "not a url"}),
        json!({"type": "BitstringStatusListEntry", "statusPurpose": "revocation", "statusListIndex": "1", "statusListCredential": "https://x", "statusSize": 2}),
    ] {
        assert_eq!(
            StatusEntry::from_json(&bad).unwrap_err().code(),
            ErrorCode::AuthorityAttestationInvalid
        );
    }
}

#[test]
fn revoke_then_check_for_transactions() {
    let mut w = World::new(2);
    let adc = w.adc(0);
    let cred = w.sign(0, &adc);
    let keys = w.resolver();
    let list0 = w.lists[0].publish(t0()).expect("publish");
    assert_eq!(
        check(&cred, &list0, &keys, start()).expect("active"),
        StatusOutcome::Active
    );
    // The list is reproducible: same list, same time → same signed bytes.
    assert_eq!(w.lists[0].publish(t0()).expect("again"), list0);

    let index = adc.status[0].index;
    let revoked_at = ts(7200);
    let list1 = w.lists[0].revoke(index, revoked_at).expect("revoke");
    assert_eq!(w.lists[0].changed_at(index), Some(revoked_at));
    let outcome = check(&cred, &list1, &keys, ts(7300)).expect("checked");
    assert_eq!(outcome.revoked_at(), Some(revoked_at), "validFrom (G-55)");
    assert_eq!(
        outcome.into_result().unwrap_err().code(),
        ErrorCode::CredentialRevoked
    );
    // Transaction initiated after the revocation: refused with 1102.
    let d = outcome.disposition(&TransactionTimes {
        initiated_at: ts(7300),
        committed_at: None,
    });
    assert!(d.refuses());
    assert_eq!(d.code(), Some(ErrorCode::CredentialRevoked));
    // Committed before the revocation: dispute path.
    let d = outcome.disposition(&TransactionTimes {
        initiated_at: ts(3600),
        committed_at: Some(ts(3700)),
    });
    assert!(matches!(d, RevocationDisposition::Dispute { .. }));
    assert!(!d.refuses());
    // Initiated before, committed after: rejected before commit.
    let d = outcome.disposition(&TransactionTimes {
        initiated_at: ts(3600),
        committed_at: Some(ts(7500)),
    });
    assert!(matches!(
        d,
        RevocationDisposition::RejectBeforeCommit { .. }
    ));
    // Revoking again changes nothing.
    assert_eq!(w.lists[0].revoke(index, ts(9000)).expect("again"), list1);

    // A list signed by someone else, a forged list, and an index beyond the list.
    let mut forged = list1.clone();
    forged.as_map_mut()["credentialSubject"]["encodedList"] =
        json!(Bitstring::new(0).expect("list").encode());
    assert_eq!(
        check(&cred, &forged, &keys, ts(7300)).unwrap_err().code(),
        ErrorCode::SignatureVerificationFailure
    );
    let mut other = StatusListIssuer::new(
        "https://status.example/lists/0",
        w.parties[1].did.as_str(),
        StatusListFormat::StatusList2021,
        StatusPurpose::Revocation,
        0,
        w.parties[1].key.clone(),
        &w.parties[1].vm(),
    )
    .expect("issuer");
    let foreign = other.publish(t0()).expect("publish");
    assert!(matches!(
        check(&cred, &foreign, &keys, start()),
        Err(StatusListError::ListIssuerMismatch { .. })
    ));
    let mut far = adc.clone();
    far.status[0].index = 200_000;
    let far = w.sign(0, &far);
    assert!(matches!(
        check(&far, &list1, &keys, start()),
        Err(StatusListError::IndexOutOfRange { .. })
    ));
}

#[test]
fn bitstring_status_list_alternative() {
    let p = party(40);
    let keys: DocumentResolver = [p.doc.clone()].into_iter().collect();
    let mut issuer = StatusListIssuer::new(
        "https://status.example/bsl/1",
        p.did.as_str(),
        StatusListFormat::Bitstring,
        StatusPurpose::Suspension,
        0,
        p.key.clone(),
        &p.vm(),
    )
    .expect("issuer");
    let entry = issuer.allocate().expect("entry");
    let list = issuer.revoke(entry.index, ts(10)).expect("suspend");
    let encoded = list.as_map()["credentialSubject"]["encodedList"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(encoded.starts_with('u'));
    assert!(list.has_type("BitstringStatusListCredential"));
    assert_eq!(entry.format, StatusListFormat::Bitstring);
    let outcome = check_entry(&entry, p.did.as_str(), &list, &keys, ts(20)).expect("checked");
    assert_eq!(outcome.revoked_at(), Some(ts(10)));
    let lifted = issuer.reinstate(entry.index, ts(30)).expect("lift");
    assert_eq!(
        check_entry(&entry, p.did.as_str(), &lifted, &keys, ts(40)).expect("checked"),
        StatusOutcome::Active
    );
}

#[test]
fn validity_and_cache() {
    let w = ValidityWindow {
        valid_from: Some(ts(0)),
        valid_until: Some(ts(100 * DAY)),
    };
    assert_eq!(check_validity(&w, ts(DAY)).expect("valid"), None);
    // min(7 days, 10 % of 100 days) = 7 days before expiry.
    let warn = check_validity(&w, ts(94 * DAY))
        .expect("valid")
        .expect("warning");
    assert_eq!(warn.code(), ErrorCode::CredentialApproachingExpiry);
    assert_eq!(
        check_validity(&w, ts(100 * DAY + 31)).unwrap_err().code(),
        ErrorCode::CredentialRevoked
    );
    assert!(check_validity(&w, ts(100 * DAY + 30)).is_ok(), "skew");
    assert_eq!(
        check_validity(&w, ts(-31)).unwrap_err().code(),
        ErrorCode::AuthorityAttestationInvalid
    );

    // Cache TTL is bounded by the revocation latency (SPEC-III-A-3-01).
    let mut cache = StatusCache::new(3600);
    assert_eq!(cache.ttl_s(), 60);
    let url = "https://status.example/lists/0";
    assert!(matches!(cache.decide(url, ts(0)), CacheDecision::Fetch));
    let mut wd = World::new(1);
    let list = wd.status().remove(url).expect("list");
    cache.store(url, list.clone(), ts(0));
    assert_eq!(cache.decide(url, ts(59)), CacheDecision::Fresh(&list));
    assert!(matches!(cache.decide(url, ts(60)), CacheDecision::Fetch));
    assert!(matches!(cache.decide(url, ts(-1)), CacheDecision::Fetch));
    assert_eq!(cache.observe_revocation(url, 7, ts(120)), ts(120));
    assert_eq!(cache.observe_revocation(url, 7, ts(180)), ts(120));
    assert_eq!(cache.observe_revocation(url, 7, ts(90)), ts(90));
    assert_eq!(cache.first_revocation(url, 7), Some(ts(90)));
}

#[test]
fn chain_verifies_with_rotated_issuer_keys() {
    use mtp_protocol::identity::resolution::{DidHistory, DidUpdate};
    use mtp_protocol::primitives::common::SingleSigned;
    // The Principal rotates its key after issuing: the ADC still verifies against the
    // version history (BIND-II-B-05).
    let mut w = World::new(2);
    let chain = w.chain(1, |_, _| {});
    let status = w.status();
    let principal = &w.parties[0];
    let mut u1 = DidUpdate::genesis(&principal.doc, ts(-2 * DAY)).expect("genesis");
    u1.sign(&principal.key, Some(principal.vm())).expect("sign");
    let rotated_key = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[99; 32]);
    let rotated_doc = {
        let tmp = party(99);
        let json = tmp.doc.to_json().replace(
            tmp.did.method_specific_id(),
            principal.did.method_specific_id(),
        );
        DidDocument::from_json(&json).expect("doc")
    };
    let mut u2 = DidUpdate::successor(&u1, &rotated_doc, ts(DAY)).expect("u2");
    u2.sign(&principal.key, Some(principal.vm())).expect("sign");
    let history = DidHistory::from_updates(&[u1, u2]).expect("history");
    assert_eq!(
        history.assertion_key_at(&principal.vm(), 2),
        Some(rotated_key.public_key())
    );
    struct Keys<'a>(&'a DidHistory, DocumentResolver);
    impl KeyResolver for Keys<'_> {
        fn resolve_assertion_key(
            &self,
            vm: &str,
        ) -> Result<mtp_protocol::crypto::PublicKey, CredentialError> {
            if credential::did_of(vm) == self.0.did().as_str() {
                // The version in force when the proof was created (t0 → version 1).
                let v = self.0.version_at_time(t0()).unwrap_or(1);
                self.0.keys(Some(v)).resolve_assertion_key(vm)
            } else {
                self.1.resolve_assertion_key(vm)
            }
        }
    }
    let keys = Keys(&history, [w.parties[1].doc.clone()].into_iter().collect());
    let r = verify_chain(
        &chain,
        &ChainContext {
            principal: w.principal(),
            agent: w.agent(1),
            at: start(),
            committed_at: None,
            keys: &keys,
            status: &status,
        },
    );
    assert!(r.is_ok(), "{r:?}");
    // Against the latest document alone, the old proof does not verify.
    let latest: DocumentResolver = [history.latest().clone(), w.parties[1].doc.clone()]
        .into_iter()
        .collect();
    let e = verify_chain(
        &chain,
        &ChainContext {
            principal: w.principal(),
            agent: w.agent(1),
            at: start(),
            committed_at: None,
            keys: &latest,
            status: &status,
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
}

// ---------------------------------------------------------------------------------------
// Hidden limit with a zk_range proof (PROFILE G-36)
// ---------------------------------------------------------------------------------------

#[test]
fn hidden_limit_on_the_last_link_needs_a_range_proof_and_respects_the_ceiling() {
    use mtp_protocol::identity::authority_proof::{self as ap, MaxValueCommitment, MinorAmount};
    use mtp_protocol::uuid::{MtpUuid, ObjectType};

    let secret = [42u8; 32];
    let hidden_max = MinorAmount::new(30_000, "USD"); // 300.00 USD, never revealed
    let mut w = World::new(3);
    let chain = w.chain(2, |i, a| {
        if i == 1 {
            let id = a.id.clone().expect("id");
            let c = MaxValueCommitment::commit(&hidden_max, &secret, &id).expect("commit");
            a.max_transaction_value = MaxTransactionValue::hidden("USD").expect("hidden");
            a.max_transaction_value_commitment = Some(c.point);
        }
    });
    // The signed credential carries no amount.
    let subject = chain[1].as_map()["credentialSubject"].clone();
    assert!(subject["maxTransactionValue"].get("amount").is_none());
    let status = w.status();
    let eff = verify(&chain, &w, &status, 2).expect("valid chain with a hidden last limit");
    assert!(eff.max_transaction_value.hidden);
    assert_eq!(eff.ceiling.as_ref().map(|c| c.minor_units), Some(50_000));

    let price =
        |amount: i128| PriceSpec::new(Number::Int(amount), PriceUnit::parse("USD").expect("unit"));
    // Without a proof the amount cannot be accepted.
    assert_eq!(
        eff.check_price(&price(100)).expect_err("hidden").code(),
        ErrorCode::AuthorityAttestationInvalid
    );
    let request_id = MtpUuid::new(ObjectType::Request, 1, [1; 6], [2; 17]);
    let counterparty = w.agent(1).to_owned();
    let proof_value = chain[1]
        .proof()
        .expect("proof")
        .expect("present")
        .proof_value;
    let ctx = ap::ProofContext::new(&request_id, &counterparty, &proof_value);
    let id = chain[1].id().expect("id").to_owned();
    let proof = ap::prove(&hidden_max, &secret, &id, &price(250), &ctx).expect("prove");
    eff.check_amount_proven(&price(250), &proof, &ctx)
        .expect("proven amount within the hidden limit");
    // A proof for another amount does not carry over.
    assert!(eff.check_amount_proven(&price(200), &proof, &ctx).is_err());
    // Above the hidden limit no proof can be produced.
    assert!(ap::prove(&hidden_max, &secret, &id, &price(301), &ctx).is_err());

    // A hidden limit above the visible ceiling does not lift the ceiling.
    let mut w2 = World::new(3);
    let big = MinorAmount::new(90_000, "USD");
    let chain2 = w2.chain(2, |i, a| {
        if i == 1 {
            let id = a.id.clone().expect("id");
            let c = MaxValueCommitment::commit(&big, &secret, &id).expect("commit");
            a.max_transaction_value = MaxTransactionValue::hidden("USD").expect("hidden");
            a.max_transaction_value_commitment = Some(c.point);
        }
    });
    let status2 = w2.status();
    let eff2 = verify(&chain2, &w2, &status2, 2).expect("valid chain");
    let pv2 = chain2[1]
        .proof()
        .expect("proof")
        .expect("present")
        .proof_value;
    let ctx2 = ap::ProofContext::new(&request_id, &counterparty, &pv2);
    let id2 = chain2[1].id().expect("id").to_owned();
    let p2 = ap::prove(&big, &secret, &id2, &price(600), &ctx2).expect("prove");
    assert!(
        eff2.check_amount_proven(&price(600), &p2, &ctx2).is_err(),
        "600 is above the principal's visible 500"
    );

    // A hidden limit on an intermediate link is refused (its child cannot be checked).
    let mut w3 = World::new(4);
    let chain3 = w3.chain(3, |i, a| {
        if i == 1 {
            let id = a.id.clone().expect("id");
            let c = MaxValueCommitment::commit(&hidden_max, &secret, &id).expect("commit");
            a.max_transaction_value = MaxTransactionValue::hidden("USD").expect("hidden");
            a.max_transaction_value_commitment = Some(c.point);
        }
    });
    let status3 = w3.status();
    fails(
        verify(&chain3, &w3, &status3, 3),
        2,
        ErrorCode::AuthorityAttestationInvalid,
    );
}
