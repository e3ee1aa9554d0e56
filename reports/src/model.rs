//! The result model of an `mtp-cert` run: one [`ScenarioResult`] per scenario (verdict, reason,
//! evidence per step), the [`RunHeader`] that says what was tested with which seed, and the
//! [`RunSummary`] with the certification rule.
//!
//! Schema `mtp-cert-results/1` ([`SCHEMA`]). On disk a run is `results.jsonl`: one JSON object
//! per line, tagged by `record` — a `header` first, then one `scenario` per finished scenario
//! in completion order, then (when the run ends normally) a `summary` ([`Record`], [`jsonl`]).
//! The whole run as one JSON document is [`RunResults`]. Every type serialises its fields in
//! declaration order, so the same values always give the same bytes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Schema identifier of the results format; changes only when a field changes meaning.
pub const SCHEMA: &str = "mtp-cert-results/1";

/// How a scenario ended. Exactly one per scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every step met its expectation.
    Pass,
    /// The IUT did something the specification forbids, or failed to do what it requires
    /// (including silence where a reply was required).
    Fail,
    /// A precondition was not reached (a setup step or a control action did not succeed,
    /// an action is unsupported); says nothing about conformance.
    Inconclusive,
    /// The harness or the infrastructure failed (bug, panic, I/O, transport set-up).
    Error,
    /// The IUT's conformance statement (ICS) excludes the scenario.
    NotApplicable,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Inconclusive,
        Verdict::Error,
        Verdict::NotApplicable,
    ];

    /// The serialised name (`not_applicable`).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
            Verdict::NotApplicable => "not_applicable",
        }
    }

    /// Upper-case label for terminal output (`N/A` for not applicable).
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Error => "ERROR",
            Verdict::NotApplicable => "N/A",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Requirement level of a scenario (RFC 2119 force of what it checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Must,
    Should,
    May,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Must, Level::Should, Level::May];

    /// Upper-case keyword, as written in scenario files (`MUST`).
    pub fn keyword(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        }
    }

    /// Parses the upper-case keyword (`MUST`, `SHOULD`, `MAY`).
    pub fn from_keyword(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.keyword() == s)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// The part of the protocol a scenario exercises: the seven layers of SPEC III, cross-layer
/// rules (identifiers, serialization, state machine, errors) and the transport binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Identity,
    Discovery,
    Negotiation,
    Commitment,
    Settlement,
    Verification,
    Attribution,
    CrossLayer,
    Transport,
}

impl Layer {
    pub const ALL: [Layer; 9] = [
        Layer::Identity,
        Layer::Discovery,
        Layer::Negotiation,
        Layer::Commitment,
        Layer::Settlement,
        Layer::Verification,
        Layer::Attribution,
        Layer::CrossLayer,
        Layer::Transport,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Identity => "identity",
            Layer::Discovery => "discovery",
            Layer::Negotiation => "negotiation",
            Layer::Commitment => "commitment",
            Layer::Settlement => "settlement",
            Layer::Verification => "verification",
            Layer::Attribution => "attribution",
            Layer::CrossLayer => "cross_layer",
            Layer::Transport => "transport",
        }
    }

    pub fn from_name(s: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == s)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who moved a transcript item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The harness sent it to the IUT (as counterparty, index, registry or Principal).
    Sent,
    /// The IUT sent it to the harness.
    Received,
    /// A test-control call (action and its result); never judged itself.
    Control,
}

/// One message of the evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    pub direction: Direction,
    /// `grpc:Agent/Negotiate`, `nats:<subject>`, `control:<action>`.
    pub channel: String,
    /// Frame `type` (`offer`, `counterproposal`, `error`, ...) or the control action.
    pub frame_type: String,
    /// The bytes as CBOR diagnostic notation (RFC 8949 §8; malformed bytes as `h'..'`).
    pub diag: String,
    /// Lower-case hex SHA-256 of the exact bytes on the wire.
    pub hash: String,
}

/// Whether a step belongs to the scenario's `setup` or its `steps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    Setup,
    Main,
}

/// The outcome and evidence of one executed step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Position among all steps of the scenario, setup first, from 0.
    pub index: u32,
    pub phase: StepPhase,
    /// Step kind (`control`, `send`, `expect`, `expect_state`, `expect_audit`, `capture`,
    /// `check_vectors`, `sleep`).
    pub kind: String,
    /// What the step does, in one line.
    pub description: String,
    pub verdict: Verdict,
    /// What the oracle required (`null` when the step judges nothing).
    pub expected: Option<String>,
    /// What was observed (`null` when nothing was observed).
    pub observed: Option<String>,
    pub duration_ms: u64,
    pub transcript: Vec<TranscriptEntry>,
}

/// The outcome of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario_id: String,
    pub title: String,
    pub layer: Layer,
    pub level: Level,
    /// Requirement ids of `docs/requirements.yaml` the scenario checks.
    pub requirements: Vec<String>,
    pub verdict: Verdict,
    /// One line: why the verdict (the first step that did not pass, or the unmet ICS clause).
    pub reason: String,
    /// RFC 3339 UTC (`tdate` canonical form).
    pub started: String,
    pub finished: String,
    pub duration_ms: u64,
    /// The scenario seed, derived from the run seed and the scenario id (see `docs/scenarios.md`).
    pub seed: u64,
    /// The one command that replays this scenario.
    pub replay: String,
    /// Steps in execution order; steps after the one that ended the scenario are not listed.
    pub steps: Vec<StepResult>,
}

/// Roles an IUT can claim in its ICS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Requester,
    Provider,
    Index,
    Registry,
    Verifier,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Requester,
        Role::Provider,
        Role::Index,
        Role::Registry,
        Role::Verifier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Provider => "provider",
            Role::Index => "index",
            Role::Registry => "registry",
            Role::Verifier => "verifier",
        }
    }

    pub fn from_name(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// Optional algorithms of BIND VI / X an IUT can claim (the mandatory ones are not listed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OptionalAlgorithm {
    #[serde(rename = "ML-DSA-87")]
    MlDsa87,
    #[serde(rename = "ML-KEM-1024")]
    MlKem1024,
    #[serde(rename = "SHA3-256")]
    Sha3_256,
}

impl OptionalAlgorithm {
    pub const ALL: [OptionalAlgorithm; 3] = [
        OptionalAlgorithm::MlDsa87,
        OptionalAlgorithm::MlKem1024,
        OptionalAlgorithm::Sha3_256,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OptionalAlgorithm::MlDsa87 => "ML-DSA-87",
            OptionalAlgorithm::MlKem1024 => "ML-KEM-1024",
            OptionalAlgorithm::Sha3_256 => "SHA3-256",
        }
    }

    pub fn from_name(s: &str) -> Option<OptionalAlgorithm> {
        OptionalAlgorithm::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// The Implementation Conformance Statement: what the IUT claims to support. Scenarios whose
/// ICS preconditions it does not meet are `not_applicable`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ics {
    pub roles: Vec<Role>,
    pub algorithms: Vec<OptionalAlgorithm>,
    /// Price units it can negotiate in (`USD`, `EUR`, `credits`, ...).
    pub price_units: Vec<String>,
    /// Verification methods (SPEC III-F) it implements.
    pub verification_methods: Vec<String>,
    /// Extension identifiers (SPEC XI) it understands.
    pub extensions: Vec<String>,
    /// Settlement rails it can use.
    pub settlement_rails: Vec<String>,
}

/// Which IUT was tested.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IutSummary {
    pub name: String,
    /// Lower-case hex SHA-256 of the IUT description file as read.
    pub description_sha256: String,
}

/// First record of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHeader {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// `mtp-cert` version that ran the suite.
    pub suite_version: String,
    /// The run seed (`--seed`); scenario seeds derive from it.
    pub seed: u64,
    pub iut: IutSummary,
    /// RFC 3339 UTC.
    pub started: String,
    pub ics: Ics,
    /// `live` (a real IUT), or `dry-run` (no IUT contacted: the verdicts say nothing about
    /// conformance), or the name of a test executor.
    pub executor: String,
}

/// Number of scenarios per verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCounts {
    pub pass: u32,
    pub fail: u32,
    pub inconclusive: u32,
    pub error: u32,
    pub not_applicable: u32,
}

impl VerdictCounts {
    pub fn add(&mut self, v: Verdict) {
        let slot = match v {
            Verdict::Pass => &mut self.pass,
            Verdict::Fail => &mut self.fail,
            Verdict::Inconclusive => &mut self.inconclusive,
            Verdict::Error => &mut self.error,
            Verdict::NotApplicable => &mut self.not_applicable,
        };
        *slot = slot.saturating_add(1);
    }

    pub fn get(&self, v: Verdict) -> u32 {
        match v {
            Verdict::Pass => self.pass,
            Verdict::Fail => self.fail,
            Verdict::Inconclusive => self.inconclusive,
            Verdict::Error => self.error,
            Verdict::NotApplicable => self.not_applicable,
        }
    }

    pub fn total(&self) -> u32 {
        Verdict::ALL.iter().map(|v| self.get(*v)).sum()
    }
}

/// What the run as a whole says; maps one-to-one to `mtp-cert`'s exit codes 0, 1 and 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every applicable MUST scenario passed (exit 0). Failed SHOULD scenarios are warnings.
    Certified,
    /// An applicable MUST scenario failed or was inconclusive (exit 1).
    Failed,
    /// No MUST scenario failed, but some scenario ended in `error`: the run cannot certify
    /// (exit 3).
    InfrastructureError,
}

impl RunOutcome {
    pub fn exit_code(self) -> u8 {
        match self {
            RunOutcome::Certified => 0,
            RunOutcome::Failed => 1,
            RunOutcome::InfrastructureError => 3,
        }
    }
}

/// Totals and the certification verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub total: u32,
    pub counts: VerdictCounts,
    pub by_layer: BTreeMap<Layer, VerdictCounts>,
    pub by_level: BTreeMap<Level, VerdictCounts>,
    /// Certification rule: every applicable MUST scenario passed.
    pub certified: bool,
    pub outcome: RunOutcome,
    /// Applicable MUST scenarios that did not pass (sorted ids).
    pub mandatory_not_passed: Vec<String>,
    /// SHOULD scenarios that failed: warnings, not blocking (sorted ids).
    pub warnings: Vec<String>,
    /// Scenarios that ended in `error` (sorted ids).
    pub errors: Vec<String>,
    /// Wall time of the run in milliseconds (0 when unknown).
    pub wall_ms: u64,
}

impl RunSummary {
    /// Applies the certification rule to `results`:
    /// - `failed` when an applicable MUST scenario ended `fail`;
    /// - else `infrastructure_error` when any scenario ended `error`;
    /// - else `failed` when an applicable MUST scenario ended `inconclusive`;
    /// - else `certified`.
    pub fn from_results<'a>(results: impl IntoIterator<Item = &'a ScenarioResult>) -> RunSummary {
        let mut counts = VerdictCounts::default();
        let mut by_layer = BTreeMap::new();
        let mut by_level = BTreeMap::new();
        let mut mandatory_not_passed = Vec::new();
        let mut warnings = Vec::new();
        let mut errors = Vec::new();
        let mut must_fail = false;
        for r in results {
            counts.add(r.verdict);
            by_layer
                .entry(r.layer)
                .or_insert_with(VerdictCounts::default)
                .add(r.verdict);
            by_level
                .entry(r.level)
                .or_insert_with(VerdictCounts::default)
                .add(r.verdict);
            if r.level == Level::Must
                && !matches!(r.verdict, Verdict::Pass | Verdict::NotApplicable)
            {
                mandatory_not_passed.push(r.scenario_id.clone());
                must_fail |= r.verdict == Verdict::Fail;
            }
            if r.level == Level::Should && r.verdict == Verdict::Fail {
                warnings.push(r.scenario_id.clone());
            }
            if r.verdict == Verdict::Error {
                errors.push(r.scenario_id.clone());
            }
        }
        mandatory_not_passed.sort();
        warnings.sort();
        errors.sort();
        let certified = mandatory_not_passed.is_empty();
        let outcome = if must_fail {
            RunOutcome::Failed
        } else if !errors.is_empty() {
            RunOutcome::InfrastructureError
        } else if !certified {
            RunOutcome::Failed
        } else {
            RunOutcome::Certified
        };
        RunSummary {
            total: counts.total(),
            counts,
            by_layer,
            by_level,
            certified,
            outcome,
            mandatory_not_passed,
            warnings,
            errors,
            wall_ms: 0,
        }
    }
}

/// One line of `results.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Header(RunHeader),
    Scenario(ScenarioResult),
    Summary(RunSummary),
}

/// A whole run as one JSON document (scenarios sorted by id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub schema: String,
    pub header: RunHeader,
    pub results: Vec<ScenarioResult>,
    pub summary: RunSummary,
}

impl RunResults {
    /// Sorts `results` by scenario id and computes the summary (with `wall_ms`).
    pub fn new(header: RunHeader, mut results: Vec<ScenarioResult>, wall_ms: u64) -> RunResults {
        results.sort_by(|a, b| a.scenario_id.cmp(&b.scenario_id));
        let mut summary = RunSummary::from_results(&results);
        summary.wall_ms = wall_ms;
        RunResults {
            schema: SCHEMA.to_owned(),
            header,
            results,
            summary,
        }
    }
}

/// How a run compares with a baseline run (`mtp-cert run --baseline`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// Passed in the baseline, not now: `(id, baseline, now)`.
    pub regressions: Vec<(String, Verdict, Verdict)>,
    /// Did not pass in the baseline, pass now.
    pub fixed: Vec<String>,
    /// Did not pass in the baseline and end with the same verdict now.
    pub known: Vec<String>,
    /// Not in the baseline.
    pub new: Vec<String>,
}

impl Comparison {
    pub fn new(baseline: &[ScenarioResult], current: &[ScenarioResult]) -> Comparison {
        let base: BTreeMap<&str, Verdict> = baseline
            .iter()
            .map(|r| (r.scenario_id.as_str(), r.verdict))
            .collect();
        let mut c = Comparison::default();
        let mut cur: Vec<&ScenarioResult> = current.iter().collect();
        cur.sort_by(|a, b| a.scenario_id.cmp(&b.scenario_id));
        for r in cur {
            match base.get(r.scenario_id.as_str()) {
                None => c.new.push(r.scenario_id.clone()),
                Some(&old) if old == r.verdict => {
                    if old != Verdict::Pass && old != Verdict::NotApplicable {
                        c.known.push(r.scenario_id.clone());
                    }
                }
                Some(&Verdict::Pass) => {
                    c.regressions
                        .push((r.scenario_id.clone(), Verdict::Pass, r.verdict));
                }
                Some(_) if r.verdict == Verdict::Pass => c.fixed.push(r.scenario_id.clone()),
                Some(&old) => {
                    // A non-pass verdict changed into another non-pass verdict: treat as a
                    // regression only when it got worse (e.g. inconclusive → fail).
                    if rank(r.verdict) > rank(old) {
                        c.regressions.push((r.scenario_id.clone(), old, r.verdict));
                    } else {
                        c.known.push(r.scenario_id.clone());
                    }
                }
            }
        }
        c
    }

    /// Whether the ids that keep a run from certification are all known from the baseline.
    pub fn only_known_failures(&self, summary: &RunSummary) -> bool {
        summary
            .mandatory_not_passed
            .iter()
            .chain(&summary.errors)
            .all(|id| self.known.contains(id))
    }
}

/// Severity order used by [`Comparison`]: pass/n.a. < inconclusive < error < fail.
fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Pass | Verdict::NotApplicable => 0,
        Verdict::Inconclusive => 1,
        Verdict::Error => 2,
        Verdict::Fail => 3,
    }
}

/// Reading and writing `results.jsonl`.
pub mod jsonl {
    use super::{Record, RunHeader, RunSummary, SCHEMA, ScenarioResult};

    /// A line of a results file that is not a result record.
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    pub enum JsonlError {
        #[error("{line}: {message}")]
        BadLine { line: usize, message: String },
        #[error("1: not an mtp-cert results file: the first record must be the header")]
        NoHeader,
        #[error("1: unsupported results schema `{found}` (expected `{SCHEMA}`)")]
        Schema { found: String },
    }

    /// What a results file holds.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Contents {
        pub header: RunHeader,
        pub results: Vec<ScenarioResult>,
        pub summary: Option<RunSummary>,
        /// The last line was incomplete (a crash mid-write) and was ignored.
        pub truncated_tail: bool,
        /// Byte length of the well-formed prefix (every complete record); a resumed run
        /// truncates the file to this length before appending.
        pub valid_len: usize,
    }

    /// One record as a line (compact JSON + `\n`).
    pub fn line(record: &Record) -> String {
        // Serialising these plain data types cannot fail (no maps with non-string keys
        // other than unit enums, no non-finite floats).
        let mut s = serde_json::to_string(record).unwrap_or_else(|e| {
            format!("{{\"record\":\"invalid\",\"error\":{:?}}}", e.to_string())
        });
        s.push('\n');
        s
    }

    /// Parses a results file. The last line may be incomplete (no trailing newline, or not
    /// valid JSON): it is dropped and reported in [`Contents::truncated_tail`]. Any other bad
    /// line is an error. An empty file (or only an incomplete first line) gives `Ok(None)`.
    pub fn parse(text: &str) -> Result<Option<Contents>, JsonlError> {
        let mut header: Option<RunHeader> = None;
        let mut results = Vec::new();
        let mut summary = None;
        let mut truncated_tail = false;
        let mut valid_len = 0usize;
        let mut offset = 0usize;
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let n = lines.len();
        for (i, raw) in lines.iter().enumerate() {
            let lineno = i + 1;
            let last = i + 1 == n;
            let complete = raw.ends_with('\n');
            let body = raw.trim_end_matches(['\n', '\r']);
            offset += raw.len();
            if body.trim().is_empty() {
                if complete {
                    valid_len = offset;
                }
                continue;
            }
            let parsed: Result<Record, _> = serde_json::from_str(body);
            let record = match parsed {
                Ok(r) if complete => r,
                // The last line is incomplete or garbled: a crash mid-write.
                _ if last => {
                    truncated_tail = true;
                    break;
                }
                Ok(r) => r,
                Err(e) => {
                    return Err(JsonlError::BadLine {
                        line: lineno,
                        message: format!("not a result record: {e}"),
                    });
                }
            };
            match record {
                Record::Header(h) => {
                    if header.is_some() {
                        return Err(JsonlError::BadLine {
                            line: lineno,
                            message: "a second header record".into(),
                        });
                    }
                    if h.schema != SCHEMA {
                        return Err(JsonlError::Schema { found: h.schema });
                    }
                    header = Some(h);
                }
                Record::Scenario(r) => {
                    if header.is_none() {
                        return Err(JsonlError::NoHeader);
                    }
                    results.push(r);
                }
                Record::Summary(s) => {
                    if header.is_none() {
                        return Err(JsonlError::NoHeader);
                    }
                    summary = Some(s);
                }
            }
            valid_len = offset;
        }
        match header {
            Some(header) => Ok(Some(Contents {
                header,
                results,
                summary,
                truncated_tail,
                valid_len,
            })),
            None if results.is_empty() && valid_len == 0 => Ok(None),
            None => Err(JsonlError::NoHeader),
        }
    }
}
