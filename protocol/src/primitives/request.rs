//! Request (SPEC II-B, BIND VII-B): what an Agent needs, with its Authority Attestation.

use super::common::*;
use super::json::{Hint, Kind};
use super::offer::{Description, read_items};
use crate::cbor::Value;
use crate::errors::ErrorCode;
use crate::identity::{AnyDid, Did};
use crate::taxonomy::Classifier;
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

const MANDATORY: &str = "SPEC-II-B-01";
const OPTIONAL: &str = "SPEC-II-B-02";
const ATTESTATION: &str = "SPEC-II-B-03";
const CHAIN: &str = "BIND-VII-B-02";
const PROOF: &str = "BIND-VII-B-03";

/// The Constraints Envelope; an absent constraint is unconstrained (BIND-VII-B-I01).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constraints {
    pub max_latency_ms: Option<u64>,
    /// `float32` in 0.0..=1.0 (PROFILE G-13, G-43).
    pub accuracy_threshold: Option<f32>,
    pub budget_ceiling: Option<PriceSpec>,
    pub delivery_deadline: Option<Timestamp>,
    pub jurisdiction: Option<Vec<String>>,
    pub custom: Option<Map>,
    pub unknown: Map,
}

impl Constraints {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let max_latency_ms =
            r.field_opt("max_latency_ms", &mut e, |v, p| read_uint(v, p, SCHEMA_REQ));
        let accuracy_threshold = r.field_opt("accuracy_threshold", &mut e, |v, p| {
            let f = read_float32(v, p, SCHEMA_REQ)?;
            if (0.0..=1.0).contains(&f) {
                Ok(f)
            } else {
                Err(ValidationError::out_of_range(
                    p,
                    SCHEMA_REQ,
                    format!("{f} outside 0.0..=1.0 (PROFILE G-43)"),
                ))
            }
        });
        let budget_ceiling = r.field_opt_all("budget_ceiling", &mut e, |v, p| {
            PriceSpec::from_value(v, p, OPTIONAL)
        });
        let delivery_deadline = r.field_opt("delivery_deadline", &mut e, |v, p| {
            read_tdate(v, p, SCHEMA_REQ)
        });
        let jurisdiction = r.field_opt_all("jurisdiction", &mut e, |v, p| {
            read_jurisdictions(v, p, SCHEMA_REQ)
        });
        let custom = r.field_opt("custom", &mut e, |v, p| read_open_map(v, p, SCHEMA_REQ));
        let unknown = r.unknown();
        e.finish()?;
        Ok(Constraints {
            max_latency_ms,
            accuracy_threshold,
            budget_ceiling,
            delivery_deadline,
            jurisdiction,
            custom,
            unknown,
        })
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put_opt("max_latency_ms", self.max_latency_ms.map(Value::from))
            .put_opt(
                "accuracy_threshold",
                self.accuracy_threshold.map(float32_value),
            )
            .put_opt(
                "budget_ceiling",
                self.budget_ceiling.as_ref().map(PriceSpec::to_value),
            )
            .put_opt("delivery_deadline", self.delivery_deadline.map(tdate_value))
            .put_opt(
                "jurisdiction",
                self.jurisdiction.as_deref().map(text_array_value),
            )
            .put_opt("custom", self.custom.clone().map(Value::Map))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `delegation-link = { issuer: did-string, subject: did-string, credential: tstr }`
/// (PROFILE G-04): `credential` is the compact JSON-LD MTPAuthorityDelegation VC.
#[derive(Clone, Debug, PartialEq)]
pub struct DelegationLink {
    pub issuer: AnyDid,
    pub subject: AnyDid,
    pub credential: String,
    pub unknown: Map,
}

impl DelegationLink {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let issuer = r.field("issuer", CHAIN, &mut e, |v, p| read_any_did(v, p, CHAIN));
        let subject = r.field("subject", CHAIN, &mut e, |v, p| read_any_did(v, p, CHAIN));
        let credential = r.field("credential", CHAIN, &mut e, |v, p| {
            read_text(v, p, CHAIN).map(str::to_owned)
        });
        let unknown = r.unknown();
        match (issuer, subject, credential) {
            (Some(issuer), Some(subject), Some(credential)) if e.is_empty() => Ok(DelegationLink {
                issuer,
                subject,
                credential,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("issuer", Value::text(self.issuer.as_str()))
            .put("subject", Value::text(self.subject.as_str()))
            .put("credential", Value::text(self.credential.as_str()))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `authority-proof` (PROFILE G-04, G-35, G-36; BIND-VII-B-03).
#[derive(Clone, Debug, PartialEq)]
pub enum AuthorityProof {
    /// `{ type: "vc_presentation", presentation: tstr }`.
    VcPresentation { presentation: String, unknown: Map },
    /// `{ type: "zk_range", commitment: bstr .size 32, proof: bstr, amount: price-spec }`.
    ZkRange {
        commitment: [u8; 32],
        proof: Vec<u8>,
        amount: PriceSpec,
        unknown: Map,
    },
}

impl AuthorityProof {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let ty = r.field("type", PROOF, &mut e, |v, p| read_text(v, p, PROOF));
        let out = match ty {
            Some("vc_presentation") => {
                let presentation = r.field("presentation", PROOF, &mut e, |v, p| {
                    read_text(v, p, PROOF).map(str::to_owned)
                });
                let unknown = r.unknown();
                presentation.map(|presentation| AuthorityProof::VcPresentation {
                    presentation,
                    unknown,
                })
            }
            Some("zk_range") => {
                let commitment = r.field("commitment", PROOF, &mut e, |v, p| {
                    let b = read_bytes(v, p, PROOF)?;
                    <[u8; 32]>::try_from(b).map_err(|_| {
                        ValidationError::invalid(
                            p,
                            PROOF,
                            format!("commitment is {} bytes, expected 32", b.len()),
                        )
                    })
                });
                let proof = r.field("proof", PROOF, &mut e, |v, p| {
                    read_bytes(v, p, PROOF).map(<[u8]>::to_vec)
                });
                let amount = r.field_all("amount", PROOF, &mut e, |v, p| {
                    PriceSpec::from_value(v, p, PROOF)
                });
                let unknown = r.unknown();
                match (commitment, proof, amount) {
                    (Some(commitment), Some(proof), Some(amount)) => {
                        Some(AuthorityProof::ZkRange {
                            commitment,
                            proof,
                            amount,
                            unknown,
                        })
                    }
                    _ => None,
                }
            }
            Some(other) => {
                e.push(ValidationError::invalid(
                    join_path(path, "type"),
                    PROOF,
                    format!("proof type {other:?} is neither vc_presentation nor zk_range (PROFILE G-04)"),
                ));
                None
            }
            None => None,
        };
        match out {
            Some(p) if e.is_empty() => Ok(p),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            AuthorityProof::VcPresentation {
                presentation,
                unknown,
            } => MapBuilder::new()
                .put("type", Value::text("vc_presentation"))
                .put("presentation", Value::text(presentation.as_str()))
                .extend_unknown(unknown)
                .build(),
            AuthorityProof::ZkRange {
                commitment,
                proof,
                amount,
                unknown,
            } => MapBuilder::new()
                .put("type", Value::text("zk_range"))
                .put("commitment", Value::bytes(commitment.to_vec()))
                .put("proof", Value::bytes(proof.clone()))
                .put("amount", amount.to_value())
                .extend_unknown(unknown)
                .build(),
        }
    }
}

/// `authority_attestation` (SPEC-II-B-03, BIND-VII-B-02/03).
///
/// Structural chain rules (PROFILE G-04): at least one link; link 0 issued by
/// `principal_did`; each link's subject issues the next; the last subject is the Request's
/// `agent_id` (checked by [`Request::from_value`]). Cryptographic verification of the links
/// is the identity layer's.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorityAttestation {
    pub principal_did: AnyDid,
    pub scope: Vec<Classifier>,
    pub max_tx_value: PriceSpec,
    pub delegation_chain: Vec<DelegationLink>,
    pub proof: AuthorityProof,
    pub unknown: Map,
}

impl AuthorityAttestation {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let principal_did = r.field("principal_did", ATTESTATION, &mut e, |v, p| {
            read_any_did(v, p, ATTESTATION)
        });
        let scope = r.field_all("scope", ATTESTATION, &mut e, |v, p| {
            let items = read_array(v, p, ATTESTATION).map_err(|e| vec![e])?;
            let mut e = Errors::new();
            let out: Vec<Classifier> = items
                .iter()
                .enumerate()
                .filter_map(|(i, c)| e.take(read_classifier(c, &index_path(p, i), "BIND-VII-A-03")))
                .collect();
            e.finish().map(|_| out)
        });
        let max_tx_value = r.field_all("max_tx_value", ATTESTATION, &mut e, |v, p| {
            PriceSpec::from_value(v, p, ATTESTATION)
        });
        let delegation_chain = r.field_all("delegation_chain", CHAIN, &mut e, |v, p| {
            read_items(v, p, CHAIN, DelegationLink::from_value)
        });
        let proof = r.field_all("proof", PROOF, &mut e, AuthorityProof::from_value);
        let unknown = r.unknown();
        if let (Some(principal), Some(chain)) = (&principal_did, &delegation_chain) {
            let cp = join_path(path, "delegation_chain");
            match chain.first() {
                None => e.push(
                    ValidationError::out_of_range(
                        cp.clone(),
                        CHAIN,
                        "empty delegation chain (PROFILE G-04)",
                    )
                    .with_code(ErrorCode::AuthorityAttestationInvalid),
                ),
                Some(first) if first.issuer.as_str() != principal.as_str() => e.push(
                    ValidationError::invalid(
                        format!("{cp}[0].issuer"),
                        CHAIN,
                        "the first link must be issued by principal_did (PROFILE G-04)",
                    )
                    .with_code(ErrorCode::AuthorityAttestationInvalid),
                ),
                Some(_) => {}
            }
            for (i, w) in chain.windows(2).enumerate() {
                if let [a, b] = w
                    && a.subject.as_str() != b.issuer.as_str()
                {
                    e.push(ValidationError::invalid(
                        format!("{cp}[{}].issuer", i + 1),
                        CHAIN,
                        "each link must be issued by the previous link's subject (PROFILE G-04)",
                    )
                    .with_code(ErrorCode::AuthorityAttestationInvalid));
                }
            }
        }
        match (principal_did, scope, max_tx_value, delegation_chain, proof) {
            (
                Some(principal_did),
                Some(scope),
                Some(max_tx_value),
                Some(delegation_chain),
                Some(proof),
            ) if e.is_empty() => Ok(AuthorityAttestation {
                principal_did,
                scope,
                max_tx_value,
                delegation_chain,
                proof,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("principal_did", Value::text(self.principal_did.as_str()))
            .put(
                "scope",
                Value::Array(self.scope.iter().map(|c| Value::text(c.as_str())).collect()),
            )
            .put("max_tx_value", self.max_tx_value.to_value())
            .put(
                "delegation_chain",
                Value::Array(
                    self.delegation_chain
                        .iter()
                        .map(DelegationLink::to_value)
                        .collect(),
                ),
            )
            .put("proof", self.proof.to_value())
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `fallback-spec = { ? value_type, ? constraints: { * tstr => any } }` (PROFILE G-24).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FallbackSpec {
    pub value_type: Option<Classifier>,
    pub constraints: Option<Map>,
    pub unknown: Map,
}

impl FallbackSpec {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let value_type = r.field_opt("value_type", &mut e, |v, p| {
            read_classifier(v, p, "BIND-VII-A-03")
        });
        let constraints = r.field_opt("constraints", &mut e, |v, p| read_open_map(v, p, OPTIONAL));
        let unknown = r.unknown();
        e.finish()?;
        Ok(FallbackSpec {
            value_type,
            constraints,
            unknown,
        })
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put_opt(
                "value_type",
                self.value_type.as_ref().map(|c| Value::text(c.as_str())),
            )
            .put_opt("constraints", self.constraints.clone().map(Value::Map))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `mtp-request` (BIND VII-B).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub request_id: MtpUuid,
    pub agent_id: Did,
    pub value_type: Classifier,
    pub description: Description,
    pub constraints: Constraints,
    pub authority_attestation: AuthorityAttestation,
    pub fallback_preferences: Option<Vec<FallbackSpec>>,
    /// Mandatory on the wire (SPEC-II-B-01); `None` only while building.
    pub signature: Option<Signature>,
    pub unknown: Map,
}

const REQUEST_HINTS: &[Hint] = &[
    Hint {
        path: "request_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "constraints.accuracy_threshold",
        kind: Kind::Float32,
    },
    Hint {
        path: "constraints.budget_ceiling.amount",
        kind: Kind::Number,
    },
    Hint {
        path: "constraints.delivery_deadline",
        kind: Kind::Tdate,
    },
    Hint {
        path: "authority_attestation.max_tx_value.amount",
        kind: Kind::Number,
    },
    Hint {
        path: "authority_attestation.proof.commitment",
        kind: Kind::Bytes,
    },
    Hint {
        path: "authority_attestation.proof.proof",
        kind: Kind::Bytes,
    },
    Hint {
        path: "authority_attestation.proof.amount.amount",
        kind: Kind::Number,
    },
    Hint {
        path: "signature.value",
        kind: Kind::Bytes,
    },
];

impl CborObject for Request {
    const NAME: &'static str = "mtp-request";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("request_id", uuid_value(&self.request_id))
            .put("agent_id", Value::text(self.agent_id.as_str()))
            .put("value_type", Value::text(self.value_type.as_str()))
            .put("description", self.description.to_value())
            .put("constraints", self.constraints.to_value())
            .put(
                "authority_attestation",
                self.authority_attestation.to_value(),
            )
            .put_opt(
                "fallback_preferences",
                self.fallback_preferences
                    .as_ref()
                    .map(|fs| Value::Array(fs.iter().map(FallbackSpec::to_value).collect())),
            )
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        check_encodable(v)?;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let request_id = r.field("request_id", MANDATORY, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Request, "BIND-VII-B-01")
        });
        let agent_id = r.field("agent_id", MANDATORY, &mut e, |v, p| {
            read_did(v, p, "BIND-VII-A-02")
        });
        let value_type = r.field("value_type", MANDATORY, &mut e, |v, p| {
            read_classifier(v, p, "BIND-VII-A-03")
        });
        let description = r.field_all("description", MANDATORY, &mut e, |v, p| {
            Description::from_value(v, p, MANDATORY)
        });
        let constraints = r.field_all("constraints", MANDATORY, &mut e, Constraints::from_value);
        let authority_attestation = r.field_all(
            "authority_attestation",
            ATTESTATION,
            &mut e,
            AuthorityAttestation::from_value,
        );
        let fallback_preferences = r.field_opt_all("fallback_preferences", &mut e, |v, p| {
            read_items(v, p, OPTIONAL, FallbackSpec::from_value)
        });
        let signature = read_signature_field(&mut r, MANDATORY, &mut e);
        let unknown = r.unknown();
        if let (Some(agent), Some(att)) = (&agent_id, &authority_attestation)
            && let Some(last) = att.delegation_chain.last()
            && last.subject.as_str() != agent.as_str()
        {
            e.push(ValidationError::invalid(
                format!(
                    "authority_attestation.delegation_chain[{}].subject",
                    att.delegation_chain.len() - 1
                ),
                CHAIN,
                "the last link's subject must be the requesting agent_id (PROFILE G-04)",
            ));
        }
        let (
            Some(request_id),
            Some(agent_id),
            Some(value_type),
            Some(description),
            Some(constraints),
            Some(authority_attestation),
            Some(signature),
        ) = (
            request_id,
            agent_id,
            value_type,
            description,
            constraints,
            authority_attestation,
            signature,
        )
        else {
            return Err(e.into_object_error());
        };
        if !e.is_empty() {
            return Err(e.into_object_error());
        }
        Ok(Request {
            request_id,
            agent_id,
            value_type,
            description,
            constraints,
            authority_attestation,
            fallback_preferences,
            signature: Some(signature),
            unknown,
        })
    }

    fn json_hints() -> &'static [Hint] {
        REQUEST_HINTS
    }
}

crate::impl_single_signed!(Request);
