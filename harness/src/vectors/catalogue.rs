//! Every protocol object of `protocol/wire/mtp.cddl`, built once from the shared world:
//! one transaction (Offer → Request → negotiation → Terms → Mandate → settlement →
//! delivery → Receipt → attribution) plus discovery, identity, error, audit and transport
//! objects. The `cbor` family writes them; `signatures`, `envelope` and `attribution`
//! reuse them.
//!
//! Objects are built as CBOR maps, signed per PROFILE G-02 (signing input = det-CBOR of
//! the map without `signature` / `signatures` / `sig`) and re-validated with the protocol
//! crate's typed parser where one exists ([`reencode`]).

use std::sync::OnceLock;

use mtp_protocol::attribution::{AttributionRecord, coalition_key};
use mtp_protocol::audit::AuditTrail;
use mtp_protocol::cbor::{self, Value};
use mtp_protocol::commitment::Mandate;
use mtp_protocol::crypto::{AlgorithmSupportProfile, SeededRng, SigningKey, sha256};
use mtp_protocol::discovery::{
    CapabilityManifest, IndexQuery, IndexQueryResponse, OfferRevocation,
};
use mtp_protocol::error_record::{MtpErrorRecord, Notification};
use mtp_protocol::identity::DidDocument;
use mtp_protocol::identity::authority_proof::{self as ap, MinorAmount, ProofContext};
use mtp_protocol::identity::resolution::{
    DidHistory, DidResolutionRequest, DidResolutionResponse, DidUpdate,
};
use mtp_protocol::negotiation::{
    Acceptance, NegotiationInitiation, Proposal, Rejection, Termination,
};
use mtp_protocol::primitives::common::{CborObject, Number, PriceSpec, PriceUnit};
use mtp_protocol::primitives::{ObjectError, Offer, Receipt, Request, Terms};
use mtp_protocol::state_machine::{TxEvent, TxState};
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::verification::DisputeInitiationRecord;
use mtp_protocol::wire::{self, EnvelopeHeader, EnvelopeRandomness, Frame, RecipientKey};
use mtp_reference_agent::layers::settlement::SettlementNotice;
use mtp_reference_agent::layers::verification::{Delivery, DeliveryRequest};

use super::world::{
    DAY, HIDDEN_LIMIT_UNITS, Party, World, delegation_link, f32v, map, price, sign_plain,
    signature_value, signing_input, tdate, texts, ts, with_entry, world,
};
use super::{At, MASTER, VectorError, ensure, input_error};

/// How an object is signed.
#[derive(Clone)]
pub enum Signing {
    /// Not a signed object.
    None,
    /// `signature: mtp-signature` by `#key-n` of `party`.
    Single { party: &'static Party, key: usize },
    /// `signatures: [* agent-signature]` in participants order.
    Multi {
        signers: Vec<(&'static Party, usize)>,
    },
    /// A signature under another key name (`sig` of the NATS envelope) or a carrier of a
    /// signature made over another object (`mandate-signature`): not re-signable.
    Other,
}

/// One protocol object.
#[derive(Clone)]
pub struct Entry {
    /// Vector name (`cbor/<name>`).
    pub name: &'static str,
    /// CDDL rule.
    pub rule: &'static str,
    /// Test-control codec type, when there is one.
    pub codec: Option<&'static str>,
    /// The complete object.
    pub value: Value,
    pub signing: Signing,
    pub requirements: Vec<&'static str>,
    pub description: String,
}

impl Entry {
    /// The signature field (`signature`, `signatures`), if the object is re-signable.
    pub fn signature_field(&self) -> Option<&'static str> {
        match self.signing {
            Signing::Single { .. } => Some("signature"),
            Signing::Multi { .. } => Some("signatures"),
            _ => None,
        }
    }

    /// The object without its signature field.
    pub fn unsigned(&self) -> Value {
        match self.signature_field() {
            Some(f) => with_entry(&self.value, f, None),
            None => self.value.clone(),
        }
    }
}

/// The catalogue and the ids of the transaction.
pub struct Catalogue {
    pub entries: Vec<Entry>,
    pub offer_id: MtpUuid,
    pub request_id: MtpUuid,
    pub terms_id: MtpUuid,
    pub mandate_id: MtpUuid,
    pub receipt_id: MtpUuid,
    /// The deterministic CBOR of the fully signed Terms (the Mandate's `terms`).
    pub terms_bytes: Vec<u8>,
}

impl Catalogue {
    pub fn get(&self, name: &str) -> Result<&Entry, VectorError> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| input_error("cbor", format!("no catalogue object {name}")))
    }
}

static CATALOGUE: OnceLock<Result<Catalogue, String>> = OnceLock::new();

/// The catalogue (built once per process).
pub fn catalogue() -> Result<&'static Catalogue, VectorError> {
    CATALOGUE
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| input_error("cbor", e.clone()))
}

// ---------------------------------------------------------------------------------------
// Typed parsing
// ---------------------------------------------------------------------------------------

fn typed<T: CborObject>(bytes: &[u8]) -> Result<Vec<u8>, ObjectError> {
    let obj = T::from_cbor(bytes)?;
    obj.try_to_cbor().map_err(|e| {
        ObjectError::Schema(vec![mtp_protocol::primitives::ValidationError::invalid(
            "",
            "BIND-VII-01",
            e.to_string(),
        )])
    })
}

/// Strict typed decoding of `bytes` as the object of CDDL `rule` and its re-encoding;
/// `None` when the protocol crate (or the reference agent) has no typed parser for it.
pub fn reencode(rule: &str, bytes: &[u8]) -> Option<Result<Vec<u8>, ObjectError>> {
    Some(match rule {
        "mtp-offer" => typed::<Offer>(bytes),
        "mtp-request" => typed::<Request>(bytes),
        "mtp-terms" => typed::<Terms>(bytes),
        "mtp-receipt" => typed::<Receipt>(bytes),
        "mtp-mandate" => typed::<Mandate>(bytes),
        "mtp-manifest" => typed::<CapabilityManifest>(bytes),
        "attribution-record" => typed::<AttributionRecord>(bytes),
        "mtp-error" => typed::<MtpErrorRecord>(bytes),
        "mtp-notification" => typed::<Notification>(bytes),
        "offer-revocation" => typed::<OfferRevocation>(bytes),
        "dispute-initiation-record" => typed::<DisputeInitiationRecord>(bytes),
        "index-query" => typed::<IndexQuery>(bytes),
        "index-response" => typed::<IndexQueryResponse>(bytes),
        "nim" => typed::<NegotiationInitiation>(bytes),
        "proposal" => typed::<Proposal>(bytes),
        "acceptance" => typed::<Acceptance>(bytes),
        "rejection" => typed::<Rejection>(bytes),
        "termination" => typed::<Termination>(bytes),
        "did-update" => typed::<DidUpdate>(bytes),
        "did-resolution-request" => typed::<DidResolutionRequest>(bytes),
        "did-resolution-response" => typed::<DidResolutionResponse>(bytes),
        "settlement-notice" => typed::<SettlementNotice>(bytes),
        "delivery" => typed::<Delivery>(bytes),
        "delivery-request" => typed::<DeliveryRequest>(bytes),
        _ => return None,
    })
}

/// The CDDL rule of a codec type (`protocol/wire/control.cddl` `codec-type`, plus the
/// reference agent's extra types).
pub fn codec_rule(codec: &str) -> Option<&'static str> {
    Some(match codec {
        "offer" => "mtp-offer",
        "request" => "mtp-request",
        "terms" => "mtp-terms",
        "receipt" => "mtp-receipt",
        "mandate" => "mtp-mandate",
        "manifest" => "mtp-manifest",
        "attribution_record" => "attribution-record",
        "mtp_error" => "mtp-error",
        "notification" => "mtp-notification",
        "offer_revocation" => "offer-revocation",
        "dispute_initiation_record" => "dispute-initiation-record",
        "index_query" => "index-query",
        "index_response" => "index-response",
        _ => return None,
    })
}

/// Codec types listed in `protocol/wire/control.cddl` (`codec-type`); the others the
/// harness uses are extensions an IUT may not know.
pub const CONTRACT_CODEC_TYPES: &[&str] = &[
    "offer",
    "request",
    "terms",
    "receipt",
    "mandate",
    "manifest",
    "attribution_record",
    "mtp_error",
    "notification",
    "mtp_uuid",
];

// ---------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------

/// Signs `unsigned` with `#key-n` of `party` (`signature`).
pub fn sign_single(
    vector: &str,
    unsigned: &Value,
    party: &Party,
    n: usize,
) -> Result<Value, VectorError> {
    sign_plain(
        vector,
        unsigned,
        "signature",
        party.key(vector, n)?,
        &party.kid(n),
    )
}

/// Adds one agent-signature per signer, in order (`signatures`, PROFILE G-02).
pub fn sign_multi(
    vector: &str,
    unsigned: &Value,
    signers: &[(&Party, usize)],
) -> Result<Value, VectorError> {
    let input = signing_input(vector, unsigned, "signatures")?;
    let mut sigs = Vec::new();
    for (p, n) in signers {
        sigs.push(agent_signature(
            p.did_str(),
            p.key(vector, *n)?,
            &p.kid(*n),
            &input,
        ));
    }
    Ok(with_entry(unsigned, "signatures", Some(Value::Array(sigs))))
}

/// One `agent-signature` over `input`.
pub fn agent_signature(agent: &str, key: &SigningKey, kid: &str, input: &[u8]) -> Value {
    map(vec![
        ("agent", Value::text(agent)),
        ("algorithm", Value::text(key.algorithm().label())),
        ("key_id", Value::text(kid)),
        ("value", Value::Bytes(key.sign(input))),
    ])
}

// ---------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------

struct Builder {
    entries: Vec<Entry>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &'static str,
        rule: &'static str,
        codec: Option<&'static str>,
        value: Value,
        signing: Signing,
        requirements: &[&'static str],
        description: &str,
    ) -> Result<Value, VectorError> {
        let vector = format!("cbor/{name}");
        let bytes = cbor::to_vec(&value).at(&vector)?;
        if let Some(r) = reencode(rule, &bytes) {
            let re = r.at(&vector)?;
            ensure(&vector, re == bytes, || {
                "the typed object re-encodes differently".into()
            })?;
        }
        self.entries.push(Entry {
            name,
            rule,
            codec,
            value: value.clone(),
            signing,
            requirements: requirements.to_vec(),
            description: description.to_owned(),
        });
        Ok(value)
    }
}

/// Quality dimensions per category (PROFILE G-43), with the optional extras of BIND
/// VIII-A-02 / VIII-B-02 where given.
pub fn quality(category: &str) -> Value {
    let n = |i: i64| Value::Integer(i128::from(i));
    match category {
        "physical_goods" => map(vec![
            ("condition", Value::text("new")),
            (
                "dimensions",
                map(vec![
                    ("length", n(30)),
                    ("width", n(20)),
                    ("height", n(10)),
                    ("unit", Value::text("cm")),
                ]),
            ),
            (
                "weight",
                map(vec![
                    ("value", Value::Float(1.5)),
                    ("unit", Value::text("kg")),
                ]),
            ),
            (
                "return_policy",
                map(vec![
                    ("return_window", Value::text("P30D")),
                    ("restocking_fee_percent", n(15)),
                ]),
            ),
            ("shipping_class", Value::text("ground")),
            ("material_composition", Value::text("aluminium 6061")),
            ("country_of_origin", Value::text("DE")),
            ("warranty_duration", Value::text("P2Y")),
            ("certifications", texts(&["CE", "RoHS"])),
        ]),
        "digital_goods" => map(vec![
            ("file_format", Value::text("application/pdf")),
            ("file_size_bytes", n(1_048_576)),
            ("license_type", Value::text("single_user")),
            ("drm_status", Value::Bool(false)),
        ]),
        "services" => map(vec![
            ("service_type", Value::text("translation")),
            ("delivery_timeline", Value::text("P5D")),
            ("revision_count", n(2)),
            (
                "acceptance_criteria",
                texts(&["glossary terms applied", "no untranslated segments"]),
            ),
        ]),
        "compute" => map(vec![
            ("compute_type", Value::text("gpu")),
            ("compute_units", n(64)),
            ("duration", Value::text("PT4H")),
            ("availability_guarantee", Value::Float(0.99)),
            ("memory_gb", n(80)),
        ]),
        "information" => map(vec![
            (
                "accuracy_attestation_method",
                Value::text("third_party_audit"),
            ),
            ("freshness_guarantee", Value::text("PT1H")),
            ("format", Value::text("application/json")),
        ]),
        "communication" => map(vec![
            ("channel_type", Value::text("sms")),
            ("reliability_guarantee", Value::Float(0.999)),
            ("max_latency_ms", n(2000)),
            ("encryption_required", Value::Bool(true)),
        ]),
        "logistics" => map(vec![
            ("origin", Value::text("DEHAM")),
            ("destination", Value::text("USNYC")),
            ("service_level", Value::text("express")),
            ("insurance_value", price(n(25_000), "EUR")),
            ("tracking_method", Value::text("gps")),
        ]),
        "compliance" => map(vec![
            ("regulation_reference", Value::text("EU 2016/679")),
            ("jurisdiction", Value::text("DE")),
            (
                "assessment_methodology",
                Value::text("ISO/IEC 27001 gap analysis"),
            ),
            ("certification_validity_period", Value::text("P1Y")),
        ]),
        // inference
        _ => map(vec![
            ("accuracy_threshold", f32v(0.92)),
            ("max_latency_ms", n(3000)),
            ("output_format", Value::text("text/plain")),
            ("model_version", Value::text("mtp-llm-70b-2026.02")),
            ("max_tokens", n(4096)),
            ("temperature", Value::Float(0.2)),
            ("top_p", Value::Float(0.9)),
            ("stop_sequences", texts(&["\n\n"])),
        ]),
    }
}

/// The value type and delivery of each category's Offer.
pub fn category_offer_parts(category: &str) -> (&'static str, Value) {
    let sync = || {
        map(vec![
            ("method", Value::text("synchronous")),
            ("max_latency_ms", Value::Integer(3000)),
        ])
    };
    match category {
        "physical_goods" => (
            "physical_goods.electronics",
            map(vec![
                ("method", Value::text("physical_shipment")),
                ("earliest", Value::text("P2D")),
                ("latest", tdate(14 * DAY)),
            ]),
        ),
        "digital_goods" => (
            "digital_goods.documents",
            map(vec![("method", Value::text("digital_download"))]),
        ),
        "services" => (
            "services.translation",
            map(vec![
                ("method", Value::text("asynchronous")),
                ("latest", Value::text("P5D")),
            ]),
        ),
        "compute" => ("compute.gpu", sync()),
        "information" => ("information.market_data", sync()),
        "communication" => ("communication.sms", sync()),
        "logistics" => (
            "logistics.freight",
            map(vec![("method", Value::text("physical_shipment"))]),
        ),
        "compliance" => (
            "compliance.gdpr",
            map(vec![("method", Value::text("asynchronous"))]),
        ),
        _ => ("inference.text_generation", sync()),
    }
}

/// An unsigned Offer of `category` by the provider.
pub fn offer_unsigned(w: &World, id: &MtpUuid, category: &str, full: bool) -> Value {
    let (value_type, delivery) = category_offer_parts(category);
    let amount = if category == "inference" {
        Value::Float(0.08)
    } else {
        Value::Integer(120)
    };
    let mut m = vec![
        ("offer_id", id.to_value()),
        ("agent_id", w.provider.did_value()),
        ("value_type", Value::text(value_type)),
        (
            "description",
            map(vec![
                (
                    "human",
                    Value::text(format!("{category} offer of the vector world")),
                ),
                ("machine", map(vec![("category", Value::text(category))])),
            ]),
        ),
        (
            "terms_template",
            map(vec![
                ("price", price(amount, "USD")),
                ("delivery", delivery),
                ("quality", quality(category)),
                (
                    "settlement",
                    map(vec![
                        ("rail", Value::text("lemay")),
                        ("timing", Value::text("on_verification")),
                    ]),
                ),
            ]),
        ),
        (
            "validity_window",
            map(vec![
                ("not_before", tdate(0)),
                ("not_after", tdate(90 * DAY)),
            ]),
        ),
    ];
    if full {
        m.push(("geographic_constraints", texts(&["US", "DE"])));
        m.push(("capacity", Value::Integer(100)));
        m.push((
            "prerequisites",
            Value::Array(vec![map(vec![
                ("type", Value::text("credential")),
                (
                    "params",
                    map(vec![("class", Value::text("verified_business"))]),
                ),
            ])]),
        ));
        m.push(("metadata", map(vec![("region", Value::text("eu-central"))])));
        m.push(("non_negotiable", texts(&["quality.model_version"])));
    }
    map(m)
}

fn build() -> Result<Catalogue, VectorError> {
    let w: &'static World = world()?;
    let (p, r, c) = (&w.provider, &w.requester, &w.contributor);
    let mut b = Builder {
        entries: Vec::new(),
    };

    // ---- ids -------------------------------------------------------------------------
    let offer_id = w.id(ObjectType::Offer, p, 0, "offer")?;
    let request_id = w.id(ObjectType::Request, r, 3600, "request")?;
    let terms_id = w.id(ObjectType::Terms, r, 3700, "terms")?;
    let mandate_id = w.id(ObjectType::Mandate, r, 4000, "mandate")?;
    let other_mandate_id = w.id(ObjectType::Mandate, r, 1000, "mandate-earlier")?;
    let receipt_id = w.id(ObjectType::Receipt, r, 8000, "receipt")?;
    let manifest_id = w.id(ObjectType::Manifest, p, -60, "manifest")?;
    let error_id = w.id(ObjectType::Error, p, 5000, "error")?;

    // ---- Offers ------------------------------------------------------------------------
    let offer_reqs: &[&str] = &[
        "SPEC-II-02",
        "BIND-VII-01",
        "BIND-VII-A-01",
        "BIND-VII-A-02",
        "BIND-VII-A-03",
        "BIND-VII-A-04",
        "BIND-VII-A-05",
        "BIND-VII-A-06",
        "BIND-IV-A-02",
        "BIND-IV-A-04",
        "BIND-IV-A-06",
        "SPEC-VII-B-02",
        "BIND-IX-01",
        "BIND-VIII-I01",
        "BIND-VIII-I02",
    ];
    let offer = sign_single(
        "cbor/offer",
        &offer_unsigned(w, &offer_id, "inference", true),
        p,
        1,
    )?;
    let offer = b.push(
        "offer",
        "mtp-offer",
        Some("offer"),
        offer,
        Signing::Single { party: p, key: 1 },
        &[
            offer_reqs,
            &["BIND-VIII-B-01", "BIND-VIII-B-02", "BIND-VII-C-03"],
        ]
        .concat(),
        "Offer (BIND VII-A) of the provider for inference.text_generation with every optional \
         field: price 0.08 USD (shortest exact float, f64), accuracy_threshold 0.92 as binary32 \
         (fa 3f6b851f), signed with ML-DSA-65 over the deterministic CBOR of the map without \
         `signature` (PROFILE G-02).",
    )?;
    let minimal = sign_single(
        "cbor/offer-minimal",
        &offer_unsigned(
            w,
            &w.id(ObjectType::Offer, p, 10, "offer-minimal")?,
            "inference",
            false,
        ),
        p,
        1,
    )?;
    b.push(
        "offer-minimal",
        "mtp-offer",
        Some("offer"),
        minimal,
        Signing::Single { party: p, key: 1 },
        offer_reqs,
        "Offer with only the mandatory fields.",
    )?;
    // Unknown keys, one holding a map with integer and text keys: bytewise order of the
    // encoded keys (1000 = 19 03e8 before -1 = 20 before "u" = 61 75) differs from the RFC
    // 7049 length-first order.
    let ext_id = w.id(ObjectType::Offer, p, 20, "offer-extension")?;
    let ext = with_entry(
        &offer_unsigned(w, &ext_id, "inference", false),
        "x_vendor",
        Some(Value::Map(vec![
            (Value::text("u"), Value::text("gpu-hours")),
            (Value::Integer(1000), Value::text("vendor label")),
            (Value::Integer(-1), Value::Bool(true)),
            (Value::Bytes(vec![0x01]), Value::Null),
        ])),
    );
    let ext = with_entry(
        &ext,
        "x_note",
        Some(Value::text(
            "unknown keys are preserved and signed (PROFILE G-26)",
        )),
    );
    let ext = sign_single("cbor/offer-extension", &ext, p, 1)?;
    b.push(
        "offer-extension",
        "mtp-offer",
        Some("offer"),
        ext,
        Signing::Single { party: p, key: 1 },
        &[offer_reqs, &["BIND-IV-A-02", "SPEC-VII-B-01"]].concat(),
        "Offer with unknown top-level keys (PROFILE G-26: preserved byte for byte and covered by \
         the signature). `x_vendor` holds a map with keys 1000, -1, h'01' and \"u\": RFC 8949 \
         §4.2.1 bytewise order of the encoded keys puts 1000 (19 03e8) first, then -1 (20), \
         h'01' (41 01) and \"u\" (61 75); the RFC 7049 length-first order would differ.",
    )?;
    let long_id = w.id(ObjectType::Offer, p, 30, "offer-description-4096")?;
    let long = super::world::set_path(
        &offer_unsigned(w, &long_id, "inference", false),
        "description.human",
        Value::text("é".repeat(4096)),
    );
    let long = sign_single("cbor/offer-description-4096", &long, p, 1)?;
    b.push(
        "offer-description-4096",
        "mtp-offer",
        Some("offer"),
        long,
        Signing::Single { party: p, key: 1 },
        &["BIND-VII-A-04", "SPEC-II-02", "BIND-VII-01"],
        "Offer whose description.human has exactly 4,096 characters (U+00E9, 8,192 UTF-8 \
         bytes): the limit counts characters (PROFILE G-53).",
    )?;
    for (category, name, req) in [
        (
            "physical_goods",
            "offer-physical-goods",
            &["BIND-VIII-A-01", "BIND-VIII-A-02"][..],
        ),
        (
            "digital_goods",
            "offer-digital-goods",
            &["BIND-VIII-D-01"][..],
        ),
        ("services", "offer-services", &["BIND-VIII-D-02"][..]),
        ("compute", "offer-compute", &["BIND-VIII-C-01"][..]),
        (
            "inference",
            "offer-inference",
            &["BIND-VIII-B-01", "BIND-VIII-B-02"][..],
        ),
        ("information", "offer-information", &["BIND-VIII-D-03"][..]),
        (
            "communication",
            "offer-communication",
            &["BIND-VIII-D-04"][..],
        ),
        ("logistics", "offer-logistics", &["BIND-VIII-D-05"][..]),
        ("compliance", "offer-compliance", &["BIND-VIII-D-06"][..]),
    ] {
        let id = w.id(ObjectType::Offer, p, 40, name)?;
        let v = sign_single(
            &format!("cbor/{name}"),
            &offer_unsigned(w, &id, category, false),
            p,
            1,
        )?;
        b.push(
            name,
            "mtp-offer",
            Some("offer"),
            v,
            Signing::Single { party: p, key: 1 },
            &[
                req,
                &["SPEC-V-I01", "BIND-VIII-I01", "BIND-VIII-I02", "SPEC-II-02"],
            ]
            .concat(),
            &format!(
                "Offer in the {category} category carrying the category's mandatory quality \
                 dimensions in terms_template.quality with the types of PROFILE G-43."
            ),
        )?;
    }

    // ---- Requests ----------------------------------------------------------------------
    let adc_r = w.adc_requester.to_json();
    let request_unsigned = |id: &MtpUuid, proof: Value, chain_adc: &str| {
        map(vec![
            ("request_id", id.to_value()),
            ("agent_id", r.did_value()),
            ("value_type", Value::text("inference.text_generation")),
            (
                "description",
                map(vec![
                    ("human", Value::text("Summarise 10,000 support tickets")),
                    (
                        "machine",
                        map(vec![("input_tokens", Value::Integer(2_000_000))]),
                    ),
                ]),
            ),
            (
                "constraints",
                map(vec![
                    ("max_latency_ms", Value::Integer(5000)),
                    ("accuracy_threshold", f32v(0.92)),
                    ("budget_ceiling", price(Value::Integer(500), "USD")),
                    ("delivery_deadline", tdate(7 * DAY)),
                    ("jurisdiction", texts(&["US", "DE"])),
                ]),
            ),
            (
                "authority_attestation",
                map(vec![
                    ("principal_did", w.principal.did_value()),
                    ("scope", texts(&["inference", "compute"])),
                    ("max_tx_value", price(Value::Integer(5000), "USD")),
                    (
                        "delegation_chain",
                        Value::Array(vec![map(vec![
                            ("issuer", w.principal.did_value()),
                            ("subject", r.did_value()),
                            ("credential", Value::text(chain_adc)),
                        ])]),
                    ),
                    ("proof", proof),
                ]),
            ),
            (
                "fallback_preferences",
                Value::Array(vec![map(vec![
                    ("value_type", Value::text("inference")),
                    (
                        "constraints",
                        map(vec![("max_latency_ms", Value::Integer(10_000))]),
                    ),
                ])]),
            ),
        ])
    };
    let vp = map(vec![
        ("type", Value::text("vc_presentation")),
        ("presentation", Value::text(adc_r.as_str())),
    ]);
    let request = sign_single(
        "cbor/request",
        &request_unsigned(&request_id, vp, &adc_r),
        r,
        1,
    )?;
    let request = b.push(
        "request",
        "mtp-request",
        Some("request"),
        request,
        Signing::Single { party: r, key: 1 },
        &[
            "SPEC-II-02",
            "BIND-VII-01",
            "BIND-VII-B-01",
            "BIND-VII-B-03",
            "BIND-IV-A-04",
            "BIND-IV-A-06",
            "SPEC-VII-B-02",
            "SPEC-II-B-04",
            "SPEC-III-A-2-I01",
            "BIND-IX-01",
        ],
        "Request (BIND VII-B) of the requester with an Authority Attestation: a delegation \
         chain of one link (the Principal's MTPAuthorityDelegation VC, verbatim JSON-LD) and a \
         vc_presentation proof; constraints.accuracy_threshold is the binary32 value 0.92 \
         (fa 3f6b851f, PROFILE G-13).",
    )?;
    // zk_range proof bound to this request, the provider and the hidden-limit ADC.
    let zk_id = w.id(ObjectType::Request, r, 3650, "request-zk")?;
    let amount = PriceSpec::new(
        Number::Int(120),
        PriceUnit::parse("USD").map_err(|e| input_error("cbor/request-zk", e))?,
    );
    let ctx = ProofContext::for_credential(&zk_id, p.did_str(), &w.adc_requester_hidden)
        .at("cbor/request-zk")?;
    let limit = MinorAmount::new(HIDDEN_LIMIT_UNITS, "USD");
    let proof = ap::prove(
        &limit,
        &w.range_secret(),
        super::world::ADC_REQUESTER_HIDDEN_ID,
        &amount,
        &ctx,
    )
    .at("cbor/request-zk")?;
    let hidden_json = w.adc_requester_hidden.to_json();
    let zk = sign_single(
        "cbor/request-zk",
        &request_unsigned(&zk_id, proof.to_value(), &hidden_json),
        r,
        1,
    )?;
    b.push(
        "request-zk",
        "mtp-request",
        Some("request"),
        zk,
        Signing::Single { party: r, key: 1 },
        &[
            "BIND-VII-B-03",
            "BIND-III-C-02",
            "BIND-III-C-03",
            "BIND-III-C-04",
            "SPEC-III-A-1-08",
            "BIND-III-C-I01",
            "SPEC-II-02",
        ],
        "Request whose authority proof is a zk_range Bulletproofs range proof (PROFILE G-36) \
         that the hidden maxTransactionValue of the Principal's ADC is at least 120 USD, bound \
         to this request_id, the provider's DID and the ADC's proofValue.",
    )?;

    // ---- Negotiation -------------------------------------------------------------------
    let proposal_unsigned = |kind: &str, round: u64, proposer: &Party, amount: Value, secs: i64| {
        map(vec![
            ("type", Value::text(kind)),
            ("negotiation_id", terms_id.to_value()),
            ("round", Value::from(round)),
            ("proposer", proposer.did_value()),
            ("terms", map(vec![("price", price(amount, "USD"))])),
            ("timestamp", tdate(secs)),
        ])
    };
    let mut p1 = proposal_unsigned("proposal", 1, r, Value::Float(0.07), 3700);
    p1 = with_entry(
        &p1,
        "conditions",
        Some(Value::Array(vec![map(vec![
            ("if", Value::text("delivery.max_latency_ms")),
            ("then", Value::text("price.amount")),
        ])])),
    );
    let p1 = sign_single("cbor/proposal", &p1, r, 1)?;
    let p1 = b.push(
        "proposal",
        "proposal",
        None,
        p1,
        Signing::Single { party: r, key: 1 },
        &["SPEC-II-02"],
        "Round-1 Proposal (PROFILE G-10) by the requester, with a conditional term.",
    )?;
    let p2 = sign_single(
        "cbor/counterproposal",
        &proposal_unsigned("counterproposal", 2, p, Value::Float(0.08), 3710),
        p,
        1,
    )?;
    let p2 = b.push(
        "counterproposal",
        "proposal",
        None,
        p2,
        Signing::Single { party: p, key: 1 },
        &["SPEC-II-02"],
        "Round-2 Counterproposal by the provider.",
    )?;
    let accepted = sha256(&cbor::to_vec(&p2).at("cbor/acceptance")?);
    let acceptance = sign_single(
        "cbor/acceptance",
        &map(vec![
            ("type", Value::text("acceptance")),
            ("negotiation_id", terms_id.to_value()),
            ("round", Value::from(2u64)),
            ("accepted", Value::Bytes(accepted.to_vec())),
        ]),
        r,
        1,
    )?;
    let acceptance = b.push(
        "acceptance",
        "acceptance",
        None,
        acceptance,
        Signing::Single { party: r, key: 1 },
        &["SPEC-II-02", "BIND-VI-E-02"],
        "Acceptance by the requester: `accepted` = SHA-256 of the deterministic CBOR of the \
         accepted (signed) Counterproposal.",
    )?;
    let rejection = sign_single(
        "cbor/rejection",
        &map(vec![
            ("type", Value::text("rejection")),
            ("negotiation_id", terms_id.to_value()),
            ("round", Value::from(1u64)),
            ("reason", Value::text("price below the provider's floor")),
        ]),
        p,
        1,
    )?;
    b.push(
        "rejection",
        "rejection",
        None,
        rejection,
        Signing::Single { party: p, key: 1 },
        &["SPEC-II-02"],
        "Rejection of round 1 by the provider.",
    )?;
    let error_record = |code: u64, severity: u64, layer: u64, description: &str, secs: i64| {
        map(vec![
            ("error_id", error_id.to_value()),
            ("code", Value::from(code)),
            ("severity", Value::from(severity)),
            ("layer", Value::from(layer)),
            ("description", Value::text(description)),
            ("transaction_id", terms_id.to_value()),
            ("timestamp", tdate(secs)),
            ("details", map(vec![("round", Value::from(2u64))])),
        ])
    };
    let termination = sign_single(
        "cbor/termination",
        &map(vec![
            ("type", Value::text("termination")),
            ("negotiation_id", terms_id.to_value()),
            ("status", Value::text("timeout")),
            ("error", error_record(3200, 2, 3, "Round Timeout", 3800)),
        ]),
        r,
        1,
    )?;
    b.push(
        "termination",
        "termination",
        None,
        termination,
        Signing::Single { party: r, key: 1 },
        &["SPEC-II-02", "BIND-XI-I02"],
        "Termination (status timeout) carrying its mtp-error 3200 Round Timeout.",
    )?;
    let nim = sign_single(
        "cbor/nim",
        &map(vec![
            ("type", Value::text("nim")),
            ("negotiation_id", terms_id.to_value()),
            ("request", request.clone()),
            ("offer_ref", offer_id.to_value()),
            ("proposal", p1.clone()),
            ("round_timeout_ms", Value::from(30_000u64)),
            ("max_rounds", Value::from(10u64)),
        ]),
        r,
        1,
    )?;
    b.push(
        "nim",
        "nim",
        None,
        nim,
        Signing::Single { party: r, key: 1 },
        &["SPEC-II-02"],
        "Negotiation Initiation Message: the signed Request, the matched Offer's id and the \
         round-1 Proposal; negotiation_id = the reserved terms_id (PROFILE G-16).",
    )?;

    // ---- Terms -------------------------------------------------------------------------
    let participants2 = Value::Array(vec![
        map(vec![
            ("agent_id", p.did_value()),
            ("role", Value::text("provider")),
        ]),
        map(vec![
            ("agent_id", r.did_value()),
            ("role", Value::text("requester")),
        ]),
    ]);
    let terms_unsigned = |id: &MtpUuid, participants: Value, extra: Vec<(&str, Value)>| {
        let mut m = vec![
            ("terms_id", id.to_value()),
            ("participants", participants),
            ("offer_ref", offer_id.to_value()),
            ("request_ref", request_id.to_value()),
            (
                "price",
                map(vec![
                    ("amount", Value::Float(0.08)),
                    ("unit", Value::text("USD")),
                    (
                        "volume_discount",
                        Value::Array(vec![map(vec![
                            ("min_quantity", Value::from(1000u64)),
                            ("discount", Value::Float(0.1)),
                        ])]),
                    ),
                ]),
            ),
            (
                "delivery",
                map(vec![
                    ("method", Value::text("synchronous")),
                    ("max_latency_ms", Value::from(3000u64)),
                    ("format", Value::text("text/plain")),
                ]),
            ),
            ("quality", quality("inference")),
            (
                "dispute_resolution",
                map(vec![
                    ("method", Value::text("automated_arbitration")),
                    ("jurisdiction", Value::text("US")),
                    ("liability_cap", price(Value::Integer(1000), "USD")),
                ]),
            ),
            (
                "settlement",
                map(vec![
                    ("rail", Value::text("lemay")),
                    ("timing", Value::text("on_verification")),
                    ("escrow", Value::Bool(false)),
                ]),
            ),
            ("expiration", tdate(DAY)),
            (
                "negotiation_log",
                Value::Array(vec![p1.clone(), p2.clone(), acceptance.clone()]),
            ),
        ];
        m.extend(extra);
        map(m)
    };
    let terms = sign_multi(
        "cbor/terms",
        &terms_unsigned(&terms_id, participants2.clone(), vec![]),
        &[(p, 1), (r, 1)],
    )?;
    let terms = b.push(
        "terms",
        "mtp-terms",
        Some("terms"),
        terms,
        Signing::Multi {
            signers: vec![(p, 1), (r, 1)],
        },
        &[
            "SPEC-II-02",
            "SPEC-II-C-05",
            "SPEC-II-C-06",
            "BIND-VII-01",
            "BIND-VII-C-01",
            "BIND-VII-C-02",
            "BIND-VII-C-03",
            "BIND-VII-C-05",
            "BIND-IV-A-02",
            "BIND-IV-A-06",
            "SPEC-VII-B-02",
            "BIND-VIII-B-01",
        ],
        "Terms (BIND VII-C) of the negotiated transaction: two participants, price 0.08 USD \
         with a volume discount, the inference quality dimensions, the negotiation log \
         (Proposal, Counterproposal, Acceptance verbatim) and one signature per participant \
         in participants order over the deterministic CBOR without `signatures`. Key order: \
         bytewise by encoded key, so shorter keys first (price, quality, delivery, terms_id, \
         ...).",
    )?;
    let terms_bytes = cbor::to_vec(&terms).at("cbor/terms")?;
    let multi_terms_id = w.id(ObjectType::Terms, r, 3705, "terms-multiparty")?;
    let participants3 = Value::Array(vec![
        map(vec![
            ("agent_id", p.did_value()),
            ("role", Value::text("provider")),
        ]),
        map(vec![
            ("agent_id", r.did_value()),
            ("role", Value::text("requester")),
        ]),
        map(vec![
            ("agent_id", c.did_value()),
            ("role", Value::text("contributor")),
        ]),
    ]);
    let terms3 = sign_multi(
        "cbor/terms-multiparty",
        &terms_unsigned(
            &multi_terms_id,
            participants3.clone(),
            vec![(
                "attribution_method",
                map(vec![("methodology", Value::text("exact_shapley"))]),
            )],
        ),
        &[(p, 1), (r, 1), (c, 1)],
    )?;
    b.push(
        "terms-multiparty",
        "mtp-terms",
        Some("terms"),
        terms3,
        Signing::Multi {
            signers: vec![(p, 1), (r, 1), (c, 1)],
        },
        &[
            "BIND-VII-C-02",
            "BIND-VII-C-05",
            "SPEC-II-C-05",
            "SPEC-II-02",
        ],
        "Multi-party Terms: provider, requester and contributor, attribution_method \
         exact_shapley, three signatures in participants order.",
    )?;

    // ---- Mandate -----------------------------------------------------------------------
    let attestations = Value::Array(vec![
        map(vec![
            ("agent_id", p.did_value()),
            (
                "delegation_chain",
                Value::Array(vec![delegation_link(&w.principal, p, &w.adc_provider)]),
            ),
        ]),
        map(vec![
            ("agent_id", r.did_value()),
            (
                "delegation_chain",
                Value::Array(vec![delegation_link(&w.principal, r, &w.adc_requester)]),
            ),
        ]),
    ]);
    let mandate_unsigned = |id: &MtpUuid, preconditions: Option<Value>| {
        let mut m = vec![
            ("mandate_id", id.to_value()),
            ("offer_refs", Value::Array(vec![offer_id.to_value()])),
            ("request_refs", Value::Array(vec![request_id.to_value()])),
            ("terms", Value::Bytes(terms_bytes.clone())),
            ("delegation_attestations", attestations.clone()),
            ("commitment_timestamp", tdate(4000)),
            ("expiration", tdate(DAY)),
        ];
        if let Some(pc) = preconditions {
            m.push(("preconditions", pc));
        }
        map(m)
    };
    let preconditions = Value::Array(vec![map(vec![
        ("id", Value::text("after-earlier-delivery")),
        (
            "predicate",
            map(vec![
                ("op", Value::text("all")),
                (
                    "args",
                    Value::Array(vec![
                        map(vec![
                            ("op", Value::text("event")),
                            ("event", Value::text("delivery_confirmed")),
                            ("ref", other_mandate_id.to_value()),
                        ]),
                        map(vec![("op", Value::text("time_after")), ("at", tdate(4100))]),
                    ]),
                ),
            ]),
        ),
        ("expires", tdate(12 * 3600)),
    ])]);
    let draft = mandate_unsigned(&mandate_id, Some(preconditions.clone()));
    b.push(
        "mandate-draft",
        "mandate-draft",
        None,
        draft.clone(),
        Signing::None,
        &["SPEC-III-D-1-02", "SPEC-III-D-1-03", "SPEC-III-D-2-02"],
        "mandate_draft frame body: the Mandate without `signatures`, i.e. exactly the signing \
         input of every Mandate signature (PROFILE G-01, G-02, G-48).",
    )?;
    let mandate = sign_multi("cbor/mandate", &draft, &[(p, 1), (r, 1)])?;
    let mandate = b.push(
        "mandate",
        "mtp-mandate",
        Some("mandate"),
        mandate,
        Signing::Multi {
            signers: vec![(p, 1), (r, 1)],
        },
        &[
            "SPEC-III-D-1-02",
            "SPEC-III-D-1-03",
            "SPEC-III-D-1-04",
            "SPEC-III-D-2-02",
            "SPEC-II-02",
            "SPEC-III-A-2-03",
            "BIND-IV-A-06",
            "SPEC-VII-B-02",
        ],
        "Transaction Mandate (PROFILE G-01): the fully signed Terms as embedded deterministic \
         CBOR, both parties' delegation attestations, one machine-evaluable precondition \
         (all of: delivery_confirmed of an earlier Mandate, time_after), both signatures over \
         the deterministic CBOR without `signatures`.",
    )?;
    let unconditional_id = w.id(ObjectType::Mandate, r, 4001, "mandate-unconditional")?;
    let unconditional = sign_multi(
        "cbor/mandate-unconditional",
        &mandate_unsigned(&unconditional_id, None),
        &[(p, 1), (r, 1)],
    )?;
    b.push(
        "mandate-unconditional",
        "mtp-mandate",
        Some("mandate"),
        unconditional,
        Signing::Multi {
            signers: vec![(p, 1), (r, 1)],
        },
        &["SPEC-III-D-1-02", "SPEC-III-D-1-03", "SPEC-II-02"],
        "Unconditional Mandate: `preconditions` omitted (never an empty array, PROFILE G-01).",
    )?;
    let mandate_sigs = mandate
        .get("signatures")
        .and_then(Value::as_array)
        .and_then(|a| a.get(1))
        .cloned()
        .ok_or_else(|| input_error("cbor/mandate-signature", "mandate has no second signature"))?;
    b.push(
        "mandate-signature",
        "mandate-signature",
        None,
        map(vec![
            ("mandate_id", mandate_id.to_value()),
            ("signature", mandate_sigs),
        ]),
        Signing::Other,
        &["SPEC-III-D-1-02"],
        "mandate_signature frame: the requester's agent-signature over the mandate draft.",
    )?;

    // ---- Settlement and delivery -------------------------------------------------------
    let notice = sign_single(
        "cbor/settlement-notice",
        &map(vec![
            ("type", Value::text("settlement_confirmed")),
            ("mandate_id", mandate_id.to_value()),
            ("settlement_id", Value::text("lemay:stl-000042")),
            ("amount", price(Value::Float(0.08), "USD")),
            ("rail_ref", Value::text("lemay:tx-9f1c")),
            ("timestamp", tdate(5000)),
        ]),
        r,
        1,
    )?;
    b.push(
        "settlement-notice",
        "settlement-notice",
        None,
        notice,
        Signing::Single { party: r, key: 1 },
        &["SPEC-II-02"],
        "settlement_notice (PROFILE G-20) signed by the settling requester.",
    )?;
    let input = b"ticket corpus v1".to_vec();
    let delivery_request = sign_single(
        "cbor/delivery-request",
        &map(vec![
            ("mandate_id", mandate_id.to_value()),
            ("content_type", Value::text("text/plain")),
            ("input", Value::Bytes(input.clone())),
            ("timestamp", tdate(5100)),
        ]),
        r,
        1,
    )?;
    b.push(
        "delivery-request",
        "delivery-request",
        None,
        delivery_request,
        Signing::Single { party: r, key: 1 },
        &["SPEC-II-02"],
        "delivery_request (synchronous delivery) signed by the requester.",
    )?;
    let payload = mtp_reference_agent::layers::verification::computation_output(&input).to_vec();
    let delivery = sign_single(
        "cbor/delivery",
        &map(vec![
            ("mandate_id", mandate_id.to_value()),
            ("content_type", Value::text("application/octet-stream")),
            ("payload", Value::Bytes(payload.clone())),
            ("timestamp", tdate(5200)),
            ("input", Value::Bytes(input.clone())),
        ]),
        p,
        1,
    )?;
    let delivery = b.push(
        "delivery",
        "delivery",
        None,
        delivery,
        Signing::Single { party: p, key: 1 },
        &["SPEC-II-02"],
        "delivery signed by the provider; payload = SHA-256(\"mtp-reference-computation/1\" || \
         input), the reference computation (PROFILE G-22).",
    )?;
    let delivery_frame = Frame::new("delivery", delivery.clone()).at("cbor/ack")?;
    let delivery_frame_bytes = delivery_frame.encode().at("cbor/ack")?;
    b.push(
        "ack",
        "ack",
        None,
        map(vec![
            ("ok", Value::Bool(true)),
            ("ref", Value::Bytes(sha256(&delivery_frame_bytes).to_vec())),
        ]),
        Signing::None,
        &["BIND-VI-E-02"],
        "ack frame body: ref = SHA-256 of the acknowledged delivery frame.",
    )?;

    // ---- Receipts ----------------------------------------------------------------------
    let receipt_unsigned = |id: &MtpUuid,
                            participants: Value,
                            outcome: &str,
                            verification: Value,
                            extra: Vec<(&str, Value)>| {
        let mut m = vec![
            ("receipt_id", id.to_value()),
            ("mandate_id", mandate_id.to_value()),
            ("participants", participants),
            ("outcome", Value::text(outcome)),
            ("verification", verification),
            ("timestamp", tdate(8000)),
        ];
        m.extend(extra);
        map(m)
    };
    let computation = |matched: bool| {
        let delivered = if matched {
            sha256(&payload).to_vec()
        } else {
            sha256(b"tampered payload").to_vec()
        };
        map(vec![
            ("method", Value::text("computation")),
            (
                "evidence",
                map(vec![
                    ("input_sha256", Value::Bytes(sha256(&input).to_vec())),
                    ("expected_sha256", Value::Bytes(sha256(&payload).to_vec())),
                    ("delivered_sha256", Value::Bytes(delivered)),
                    ("match", Value::Bool(matched)),
                ]),
            ),
        ])
    };
    let receipt_reqs: &[&str] = &[
        "SPEC-II-02",
        "BIND-VII-01",
        "BIND-VII-D-01",
        "BIND-VII-D-03",
        "BIND-VII-D-I01",
        "BIND-IV-A-06",
        "SPEC-VII-B-02",
    ];
    let receipt = sign_single(
        "cbor/receipt",
        &receipt_unsigned(
            &receipt_id,
            participants2.clone(),
            "fulfilled",
            computation(true),
            vec![],
        ),
        r,
        1,
    )?;
    b.push(
        "receipt",
        "mtp-receipt",
        Some("receipt"),
        receipt,
        Signing::Single { party: r, key: 1 },
        receipt_reqs,
        "Receipt (BIND VII-D), outcome fulfilled, computation-based verification: evidence \
         holds the input, expected and delivered digests and the comparison (PROFILE G-22); \
         signed by the requester.",
    )?;
    let partial_id = w.id(ObjectType::Receipt, r, 8001, "receipt-partial")?;
    let partial = sign_single(
        "cbor/receipt-partial",
        &receipt_unsigned(
            &partial_id,
            participants2.clone(),
            "partially_fulfilled",
            computation(true),
            vec![(
                "partial_fulfillment",
                map(vec![
                    (
                        "fulfilled_elements",
                        texts(&["quality.output_format", "delivery.max_latency_ms"]),
                    ),
                    (
                        "unfulfilled_elements",
                        texts(&["quality.accuracy_threshold"]),
                    ),
                    ("fulfillment_ratio", f32v(0.75)),
                ]),
            )],
        ),
        r,
        1,
    )?;
    b.push(
        "receipt-partial",
        "mtp-receipt",
        Some("receipt"),
        partial,
        Signing::Single { party: r, key: 1 },
        &[receipt_reqs, &["SPEC-III-E-2-03", "BIND-IV-A-04"]].concat(),
        "Receipt partially_fulfilled with its partial_fulfillment block: dotted paths into the \
         Terms and fulfillment_ratio 0.75 (binary32, encoded f9 3a00, PROFILE G-13, G-22).",
    )?;
    let dispute_id = w.id(ObjectType::Receipt, r, 8002, "receipt-disputed")?;
    let disputed = sign_single(
        "cbor/receipt-disputed",
        &receipt_unsigned(
            &dispute_id,
            participants2.clone(),
            "disputed",
            computation(false),
            vec![(
                "dispute_initiation",
                map(vec![
                    (
                        "violated_provisions",
                        texts(&["quality.accuracy_threshold"]),
                    ),
                    ("evidence_refs", texts(&["sha256:delivered-payload"])),
                    ("proposed_resolution", Value::text("refund 50 percent")),
                ]),
            )],
        ),
        r,
        1,
    )?;
    b.push(
        "receipt-disputed",
        "mtp-receipt",
        Some("receipt"),
        disputed,
        Signing::Single { party: r, key: 1 },
        receipt_reqs,
        "Receipt disputed with its dispute_initiation block (PROFILE G-22).",
    )?;
    let failed_id = w.id(ObjectType::Receipt, r, 8003, "receipt-failed")?;
    let failed = sign_single(
        "cbor/receipt-failed",
        &receipt_unsigned(
            &failed_id,
            participants2.clone(),
            "failed",
            computation(false),
            vec![("failure_classification", Value::from(6100u64))],
        ),
        r,
        1,
    )?;
    b.push(
        "receipt-failed",
        "mtp-receipt",
        Some("receipt"),
        failed,
        Signing::Single { party: r, key: 1 },
        &[receipt_reqs, &["BIND-XI-I02"]].concat(),
        "Receipt failed with failure_classification 6100 Evidence Tampered (the recomputation \
         does not match the delivered payload).",
    )?;
    let tp_id = w.id(ObjectType::Receipt, c, 8004, "receipt-third-party")?;
    let third_party = sign_single(
        "cbor/receipt-third-party",
        &receipt_unsigned(
            &tp_id,
            participants2.clone(),
            "fulfilled",
            map(vec![
                ("method", Value::text("third_party")),
                (
                    "evidence",
                    map(vec![(
                        "report",
                        Value::text("output verified against the benchmark"),
                    )]),
                ),
                ("third_party", c.did_value()),
            ]),
            vec![],
        ),
        c,
        1,
    )?;
    b.push(
        "receipt-third-party",
        "mtp-receipt",
        Some("receipt"),
        third_party,
        Signing::Single { party: c, key: 1 },
        receipt_reqs,
        "Receipt with third_party verification, signed by the third-party verifier (PROFILE G-22).",
    )?;
    let revised_id = w.id(ObjectType::Receipt, r, 9000, "receipt-revised")?;
    let revised = sign_single(
        "cbor/receipt-revised",
        &receipt_unsigned(
            &revised_id,
            participants2.clone(),
            "fulfilled",
            map(vec![
                ("method", Value::text("attestation")),
                (
                    "evidence",
                    map(vec![(
                        "statement",
                        Value::text("dispute resolved: delivery accepted"),
                    )]),
                ),
            ]),
            vec![("predecessor", dispute_id.to_value())],
        ),
        r,
        1,
    )?;
    b.push(
        "receipt-revised",
        "mtp-receipt",
        Some("receipt"),
        revised,
        Signing::Single { party: r, key: 1 },
        receipt_reqs,
        "A later Receipt recording the resolved dispute: predecessor = the disputed Receipt, \
         which stays valid (PROFILE G-21).",
    )?;

    // ---- Attribution -------------------------------------------------------------------
    let contributors = vec![p.did.clone(), r.did.clone(), c.did.clone()];
    // v(S) over bitmasks of {provider, requester, contributor}.
    let values: Vec<Number> = [0, 40, 10, 20, 70, 60, 40, 100]
        .into_iter()
        .map(Number::Int)
        .collect();
    let record = AttributionRecord::exact(mandate_id, contributors, &values)
        .at("cbor/attribution-record")?;
    let record = sign_single("cbor/attribution-record", &record.to_value(), p, 1)?;
    let record = b.push(
        "attribution-record",
        "attribution-record",
        Some("attribution_record"),
        record,
        Signing::Single { party: p, key: 1 },
        &[
            "SPEC-III-G-1-01",
            "SPEC-III-G-1-02",
            "SPEC-III-G-2-04",
            "SPEC-II-02",
        ],
        "Attribution Record (PROFILE G-23), exact Shapley over three contributors; coalition \
         values keyed by comma-joined contributor indices; shares are fractions of v(N).",
    )?;
    let attr_receipt_id = w.id(ObjectType::Receipt, r, 8005, "receipt-attribution")?;
    let attr_receipt = sign_single(
        "cbor/receipt-attribution",
        &receipt_unsigned(
            &attr_receipt_id,
            participants3,
            "fulfilled",
            computation(true),
            vec![("attribution", record.clone())],
        ),
        r,
        1,
    )?;
    b.push(
        "receipt-attribution",
        "mtp-receipt",
        Some("receipt"),
        attr_receipt,
        Signing::Single { party: r, key: 1 },
        &[receipt_reqs, &["BIND-VII-D-05", "SPEC-III-G-2-04"]].concat(),
        "Receipt of a three-party transaction carrying the complete Attribution Record \
         (BIND-VII-D-05).",
    )?;
    let _ = coalition_key(0);

    // ---- Errors and notifications ------------------------------------------------------
    let err = sign_single(
        "cbor/mtp-error",
        &error_record(3200, 2, 3, "Round Timeout", 3800),
        r,
        1,
    )?;
    let err = b.push(
        "mtp-error",
        "mtp-error",
        Some("mtp_error"),
        err,
        Signing::Single { party: r, key: 1 },
        &[
            "BIND-XI-I01",
            "BIND-XI-I02",
            "SPEC-VI-07",
            "BIND-XI-01",
            "SPEC-II-02",
        ],
        "mtp-error object (PROFILE G-16): 3200 Round Timeout, severity 2 (Recoverable), layer \
         3 (Negotiation), code as an unsigned integer (PROFILE G-15).",
    )?;
    let notification = sign_single(
        "cbor/notification",
        &map(vec![
            ("type", Value::text("offer_revoked")),
            ("subject_ref", offer_id.to_value()),
            ("timestamp", tdate(6000)),
        ]),
        p,
        1,
    )?;
    b.push(
        "notification",
        "mtp-notification",
        Some("notification"),
        notification,
        Signing::Single { party: p, key: 1 },
        &["SPEC-II-02"],
        "Notification offer_revoked naming the revoked Offer.",
    )?;
    let notification_error = sign_single(
        "cbor/notification-error",
        &map(vec![
            ("type", Value::text("error")),
            ("transaction_id", terms_id.to_value()),
            ("error", err.clone()),
            ("timestamp", tdate(3801)),
        ]),
        r,
        1,
    )?;
    b.push(
        "notification-error",
        "mtp-notification",
        Some("notification"),
        notification_error,
        Signing::Single { party: r, key: 1 },
        &["SPEC-II-02", "BIND-XI-I02"],
        "Notification of type error carrying the signed mtp-error.",
    )?;

    // ---- Discovery ---------------------------------------------------------------------
    let manifest = sign_single(
        "cbor/manifest",
        &map(vec![
            ("manifest_id", manifest_id.to_value()),
            ("agent_id", p.did_value()),
            ("manifest_version", Value::text("1.0.0")),
            ("revision", Value::from(3u64)),
            (
                "value_types",
                texts(&["inference.text_generation", "compute.gpu"]),
            ),
            ("offers", Value::Array(vec![offer_id.to_value()])),
            (
                "capacity",
                map(vec![
                    ("max_concurrent", Value::from(16u64)),
                    ("availability", Value::text("24x7")),
                ]),
            ),
            (
                "jurisdictions",
                map(vec![
                    ("available", texts(&["US", "DE"])),
                    ("prohibited", texts(&["KP"])),
                ]),
            ),
            ("quality", map(vec![("uptime", Value::Float(0.999))])),
            ("payment_rails", texts(&["lemay", "ach"])),
            (
                "extensions",
                Value::Array(vec![map(vec![
                    ("id", Value::text("lemay.ext.carbon_reporting")),
                    ("version", Value::text("1.0.0")),
                ])]),
            ),
            ("protocol_versions", texts(&["1.0.0"])),
            ("freshness", tdate(-60)),
        ]),
        p,
        1,
    )?;
    b.push(
        "manifest",
        "mtp-manifest",
        Some("manifest"),
        manifest,
        Signing::Single { party: p, key: 1 },
        &["SPEC-II-02", "SPEC-XII-I01", "BIND-VIII-I01"],
        "Capability Manifest (PROFILE G-30) with an extension reference (G-50) and \
         protocol_versions [\"1.0.0\"] (Major.Minor.Patch, G-49).",
    )?;
    let revocation = sign_single(
        "cbor/offer-revocation",
        &map(vec![
            ("type", Value::text("offer_revocation")),
            ("offer_id", offer_id.to_value()),
            ("agent_id", p.did_value()),
            ("revoked_at", tdate(6000)),
        ]),
        p,
        1,
    )?;
    b.push(
        "offer-revocation",
        "offer-revocation",
        Some("offer_revocation"),
        revocation,
        Signing::Single { party: p, key: 1 },
        &["SPEC-II-02"],
        "Offer revocation notice (PROFILE G-31) signed by the offering Agent.",
    )?;
    b.push(
        "index-query",
        "index-query",
        Some("index_query"),
        map(vec![
            ("value_type", Value::text("inference")),
            (
                "constraints",
                map(vec![("max_price", price(Value::Integer(1), "USD"))]),
            ),
            (
                "counterparty",
                map(vec![("jurisdiction", Value::text("US"))]),
            ),
            ("limit", Value::from(10u64)),
            ("cursor", Value::Bytes(vec![0, 0, 0, 1])),
        ]),
        Signing::None,
        &["SPEC-II-02", "BIND-VIII-I01"],
        "Index query (PROFILE G-31) for the inference category.",
    )?;
    b.push(
        "index-response",
        "index-response",
        Some("index_response"),
        map(vec![
            (
                "results",
                Value::Array(vec![map(vec![
                    ("offer", offer.clone()),
                    ("manifest_id", manifest_id.to_value()),
                    ("freshness", tdate(-60)),
                ])]),
            ),
            ("cursor", Value::Bytes(vec![0, 0, 0, 2])),
        ]),
        Signing::None,
        &["SPEC-II-02"],
        "Index response with one result (the signed Offer, its manifest id and freshness).",
    )?;

    // ---- Dispute record ----------------------------------------------------------------
    let dispute = sign_single(
        "cbor/dispute-initiation-record",
        &map(vec![
            ("type", Value::text("dispute_initiation")),
            ("mandate_id", mandate_id.to_value()),
            ("receipt_ref", dispute_id.to_value()),
            ("disputing_agent", r.did_value()),
            (
                "violated_provisions",
                texts(&["quality.accuracy_threshold"]),
            ),
            ("evidence_refs", texts(&["sha256:delivered-payload"])),
            ("proposed_resolution", Value::text("refund 50 percent")),
            ("timestamp", tdate(8002)),
        ]),
        r,
        1,
    )?;
    b.push(
        "dispute-initiation-record",
        "dispute-initiation-record",
        Some("dispute_initiation_record"),
        dispute,
        Signing::Single { party: r, key: 1 },
        &["SPEC-II-02"],
        "Standalone Dispute Initiation Record (PROFILE G-22) signed by the disputing requester.",
    )?;

    // ---- Identity ----------------------------------------------------------------------
    let genesis = DidUpdate::genesis(&p.doc, ts(-30 * DAY)).at("cbor/did-update")?;
    let genesis = sign_single("cbor/did-update", &genesis.to_value(), p, 1)?;
    let genesis_obj = DidUpdate::from_value(&genesis).at("cbor/did-update")?;
    let mut doc2_json = p.doc_json("cbor/did-update")?;
    if let Some(s) = doc2_json
        .get_mut("service")
        .and_then(|s| s.get_mut(0))
        .and_then(|s| s.get_mut("serviceEndpoint"))
    {
        *s = serde_json::Value::String("grpcs://provider.example:7444".into());
    }
    let doc2: DidDocument = serde_json::from_value(doc2_json).at("cbor/did-update")?;
    let update2 = DidUpdate::successor(&genesis_obj, &doc2, ts(-DAY))
        .map_err(|e| input_error("cbor/did-update", e.to_string()))?;
    let update2 = sign_single("cbor/did-update", &update2.to_value(), p, 1)?;
    let update2_obj = DidUpdate::from_value(&update2).at("cbor/did-update")?;
    let history = DidHistory::from_updates(&[genesis_obj.clone(), update2_obj.clone()])
        .map_err(|e| input_error("cbor/did-update", e.to_string()))?;
    b.push(
        "did-update",
        "did-update",
        None,
        update2,
        Signing::Single { party: p, key: 1 },
        &["SPEC-II-02", "BIND-VI-E-02", "BIND-II-A-01"],
        "DID Update Transaction version 2 (BIND II-B, PROFILE G-32): previous_hash = SHA-256 \
         of the deterministic CBOR of version 1 (signature included), the complete new DID \
         Document as JSON-LD text, signed by the current authentication key #key-1.",
    )?;
    b.push(
        "did-resolution-request",
        "did-resolution-request",
        None,
        DidResolutionRequest::new(p.did.clone(), Some(2)).to_value(),
        Signing::None,
        &["SPEC-II-02"],
        "did_resolution_request frame body for version 2.",
    )?;
    let response = DidResolutionResponse::from_history(&history, Some(2))
        .map_err(|e| input_error("cbor/did-resolution-response", e.to_string()))?;
    b.push(
        "did-resolution-response",
        "did-resolution-response",
        None,
        response.to_value(),
        Signing::None,
        &["SPEC-II-02", "BIND-II-A-01"],
        "did_resolution_response: the version-2 document with the signed version history.",
    )?;
    let alg = sign_plain(
        "cbor/alg-profile-message",
        &map(vec![
            ("type", Value::text("alg_profile")),
            ("agent_id", p.did_value()),
            ("profile", AlgorithmSupportProfile::full().to_value()),
            ("timestamp", tdate(0)),
        ]),
        "signature",
        p.key("cbor/alg-profile-message", 1)?,
        &p.kid(1),
    )?;
    b.push(
        "alg-profile-message",
        "alg-profile-message",
        None,
        alg,
        Signing::Single { party: p, key: 1 },
        &["BIND-X-I02", "BIND-X-I03", "SPEC-II-02"],
        "Algorithm Support Profile message on mtp.alg (PROFILE G-38), every MTP algorithm listed.",
    )?;

    // ---- Audit, transport --------------------------------------------------------------
    let mut trail = AuditTrail::new(*terms_id.as_bytes());
    trail
        .record_transition(
            TxState::Initiated,
            TxState::Negotiating,
            &TxEvent::NegotiationInitiated,
            &[p.did_str().to_owned(), r.did_str().to_owned()],
            ts(3700),
        )
        .at("cbor/audit-entry")?;
    let entry = trail
        .entries()
        .first()
        .map(|e| e.to_value(true))
        .ok_or_else(|| input_error("cbor/audit-entry", "empty trail"))?;
    b.push(
        "audit-entry",
        "audit-entry",
        None,
        entry,
        Signing::None,
        &["BIND-VI-E-02", "BIND-VI-E-I01"],
        "Genesis audit-trail entry (PROFILE G-42): seq 0, prev_hash = 32 zero bytes, hash = \
         SHA-256(det-CBOR(entry without hash)).",
    )?;
    let frame = Frame::new("offer", offer.clone()).at("cbor/grpc-frame")?;
    let frame_value =
        cbor::from_slice(&frame.encode().at("cbor/grpc-frame")?).at("cbor/grpc-frame")?;
    b.push(
        "grpc-frame",
        "grpc-frame",
        None,
        frame_value,
        Signing::None,
        &["BIND-VI-E-02", "BIND-IV-A-06"],
        "gRPC mtp.v1.Frame payload (PROFILE G-09): {type: \"offer\", body: the signed Offer, \
         hash: SHA-256(det-CBOR(body))}.",
    )?;
    let subject = mtp_protocol::wire::subject::offer(
        &mtp_protocol::taxonomy::Classifier::parse("inference.text_generation")
            .map_err(|e| input_error("cbor/nats-envelope", e.to_string()))?,
    );
    let mut rng = SeededRng::from_master(&MASTER, "cbor/nats-envelope/randomness");
    let randomness = EnvelopeRandomness::draw(&mut rng, 1);
    let kid = r.kem_kid(1);
    let ek = r.kem("cbor/nats-envelope", 1)?.encapsulation_key();
    let sealed = wire::seal(
        &subject,
        &EnvelopeHeader {
            msg_type: "offer".into(),
            sender: p.did_str().into(),
            msg_id: offer_id.to_value(),
        },
        &offer,
        &[RecipientKey {
            kid: &kid,
            algorithm: r.kem("cbor/nats-envelope", 1)?.algorithm(),
            encapsulation_key: &ek,
        }],
        &randomness,
        p.key("cbor/nats-envelope", 1)?,
        Some(&p.kid(1)),
    )
    .at("cbor/nats-envelope")?;
    b.push(
        "nats-envelope",
        "nats-envelope",
        None,
        cbor::from_slice(&sealed).at("cbor/nats-envelope")?,
        Signing::Other,
        &["BIND-VI-D-01", "BIND-VI-B-I01", "BIND-VI-E-02"],
        "NATS envelope (PROFILE G-06) carrying the Offer on mtp.offer.inference.text_generation \
         to the requester's ML-KEM-768 key; the envelope family has the keys to open it.",
    )?;
    let _ = signature_value;

    Ok(Catalogue {
        entries: b.entries,
        offer_id,
        request_id,
        terms_id,
        mandate_id,
        receipt_id,
        terms_bytes,
    })
}
