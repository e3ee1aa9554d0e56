//! A fixed run for the writer tests: deterministic times and seeds; one pass, one MUST fail
//! with a transcript, one error (with hostile characters), one inconclusive, one
//! not_applicable, one SHOULD failure; two layers.
#![allow(dead_code)]

use mtp_protocol::cbor;
use mtp_protocol::crypto::sha256;
use mtp_reports::model::*;

/// The IUT description file the header's `description_sha256` is taken over.
pub const IUT_DESCRIPTION: &str = "name: example-agent 0.1.0\n\
endpoints:\n  sync: {address: grpcs://127.0.0.1:7443, fingerprint: \"sha256:00\"}\n\
ics:\n  roles: [provider, index]\n  price_units: [USD]\n";

/// A transcript entry whose `hash` is the SHA-256 of the bytes the diagnostic notation
/// stands for.
pub fn entry(direction: Direction, channel: &str, frame_type: &str, diag: &str) -> TranscriptEntry {
    let bytes = cbor::diag::from_diag(diag).expect("fixture diag parses");
    TranscriptEntry {
        direction,
        channel: channel.into(),
        frame_type: frame_type.into(),
        diag: diag.into(),
        hash: hex::encode(sha256(&bytes)),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn step(
    index: u32,
    phase: StepPhase,
    kind: &str,
    description: &str,
    verdict: Verdict,
    expected: Option<&str>,
    observed: Option<&str>,
    transcript: Vec<TranscriptEntry>,
) -> StepResult {
    StepResult {
        index,
        phase,
        kind: kind.into(),
        description: description.into(),
        verdict,
        expected: expected.map(Into::into),
        observed: observed.map(Into::into),
        duration_ms: 10 + u64::from(index) * 7,
        transcript,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn scenario(
    id: &str,
    title: &str,
    layer: Layer,
    level: Level,
    requirements: &[&str],
    verdict: Verdict,
    reason: &str,
    seed: u64,
    second: u32,
    steps: Vec<StepResult>,
) -> ScenarioResult {
    ScenarioResult {
        scenario_id: id.into(),
        title: title.into(),
        layer,
        level,
        requirements: requirements.iter().map(|s| (*s).into()).collect(),
        verdict,
        reason: reason.into(),
        started: format!("2026-03-06T09:00:{second:02}Z"),
        finished: format!("2026-03-06T09:00:{:02}.25Z", second + 1),
        duration_ms: 1250,
        seed,
        replay: format!(
            "mtp-cert replay {id} --seed 42 --iut iut.yaml --scenarios scenarios/examples"
        ),
        steps,
    }
}

pub fn header() -> RunHeader {
    RunHeader {
        schema: SCHEMA.into(),
        suite_version: "0.1.0".into(),
        seed: 42,
        iut: IutSummary {
            name: "example-agent 0.1.0".into(),
            description_sha256: hex::encode(sha256(IUT_DESCRIPTION.as_bytes())),
        },
        started: "2026-03-06T09:00:00Z".into(),
        ics: Ics {
            roles: vec![Role::Provider, Role::Index],
            algorithms: vec![],
            price_units: vec!["USD".into()],
            verification_methods: vec!["automated".into()],
            extensions: vec![],
            settlement_rails: vec!["test".into()],
        },
        executor: "live".into(),
    }
}

pub fn scenarios() -> Vec<ScenarioResult> {
    use Direction::*;
    use StepPhase::*;
    vec![
        scenario(
            "DISC-OFFER-PUB-001",
            "An index lists a correctly signed Offer",
            Layer::Discovery,
            Level::Must,
            &["SPEC-II-A-06"],
            Verdict::Pass,
            "every step passed",
            0x1111_2222_3333_4444,
            1,
            vec![step(
                0,
                Main,
                "send",
                "publish a signed Offer",
                Verdict::Pass,
                None,
                None,
                vec![entry(
                    Sent,
                    "grpc:Index/Publish",
                    "offer",
                    r#"{"type": "offer", "body": {"price": {"unit": "USD", "amount": 5}}}"#,
                )],
            )],
        ),
        scenario(
            "DISC-OFFER-SIG-001",
            "An index rejects an Offer whose signature does not verify",
            Layer::Discovery,
            Level::Must,
            &["SPEC-II-A-06", "BIND-VI-A-03"],
            Verdict::Fail,
            "step 1 (line 27): expected an error with code 2101 or 1100, got response ack",
            0x5555_6666_7777_8888,
            3,
            vec![
                step(
                    0,
                    Main,
                    "send",
                    "publish an Offer whose signature was broken after signing",
                    Verdict::Pass,
                    None,
                    None,
                    vec![entry(
                        Sent,
                        "grpc:Index/Publish",
                        "offer",
                        r#"{"type": "offer", "body": {"signature": {"alg": "ML-DSA-65", "value": h'00ff'}}}"#,
                    )],
                ),
                step(
                    1,
                    Main,
                    "expect",
                    "expect error 2101|1100 within 5s",
                    Verdict::Fail,
                    Some("error code in {2101, 1100}, gRPC status INVALID_ARGUMENT"),
                    Some("response ack {\"status\": \"listed\"}"),
                    vec![entry(
                        Received,
                        "grpc:Index/Publish",
                        "ack",
                        r#"{"type": "ack", "body": {"status": "listed"}}"#,
                    )],
                ),
            ],
        ),
        scenario(
            "DISC-QUERY-LATENCY-001",
            "An index answers a query within its advertised latency",
            Layer::Discovery,
            Level::Should,
            &["SPEC-II-A-01"],
            Verdict::Fail,
            "step 0: no reply within 2s",
            0x0102_0304_0506_0708,
            5,
            vec![step(
                0,
                Main,
                "expect",
                "expect response query_result within 2s",
                Verdict::Fail,
                Some("response query_result within 2s"),
                None,
                vec![],
            )],
        ),
        scenario(
            "NEG-COUNTER-001",
            "A counterproposal keeps the negotiation open",
            Layer::Negotiation,
            Level::Must,
            &["SPEC-III-C-1-01"],
            Verdict::Inconclusive,
            "setup step 0: control action add_peer is unsupported",
            9,
            7,
            vec![step(
                0,
                Setup,
                "control",
                "control add_peer",
                Verdict::Inconclusive,
                Some("control action succeeds"),
                Some("unsupported_action"),
                vec![entry(
                    Control,
                    "control:add_peer",
                    "add_peer",
                    r#"{"kind": "unsupported_action"}"#,
                )],
            )],
        ),
        scenario(
            "NEG-MULTI-PARTY-001",
            "Multi-party consensus over three parties",
            Layer::Negotiation,
            Level::May,
            &["SPEC-III-C-1-02"],
            Verdict::NotApplicable,
            "ICS: roles must include requester",
            10,
            9,
            vec![],
        ),
        scenario(
            "NEG-ROUND-TIMEOUT-001",
            "A silent counterparty ends the negotiation with status timeout",
            Layer::Negotiation,
            Level::Must,
            &["SPEC-III-C-1-02"],
            Verdict::Error,
            "transport: connection reset <script>alert(\"x\")</script> & ]]> 'quoted'",
            11,
            11,
            vec![step(
                0,
                Main,
                "send",
                "send nim",
                Verdict::Error,
                None,
                Some("I/O error: connection reset by peer"),
                vec![],
            )],
        ),
    ]
}

pub fn fixture() -> RunResults {
    RunResults::new(header(), scenarios(), 9_876)
}
