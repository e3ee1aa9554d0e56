//! Loads and validates scenario files (`docs/scenarios.md`). Every problem is reported as
//! `file:line: message`; loading goes on after an error so that one pass lists them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use mtp_protocol::audit::events as audit_events;
use mtp_protocol::errors::ErrorCode;
use mtp_protocol::state_machine::{TxEvent, TxState};
use mtp_reports::model::{Layer, Level, OptionalAlgorithm, Role};

use super::catalogue;
use super::model::*;
use super::template::{Template, TextTemplate, ValuePath, is_var_name};
use super::yaml::{self, Diag, Node, NodeKind};

/// One problem in one file. `line` is 0 when the problem is about the file as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadDiagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for LoadDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Every problem found while loading.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub diagnostics: Vec<LoadDiagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl LoadError {
    fn one(file: &Path, line: usize, message: impl Into<String>) -> LoadError {
        LoadError {
            diagnostics: vec![LoadDiagnostic {
                file: file.to_owned(),
                line,
                col: 0,
                message: message.into(),
            }],
        }
    }
}

fn is_yaml(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e == "yaml" || e == "yml")
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, errs: &mut Vec<LoadDiagnostic>) {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            errs.push(LoadDiagnostic {
                file: dir.to_owned(),
                line: 0,
                col: 0,
                message: format!("cannot read folder: {e}"),
            });
            return;
        }
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        // `.hidden` entries, and `_parked` folders (known problems, kept out of the suite).
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') || (n.starts_with('_') && p.is_dir()));
        if hidden {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, out, errs);
        } else if is_yaml(&p) {
            out.push(p);
        }
    }
}

/// Loads every `*.yaml` / `*.yml` under the given files and folders (recursively, sorted),
/// validates each scenario and checks that ids are unique across files. Scenarios come back
/// sorted by id.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Scenario>, LoadError> {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect_files(p, &mut files, &mut diagnostics);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            diagnostics.push(LoadDiagnostic {
                file: p.clone(),
                line: 0,
                col: 0,
                message: "no such file or folder".into(),
            });
        }
    }
    let mut scenarios = Vec::new();
    for f in &files {
        match load_file(f) {
            Ok(s) => scenarios.extend(s),
            Err(e) => diagnostics.extend(e.diagnostics),
        }
    }
    let mut seen: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    for s in &scenarios {
        if let Some((file, line)) = seen.get(&s.id) {
            diagnostics.push(LoadDiagnostic {
                file: s.file.clone(),
                line: s.line,
                col: 0,
                message: format!(
                    "duplicate scenario id `{}` (also at {}:{line})",
                    s.id,
                    file.display()
                ),
            });
        } else {
            seen.insert(s.id.clone(), (s.file.clone(), s.line));
        }
    }
    if !diagnostics.is_empty() {
        return Err(LoadError { diagnostics });
    }
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scenarios)
}

/// Loads one file: a single scenario (a map) or a list of scenarios.
pub fn load_file(path: &Path) -> Result<Vec<Scenario>, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::one(path, 0, format!("{e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| LoadError::one(path, 1, "not UTF-8 text"))?;
    parse_str(&text, path)
}

/// Parses scenario YAML `text` as if read from `file`.
pub fn parse_str(text: &str, file: &Path) -> Result<Vec<Scenario>, LoadError> {
    let to_diag = |d: Diag| LoadDiagnostic {
        file: file.to_owned(),
        line: d.line,
        col: d.col,
        message: d.message,
    };
    let root = yaml::parse(text).map_err(|d| LoadError {
        diagnostics: vec![to_diag(d)],
    })?;
    let nodes: Vec<&Node> = match &root.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        NodeKind::Map(entries) if entries.is_empty() => {
            return Err(LoadError::one(file, 1, "empty file: no scenario"));
        }
        _ => vec![&root],
    };
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for n in nodes {
        let mut errs = Vec::new();
        if let Some(s) = scenario(n, file, &mut errs)
            && errs.is_empty()
        {
            out.push(s);
        }
        diags.extend(errs.into_iter().map(to_diag));
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(LoadError { diagnostics: diags })
    }
}

const SCENARIO_FIELDS: [&str; 13] = [
    "id",
    "title",
    "description",
    "requirements",
    "layer",
    "level",
    "tags",
    "ics",
    "timeout",
    "setup",
    "steps",
    "killed_by",
    "personas",
];

/// `AREA-TOPIC-NNN`: upper-case letters and digits in at least two dash-separated groups.
pub fn valid_scenario_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    id.len() <= 64
        && groups.len() >= 2
        && groups.iter().all(|g| {
            !g.is_empty()
                && g.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
        && id.as_bytes()[0].is_ascii_uppercase()
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Pushes the error of `r` and gives `None`, or gives the value.
fn ok<T>(r: Result<T, Diag>, errs: &mut Vec<Diag>) -> Option<T> {
    r.map_err(|d| errs.push(d)).ok()
}

fn scenario(node: &Node, file: &Path, errs: &mut Vec<Diag>) -> Option<Scenario> {
    let mut m = ok(node.map("a scenario"), errs)?;
    let id = m
        .required("id")
        .and_then(|n| {
            let id = n.str("id")?;
            if valid_scenario_id(id) {
                Ok(id.to_owned())
            } else {
                Err(Diag::at(
                    n,
                    format!("scenario id `{id}` must look like `DISC-OFFER-SIG-001` (upper-case letters and digits, dash-separated)"),
                ))
            }
        });
    let id = ok(id, errs);
    let title = ok(
        m.required("title")
            .and_then(|n| n.non_empty_str("title").map(str::to_owned)),
        errs,
    );
    let description = m
        .opt("description")
        .and_then(|n| ok(n.str("description").map(str::to_owned), errs));
    let requirements = ok(m.required("requirements").and_then(requirements), errs);
    let layer = ok(
        m.required("layer").and_then(|n| {
            let s = n.str("layer")?;
            Layer::from_name(s).ok_or_else(|| {
                let names: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
                Diag::at(
                    n,
                    format!("unknown layer `{s}` (one of: {})", names.join(", ")),
                )
            })
        }),
        errs,
    );
    let level = ok(
        m.required("level").and_then(|n| {
            let s = n.str("level")?;
            Level::from_keyword(s).ok_or_else(|| {
                Diag::at(n, format!("level must be MUST, SHOULD or MAY, found `{s}`"))
            })
        }),
        errs,
    );
    let tags = match m.opt("tags") {
        None => Vec::new(),
        Some(n) => ok(
            n.str_list("tags").and_then(|list| {
                let mut out = Vec::new();
                for (t, tn) in list {
                    if !valid_token(&t) {
                        return Err(Diag::at(
                            tn,
                            format!("tag `{t}`: lower-case letters, digits, `_` and `-` only"),
                        ));
                    }
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                Ok(out)
            }),
            errs,
        )
        .unwrap_or_default(),
    };
    let ics = match m.opt("ics") {
        None => Vec::new(),
        Some(n) => ok(ics_conditions(n), errs).unwrap_or_default(),
    };
    let timeout = m.opt("timeout").and_then(|n| {
        ok(
            n.duration("timeout").and_then(|d| {
                if d.is_zero() {
                    Err(Diag::at(n, "timeout must be positive"))
                } else {
                    Ok(d)
                }
            }),
            errs,
        )
    });
    let killed_by = match m.opt("killed_by") {
        None => Vec::new(),
        Some(n) => ok(
            n.str_list("killed_by").and_then(|list| {
                let mut out = Vec::new();
                for (f, fn_) in list {
                    if mtp_reference_agent::faults::find(&f).is_none() {
                        let names = mtp_reference_agent::faults::names();
                        return Err(Diag::at(
                            fn_,
                            format!(
                                "unknown reference-agent fault `{f}` (one of: {})",
                                names.join(", ")
                            ),
                        ));
                    }
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
                Ok(out)
            }),
            errs,
        )
        .unwrap_or_default(),
    };
    let personas = match m.opt("personas") {
        None => Vec::new(),
        Some(n) => ok(persona_specs(n), errs).unwrap_or_default(),
    };
    let mut vars: BTreeSet<String> = PREDEFINED_VARIABLES.iter().map(|s| s.to_string()).collect();
    let setup = match m.opt("setup") {
        None => Vec::new(),
        Some(n) => steps(n, "setup", &mut vars, errs),
    };
    let main = match m.required("steps") {
        Ok(n) => {
            let s = steps(n, "steps", &mut vars, errs);
            if s.is_empty() && matches!(n.kind, NodeKind::Seq(_)) {
                errs.push(Diag::at(n, "a scenario needs at least one step"));
            }
            s
        }
        Err(d) => {
            errs.push(d);
            Vec::new()
        }
    };
    if let Err(d) = m.finish(&SCENARIO_FIELDS) {
        errs.push(d);
    }
    Some(Scenario {
        id: id?,
        title: title?,
        description,
        requirements: requirements?,
        layer: layer?,
        level: level?,
        tags,
        ics,
        timeout,
        setup,
        steps: main,
        killed_by,
        personas,
        file: file.to_owned(),
        line: node.line,
    })
}

/// `personas: {counterparty: {tls: unbound_certificate}}` (PROFILE G-37).
fn persona_specs(n: &Node) -> Result<Vec<PersonaSpec>, Diag> {
    let NodeKind::Map(entries) = &n.kind else {
        return Err(Diag::at(
            n,
            "personas is a map: persona name → {tls: unbound_certificate}",
        ));
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        if !valid_token(&k.text) || k.text == "principal" {
            return Err(Diag::at(
                v,
                format!(
                    "persona `{}`: lower-case letters, digits, `_`, `-` (not `principal`, which has no server)",
                    k.text
                ),
            ));
        }
        let mut m = v.map(&format!("persona `{}`", k.text))?;
        let tls = match m.opt("tls") {
            None => None,
            Some(t) => {
                let s = t.str("tls")?;
                match TlsVariant::from_name(s) {
                    Some(TlsVariant::UnboundCertificate) => Some(TlsVariant::UnboundCertificate),
                    _ => {
                        return Err(Diag::at(
                            t,
                            format!(
                                "persona tls `{s}`: a persona server supports only unbound_certificate"
                            ),
                        ));
                    }
                }
            }
        };
        m.finish(&["tls"])?;
        out.push(PersonaSpec {
            name: k.text.clone(),
            tls,
            line: v.line,
        });
    }
    Ok(out)
}

fn requirements(n: &Node) -> Result<Vec<String>, Diag> {
    let list = n.str_list("requirements")?;
    if list.is_empty() {
        return Err(Diag::at(
            n,
            "a scenario must name at least one requirement id",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (id, rn) in list {
        if !catalogue::contains(&id) {
            return Err(Diag::at(
                rn,
                format!("unknown requirement id `{id}` (not in docs/requirements.yaml)"),
            ));
        }
        if out.contains(&id) {
            return Err(Diag::at(rn, format!("requirement `{id}` listed twice")));
        }
        out.push(id);
    }
    Ok(out)
}

fn ics_conditions(n: &Node) -> Result<Vec<IcsCondition>, Diag> {
    let mut m = n.map("ics")?;
    let mut out = Vec::new();
    for (k, v) in m.all() {
        let Some(field) = IcsField::from_name(&k.text) else {
            let names: Vec<&str> = IcsField::ALL.iter().map(|f| f.name()).collect();
            return Err(Diag::new(
                k.line,
                k.col,
                format!(
                    "unknown ICS field `{}` (one of: {})",
                    k.text,
                    names.join(", ")
                ),
            ));
        };
        let (op, list_node) = match &v.kind {
            NodeKind::Map(_) => {
                let mut om = v.map("an ICS condition")?;
                let keys: Vec<String> = om.keys().map(|k| k.text.clone()).collect();
                if keys.len() != 1 {
                    return Err(Diag::at(
                        v,
                        "an ICS condition map has exactly one of `all`, `any`, `none`",
                    ));
                }
                let op = match keys[0].as_str() {
                    "all" => IcsOp::All,
                    "any" => IcsOp::Any,
                    "none" => IcsOp::None,
                    other => {
                        return Err(Diag::at(
                            v,
                            format!("unknown ICS operator `{other}` (all, any, none)"),
                        ));
                    }
                };
                let ln = om.required(&keys[0])?;
                (op, ln)
            }
            _ => (IcsOp::All, v),
        };
        let values = list_node.str_list(field.name())?;
        if values.is_empty() {
            return Err(Diag::at(
                list_node,
                "an ICS condition needs at least one value",
            ));
        }
        for (val, vn) in &values {
            let known = match field {
                IcsField::Roles => Role::from_name(val).is_some(),
                IcsField::Algorithms => OptionalAlgorithm::from_name(val).is_some(),
                _ => true,
            };
            if !known {
                let names: Vec<&str> = match field {
                    IcsField::Roles => Role::ALL.iter().map(|r| r.name()).collect(),
                    _ => OptionalAlgorithm::ALL.iter().map(|a| a.name()).collect(),
                };
                return Err(Diag::at(
                    vn,
                    format!(
                        "unknown {} `{val}` (one of: {})",
                        field.name(),
                        names.join(", ")
                    ),
                ));
            }
        }
        out.push(IcsCondition {
            field,
            op,
            values: values.into_iter().map(|(v, _)| v).collect(),
            line: k.line,
        });
    }
    Ok(out)
}

fn steps(n: &Node, what: &str, vars: &mut BTreeSet<String>, errs: &mut Vec<Diag>) -> Vec<Step> {
    let Some(items) = ok(n.seq(what), errs) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match step(item) {
            Ok(s) => {
                check_vars(&s, vars, errs);
                out.push(s);
            }
            Err(d) => errs.push(d),
        }
    }
    out
}

const STEP_COMMON: [&str; 2] = ["description", "timeout"];

fn step(n: &Node) -> Result<Step, Diag> {
    let mut m = n.map("a step")?;
    let kinds: Vec<(String, usize, usize)> = m
        .keys()
        .filter(|k| !STEP_COMMON.contains(&k.text.as_str()))
        .map(|k| (k.text.clone(), k.line, k.col))
        .collect();
    let (kind_name, kl, kc) = match kinds.as_slice() {
        [] => {
            return Err(Diag::at(
                n,
                format!("a step needs a kind: one of {}", StepKind::NAMES.join(", ")),
            ));
        }
        [one] => one.clone(),
        [first, second, ..] => {
            let known_first = StepKind::NAMES.contains(&first.0.as_str());
            let (bad, l, c) = if known_first { second } else { first };
            return Err(Diag::new(
                *l,
                *c,
                if StepKind::NAMES.contains(&bad.as_str()) {
                    format!(
                        "a step has exactly one kind; found `{}` and `{bad}`",
                        first.0
                    )
                } else {
                    format!(
                        "unknown step kind `{bad}` (one of: {}; common fields: description, timeout)",
                        StepKind::NAMES.join(", ")
                    )
                },
            ));
        }
    };
    if !StepKind::NAMES.contains(&kind_name.as_str()) {
        return Err(Diag::new(
            kl,
            kc,
            format!(
                "unknown step kind `{kind_name}` (one of: {})",
                StepKind::NAMES.join(", ")
            ),
        ));
    }
    let description = match m.opt("description") {
        Some(d) => Some(d.str("description")?.to_owned()),
        None => None,
    };
    let timeout = match m.opt("timeout") {
        Some(t) => {
            let d = t.duration("timeout")?;
            if d.is_zero() {
                return Err(Diag::at(t, "timeout must be positive"));
            }
            Some(d)
        }
        None => None,
    };
    let body = m
        .get(&kind_name)
        .ok_or_else(|| Diag::at(n, "step kind vanished"))?;
    let kind = match kind_name.as_str() {
        "control" => StepKind::Control(control(body)?),
        "send" => StepKind::Send(send(body)?),
        "expect" => StepKind::Expect(expect(body)?),
        "expect_state" => StepKind::ExpectState(expect_state(body)?),
        "expect_audit" => StepKind::ExpectAudit(expect_audit(body)?),
        "capture" => StepKind::Capture(capture_step(body)?),
        "check_vectors" => StepKind::CheckVectors(check_vectors(body)?),
        "sleep" => {
            let d = body.duration("sleep")?;
            StepKind::Sleep(d)
        }
        _ => {
            return Err(Diag::new(
                kl,
                kc,
                format!("unknown step kind `{kind_name}`"),
            ));
        }
    };
    m.finish(&[])?;
    Ok(Step {
        line: n.line,
        description,
        timeout,
        kind,
    })
}

fn var_name(n: &Node, what: &str) -> Result<String, Diag> {
    let s = n.str(what)?;
    let s = s
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    if !is_var_name(s) {
        return Err(Diag::at(n, format!("`{s}` is not a variable name")));
    }
    Ok(s.to_owned())
}

fn path(n: &Node, what: &str) -> Result<ValuePath, Diag> {
    ValuePath::parse(n.str(what)?).map_err(|m| Diag::at(n, format!("{what}: {m}")))
}

/// `name: path` pairs.
fn capture_specs(n: &Node) -> Result<Vec<CaptureSpec>, Diag> {
    let mut m = n.map("capture")?;
    let mut out = Vec::new();
    for (k, v) in m.all() {
        if !is_var_name(&k.text) {
            return Err(Diag::new(
                k.line,
                k.col,
                format!("`{}` is not a variable name", k.text),
            ));
        }
        if PREDEFINED_VARIABLES.contains(&k.text.as_str()) {
            return Err(Diag::new(
                k.line,
                k.col,
                format!("`{}` is predefined and cannot be captured", k.text),
            ));
        }
        out.push(CaptureSpec {
            name: k.text.clone(),
            path: path(v, "capture path")?,
        });
    }
    if out.is_empty() {
        return Err(Diag::at(n, "capture needs at least one `name: path`"));
    }
    Ok(out)
}

fn template_map(n: &Node, what: &str) -> Result<Template, Diag> {
    let t = Template::from_node(n)?;
    if !t.is_map() {
        return Err(Diag::at(n, format!("{what} must be a map")));
    }
    Ok(t)
}

fn error_code(n: &Node) -> Result<u16, Diag> {
    let v = n.u64("error code")?;
    u16::try_from(v)
        .ok()
        .and_then(ErrorCode::from_u16)
        .map(|c| c as u16)
        .ok_or_else(|| {
            Diag::at(
                n,
                format!(
                    "unknown error code {v:04} (not in the registry of protocol/src/errors.rs)"
                ),
            )
        })
}

fn error_codes(n: &Node) -> Result<Vec<u16>, Diag> {
    let mut out = Vec::new();
    for c in n.seq_or_one("codes")? {
        let code = error_code(c)?;
        if !out.contains(&code) {
            out.push(code);
        }
    }
    Ok(out)
}

fn control(n: &Node) -> Result<ControlStep, Diag> {
    let (action_node, mut m) = match &n.kind {
        NodeKind::Scalar { .. } => (n, None),
        _ => {
            let mut m = n.map("control")?;
            (m.required("action")?, Some(m))
        }
    };
    let action = action_node.str("action")?;
    if !CONTROL_ACTIONS.contains(&action) {
        return Err(Diag::at(
            action_node,
            format!("unknown control action `{action}` (see protocol/wire/control.cddl)"),
        ));
    }
    let mut step = ControlStep {
        action: action.to_owned(),
        args: Template::empty_map(),
        capture: Vec::new(),
        expect_error: None,
        background: false,
    };
    if let Some(m) = m.as_mut() {
        if let Some(a) = m.opt("args") {
            step.args = template_map(a, "args")?;
        }
        if let Some(c) = m.opt("capture") {
            step.capture = capture_specs(c)?;
        }
        if let Some(e) = m.get("expect_error") {
            let codes = if e.is_null() {
                Vec::new()
            } else {
                let mut em = e.map("expect_error")?;
                let codes = match em.opt("codes") {
                    Some(c) => error_codes(c)?,
                    None => Vec::new(),
                };
                em.finish(&["codes"])?;
                codes
            };
            step.expect_error = Some(codes);
        }
        if let Some(b) = m.opt("background") {
            step.background = b.bool("background")?;
        }
    }
    if let Some(m) = m {
        m.finish(&["action", "args", "capture", "expect_error", "background"])?;
    }
    if step.background && (step.expect_error.is_some() || !step.capture.is_empty()) {
        return Err(Diag::at(
            n,
            "a `background` control step has no result: no `capture`, no `expect_error`",
        ));
    }
    if step.expect_error.is_some() && !step.capture.is_empty() {
        return Err(Diag::at(
            n,
            "a control step that expects an error has no result to capture",
        ));
    }
    Ok(step)
}

fn frame_type(n: &Node, what: &str) -> Result<String, Diag> {
    let s = n.str(what)?;
    let ok = s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(Diag::at(
            n,
            format!("frame type `{s}`: lower-case snake_case (e.g. `offer`, `mandate_draft`)"),
        ));
    }
    Ok(s.to_owned())
}

fn channel(n: &Node) -> Result<Channel, Diag> {
    let s = n.str("channel")?;
    if let Some(rest) = s.strip_prefix("grpc:") {
        let (svc, method) = rest.split_once('/').ok_or_else(|| {
            Diag::at(
                n,
                format!("channel `{s}`: write `grpc:Agent/<Method>` or `grpc:Index/<Method>`"),
            )
        })?;
        // `grpc:Index/<Method>@<persona>`: the IUT's call into that persona's index
        // (docs/scenarios.md; issue B-2).
        let (method, at) = match method.split_once('@') {
            Some((m, p)) if svc == "Index" => {
                let ok = p.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                    && p.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                if !ok {
                    return Err(Diag::at(
                        n,
                        format!(
                            "channel `{s}`: `@` names a persona (lower-case letters, digits, `_`, `-`)"
                        ),
                    ));
                }
                (m, Some(p))
            }
            _ => (method, None),
        };
        let (service, methods): (GrpcService, &[&str]) = match svc {
            "Agent" => (GrpcService::Agent, &AGENT_METHODS),
            "Index" => (GrpcService::Index, &INDEX_METHODS),
            _ => {
                return Err(Diag::at(
                    n,
                    format!("unknown gRPC service `{svc}` (Agent, Index)"),
                ));
            }
        };
        if !methods.contains(&method) {
            return Err(Diag::at(
                n,
                format!(
                    "unknown method `{svc}/{method}` (one of: {})",
                    methods.join(", ")
                ),
            ));
        }
        Ok(Channel::Grpc {
            service,
            method: match at {
                Some(p) => format!("{method}@{p}"),
                None => method.to_owned(),
            },
        })
    } else if let Some(subject) = s.strip_prefix("nats:") {
        let t = TextTemplate::parse(subject).map_err(|m| Diag::at(n, m))?;
        let bad = subject.is_empty()
            || subject.chars().any(|c| c.is_whitespace())
            || subject.split('.').any(str::is_empty);
        if bad {
            return Err(Diag::at(
                n,
                format!("NATS subject `{subject}`: dot-separated non-empty tokens, no spaces"),
            ));
        }
        Ok(Channel::Nats { subject: t })
    } else {
        Err(Diag::at(
            n,
            format!("channel `{s}` must start with `grpc:` or `nats:`"),
        ))
    }
}

fn fault(n: &Node) -> Result<Fault, Diag> {
    let (name, param, name_node): (String, Option<&Node>, &Node) = match &n.kind {
        NodeKind::Scalar { text, .. } => (text.clone(), None, n),
        NodeKind::Map(entries) if entries.len() == 1 => {
            let (k, v) = &entries[0];
            (k.text.clone(), if v.is_null() { None } else { Some(v) }, n)
        }
        _ => {
            return Err(Diag::at(
                n,
                "a fault is a name (`bad_signature`) or a one-key map (`delay_ms: 500`)",
            ));
        }
    };
    let no_param = |f: Fault| match param {
        None => Ok(f),
        Some(p) => Err(Diag::at(p, format!("fault `{name}` takes no parameter"))),
    };
    let need = |what: &str| {
        param.ok_or_else(|| Diag::at(name_node, format!("fault `{name}` needs {what}")))
    };
    // A parameter given as a map with one named field, or directly as a scalar.
    let field_param = |p: &Node, field: &str| -> Result<Node, Diag> {
        match &p.kind {
            NodeKind::Map(_) => {
                let mut m = p.map(&format!("fault `{name}`"))?;
                let v = m.required(field)?.clone();
                m.finish(&[field])?;
                Ok(v)
            }
            _ => Ok(p.clone()),
        }
    };
    Ok(match name.as_str() {
        "missing_signature" => no_param(Fault::MissingSignature)?,
        "bad_signature" => no_param(Fault::BadSignature)?,
        "wrong_algorithm" => no_param(Fault::WrongAlgorithm)?,
        "reorder_keys" => no_param(Fault::ReorderKeys)?,
        "non_shortest_int" => no_param(Fault::NonShortestInt)?,
        "non_shortest_float" => no_param(Fault::NonShortestFloat)?,
        "indefinite_length" => no_param(Fault::IndefiniteLength)?,
        "duplicate_key" => no_param(Fault::DuplicateKey)?,
        "expired" => no_param(Fault::Expired)?,
        "authority_out_of_scope" => no_param(Fault::AuthorityOutOfScope)?,
        "revoked_credential" => no_param(Fault::RevokedCredential)?,
        "replay" => no_param(Fault::Replay)?,
        "wrong_state" => no_param(Fault::WrongState)?,
        "drop_reply" => no_param(Fault::DropReply)?,
        "reused_iv" => no_param(Fault::ReusedIv)?,
        "tls" => {
            let p = need("a TLS profile variant (`tls: no_client_certificate`)")?;
            let v = field_param(p, "variant")?;
            let s = v.str("tls variant")?;
            Fault::Tls(
                crate::scenario::model::TlsVariant::from_name(s).ok_or_else(|| {
                    let names: Vec<&str> = crate::scenario::model::TlsVariant::ALL
                        .iter()
                        .map(|v| v.name())
                        .collect();
                    Diag::at(
                        &v,
                        format!("unknown tls variant `{s}` (one of: {})", names.join(", ")),
                    )
                })?,
            )
        }
        "frame_hash" => {
            let p = need("a hash algorithm (`frame_hash: sha3_256`)")?;
            let v = field_param(p, "algorithm")?;
            let s = v.str("frame_hash algorithm")?;
            Fault::FrameHash(
                crate::scenario::model::FrameHashAlg::from_name(s).ok_or_else(|| {
                    let names: Vec<&str> = crate::scenario::model::FrameHashAlg::ALL
                        .iter()
                        .map(|v| v.name())
                        .collect();
                    Diag::at(
                        &v,
                        format!(
                            "unknown frame_hash algorithm `{s}` (one of: {})",
                            names.join(", ")
                        ),
                    )
                })?,
            )
        }
        "tamper_after_signing" => {
            let p = need("the field to change (`tamper_after_signing: {field: price.amount}`)")?;
            let f = field_param(p, "field")?;
            Fault::TamperAfterSigning {
                field: path(&f, "tamper_after_signing field")?,
            }
        }
        "delay_ms" => {
            let p = need("a number of milliseconds (`delay_ms: 500`)")?;
            let ms = p.u64("delay_ms")?;
            if ms > 3_600_000 {
                return Err(Diag::at(p, "delay_ms is at most one hour"));
            }
            Fault::DelayMs(ms)
        }
        "unknown_field" => Fault::UnknownField {
            name: match param {
                None => "x-unknown".to_owned(),
                Some(p) => field_param(p, "name")?
                    .non_empty_str("unknown_field name")?
                    .to_owned(),
            },
        },
        "malformed_uuid" => Fault::MalformedUuid {
            field: match param {
                None => None,
                Some(p) => Some(path(&field_param(p, "field")?, "malformed_uuid field")?),
            },
        },
        "reused_uuid" => Fault::ReusedUuid {
            from: match param {
                None => None,
                Some(p) => Some(var_name(&field_param(p, "from")?, "reused_uuid from")?),
            },
        },
        "protocol_version" => {
            let p = need("a version list (`protocol_version: \"2.0.0\"`; `\"\"`: none)")?;
            let v = p.str("protocol_version")?;
            if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(Diag::at(p, "protocol_version must be printable ASCII"));
            }
            Fault::ProtocolVersion(v.to_owned())
        }
        "alg_profile" => {
            let p = need("a profile (`alg_profile: {signature: [ML-DSA-87, ML-DSA-65]}`)")?;
            let NodeKind::Map(entries) = &p.kind else {
                return Err(Diag::at(
                    p,
                    "alg_profile is a map: function (signature, kem, symmetric, hash) → list of labels",
                ));
            };
            let mut functions = Vec::new();
            for (k, v) in entries {
                let labels = v
                    .seq("alg_profile labels")?
                    .iter()
                    .map(|l| l.str("algorithm label").map(str::to_owned))
                    .collect::<Result<Vec<_>, _>>()?;
                functions.push((k.text.clone(), labels));
            }
            Fault::AlgProfile(functions)
        }
        "sign_with" => {
            const ALGS: [&str; 4] = ["SLH-DSA-SHA2-192s", "ML-DSA-87", "ML-DSA-65", "ML-DSA-44"];
            let p = need("an algorithm (`sign_with: SLH-DSA-SHA2-192s`)")?;
            let a = p.str("sign_with")?;
            if !ALGS.contains(&a) {
                return Err(Diag::at(
                    p,
                    format!("sign_with: one of {}", ALGS.join(", ")),
                ));
            }
            Fault::SignWith(a.to_owned())
        }
        other => {
            return Err(Diag::at(
                name_node,
                format!(
                    "unknown fault `{other}` (one of: {})",
                    Fault::NAMES.join(", ")
                ),
            ));
        }
    })
}

fn send(n: &Node) -> Result<SendStep, Diag> {
    let mut m = n.map("send")?;
    let frame = frame_type(m.required("frame")?, "frame")?;
    let channel = channel(m.required("channel")?)?;
    let template = match m.opt("template") {
        Some(t) => template_map(t, "template")?,
        None => Template::empty_map(),
    };
    let mut faults: Vec<Fault> = Vec::new();
    if let Some(fl) = m.opt("faults") {
        for f in fl.seq_or_one("faults")? {
            let parsed = fault(f)?;
            if faults.iter().any(|x| x.name() == parsed.name()) {
                return Err(Diag::at(
                    f,
                    format!("fault `{}` given twice", parsed.name()),
                ));
            }
            if parsed.is_signature_fault()
                && let Some(other) = faults.iter().find(|x| x.is_signature_fault())
            {
                return Err(Diag::at(
                    f,
                    format!(
                        "`{}` and `{}` both decide the signature; use one",
                        other.name(),
                        parsed.name()
                    ),
                ));
            }
            faults.push(parsed);
        }
    }
    let persona = match m.opt("as") {
        Some(p) => {
            let s = p.str("as")?;
            if !valid_token(s) {
                return Err(Diag::at(
                    p,
                    format!("persona `{s}`: lower-case letters, digits, `_`, `-`"),
                ));
            }
            s.to_owned()
        }
        None => "counterparty".to_owned(),
    };
    m.finish(&["frame", "channel", "template", "faults", "as"])?;
    let is_nats = matches!(channel, Channel::Nats { .. });
    for f in &faults {
        let wrong = match f {
            Fault::Tls(_) | Fault::FrameHash(_) => is_nats,
            Fault::ReusedIv => !is_nats,
            _ => false,
        };
        if wrong {
            let need = if is_nats { "a grpc:" } else { "a nats:" };
            return Err(Diag::at(
                n,
                format!("fault `{}` needs {need} channel", f.name()),
            ));
        }
    }
    Ok(SendStep {
        frame,
        channel,
        template,
        faults,
        persona,
    })
}

fn within(m: &mut yaml::MapReader<'_>) -> Result<Option<std::time::Duration>, Diag> {
    match m.opt("within") {
        Some(w) => {
            let d = w.duration("within")?;
            if d.is_zero() {
                return Err(Diag::at(w, "within must be positive"));
            }
            Ok(Some(d))
        }
        None => Ok(None),
    }
}

fn expect(n: &Node) -> Result<ExpectStep, Diag> {
    let mut m = n.map("expect")?;
    let forms: Vec<&str> = ["message", "response", "error", "silence"]
        .into_iter()
        .filter(|k| m.has(k))
        .collect();
    let form = match forms.as_slice() {
        [one] => *one,
        [] => {
            return Err(Diag::at(
                n,
                "expect needs one of `message`, `response`, `error`, `silence`",
            ));
        }
        [a, b, ..] => {
            return Err(Diag::at(
                n,
                format!(
                    "expect has exactly one of `message`, `response`, `error`, `silence` (found `{a}` and `{b}`)"
                ),
            ));
        }
    };
    let matches = match m.opt("match") {
        Some(t) => Some(Template::from_node(t)?),
        None => None,
    };
    let what = match form {
        "message" => Expectation::Message {
            frame: frame_type(m.required("message")?, "message")?,
            matches,
        },
        "response" => Expectation::Response {
            frame: frame_type(m.required("response")?, "response")?,
            matches,
        },
        "error" => {
            let e = m
                .get("error")
                .ok_or_else(|| Diag::at(n, "missing `error`"))?;
            let mut codes = Vec::new();
            let mut statuses = Vec::new();
            match &e.kind {
                _ if e.is_null() => {}
                NodeKind::Scalar { text, .. } if text == "any" => {}
                _ => {
                    let mut em = e.map("expect error")?;
                    if let Some(c) = em.opt("codes") {
                        codes = error_codes(c)?;
                    }
                    if let Some(s) = em.opt("grpc_status") {
                        for (st, sn) in s.str_list("grpc_status")? {
                            if !GRPC_STATUSES.contains(&st.as_str()) {
                                return Err(Diag::at(
                                    sn,
                                    format!(
                                        "unknown gRPC status `{st}` (e.g. INVALID_ARGUMENT, FAILED_PRECONDITION)"
                                    ),
                                ));
                            }
                            if !statuses.contains(&st) {
                                statuses.push(st);
                            }
                        }
                    }
                    em.finish(&["codes", "grpc_status"])?;
                }
            }
            if matches.is_some() {
                return Err(Diag::at(
                    n,
                    "`match` applies to `message` and `response`, not to `error`",
                ));
            }
            Expectation::Error {
                codes,
                grpc_status: statuses,
            }
        }
        _ => {
            let s = m.required("silence")?;
            if !s.bool("silence")? {
                return Err(Diag::at(s, "write `silence: true`"));
            }
            if matches.is_some() {
                return Err(Diag::at(
                    n,
                    "`match` applies to `message` and `response`, not to `silence`",
                ));
            }
            Expectation::Silence
        }
    };
    let channel = match m.opt("channel") {
        Some(c) => Some(channel(c)?),
        None => None,
    };
    let within = within(&mut m)?;
    let capture = match m.opt("capture") {
        Some(c) => capture_specs(c)?,
        None => Vec::new(),
    };
    if matches!(what, Expectation::Silence) && !capture.is_empty() {
        return Err(Diag::at(n, "silence has nothing to capture"));
    }
    m.finish(&[
        "message", "response", "error", "silence", "match", "channel", "within", "capture",
    ])?;
    Ok(ExpectStep {
        what,
        channel,
        within,
        capture,
    })
}

fn state_name(n: &Node, what: &str) -> Result<String, Diag> {
    let s = n.str(what)?;
    TxState::from_name(s)
        .map(|st| st.name().to_owned())
        .ok_or_else(|| {
            let names: Vec<&str> = TxState::ALL.iter().map(|s| s.name()).collect();
            Diag::at(
                n,
                format!(
                    "unknown transaction state `{s}` (one of: {})",
                    names.join(", ")
                ),
            )
        })
}

fn text_template(n: &Node, what: &str) -> Result<TextTemplate, Diag> {
    TextTemplate::parse(n.non_empty_str(what)?).map_err(|m| Diag::at(n, m))
}

fn expect_state(n: &Node) -> Result<ExpectStateStep, Diag> {
    let mut m = n.map("expect_state")?;
    let transaction = text_template(m.required("transaction")?, "transaction")?;
    let state = state_name(m.required("state")?, "state")?;
    let history = match m.opt("history") {
        Some(h) => Some(
            h.seq("history")?
                .iter()
                .map(|s| state_name(s, "history"))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    if let Some(h) = &history
        && h.last() != Some(&state)
    {
        return Err(Diag::at(n, "history must end with `state`"));
    }
    let within = within(&mut m)?;
    m.finish(&["transaction", "state", "history", "within"])?;
    Ok(ExpectStateStep {
        transaction,
        state,
        history,
        within,
    })
}

fn known_audit_event(e: &str) -> bool {
    TxEvent::from_name(e).is_some()
        || [
            audit_events::MESSAGE_SENT,
            audit_events::MESSAGE_RECEIVED,
            audit_events::SIGNATURE_CHECKED,
            audit_events::SETTLEMENT_OPERATION,
            audit_events::ERROR,
            // Verifying → Disputed starts the Terms' dispute procedure (SPEC-II-D-05).
            "dispute_procedure_started",
        ]
        .contains(&e)
}

fn expect_audit(n: &Node) -> Result<ExpectAuditStep, Diag> {
    let mut m = n.map("expect_audit")?;
    let transaction = match m.opt("transaction") {
        Some(t) => Some(text_template(t, "transaction")?),
        None => None,
    };
    let mut events = Vec::new();
    if let Some(e) = m.opt("events") {
        for (ev, en) in e.str_list("events")? {
            if !known_audit_event(&ev) {
                return Err(Diag::at(
                    en,
                    format!(
                        "unknown audit event `{ev}` (PROFILE G-18 / G-42 names, e.g. `negotiation_initiated`, `fatal_error.1100`, `signature_checked`)"
                    ),
                ));
            }
            events.push(ev);
        }
    }
    let codes = match m.opt("codes") {
        Some(c) => error_codes(c)?,
        None => Vec::new(),
    };
    let chain_verifies = match m.opt("chain_verifies") {
        Some(c) => c.bool("chain_verifies")?,
        None => true,
    };
    // SPEC-IV-B-02: every transition entry complete and replaying the state history.
    let transitions_complete = match m.opt("transitions_complete") {
        Some(c) => c.bool("transitions_complete")?,
        None => false,
    };
    if transitions_complete && transaction.is_none() {
        return Err(Diag::at(
            n,
            "`transitions_complete` needs a `transaction` (the agent trail has no transitions)",
        ));
    }
    let within = within(&mut m)?;
    m.finish(&[
        "transaction",
        "events",
        "codes",
        "chain_verifies",
        "transitions_complete",
        "within",
    ])?;
    if events.is_empty() && codes.is_empty() && !chain_verifies && !transitions_complete {
        return Err(Diag::at(
            n,
            "expect_audit checks nothing: give `events`, `codes` or `chain_verifies: true`",
        ));
    }
    Ok(ExpectAuditStep {
        transaction,
        events,
        codes,
        chain_verifies,
        transitions_complete,
        within,
    })
}

fn capture_step(n: &Node) -> Result<CaptureStep, Diag> {
    let specs = capture_specs(n)?;
    let mut m = n.map("capture")?;
    let entries = m.all();
    let mut values = Vec::new();
    for (spec, (_, vn)) in specs.into_iter().zip(entries) {
        let root = spec
            .path
            .root()
            .and_then(CaptureRoot::from_name)
            .ok_or_else(|| {
                Diag::at(
                    vn,
                    format!(
                        "capture path `{}` must start with `received`, `control` or `sent`",
                        spec.path
                    ),
                )
            })?;
        values.push((
            root,
            CaptureSpec {
                name: spec.name,
                path: spec.path.tail(),
            },
        ));
    }
    Ok(CaptureStep { values })
}

fn check_vectors(n: &Node) -> Result<CheckVectorsStep, Diag> {
    let mut m = n.map("check_vectors")?;
    let fnode = m.required("family")?;
    let family = fnode.str("family")?.to_owned();
    if !valid_token(&family) {
        return Err(Diag::at(
            fnode,
            format!("vector family `{family}`: a folder name of vectors/ (lower-case)"),
        ));
    }
    let mut ids = Vec::new();
    if let Some(i) = m.opt("ids") {
        for (id, idn) in i.str_list("ids")? {
            let ok = id.strip_prefix(&format!("{family}/")).is_some_and(|rest| {
                !rest.is_empty() && !rest.contains("..") && !rest.starts_with('/')
            });
            if !ok {
                return Err(Diag::at(
                    idn,
                    format!("vector id `{id}` must be `{family}/<name>`"),
                ));
            }
            ids.push(id);
        }
    }
    let operations = match m.opt("operations") {
        Some(o) => o
            .str_list("operations")?
            .into_iter()
            .map(|(s, on)| {
                VectorOp::from_name(&s).ok_or_else(|| {
                    Diag::at(
                        on,
                        format!("unknown vector operation `{s}` (encode, parse, sign, verify)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => VectorOp::ALL.to_vec(),
    };
    m.finish(&["family", "ids", "operations"])?;
    Ok(CheckVectorsStep {
        family,
        ids,
        operations,
    })
}

/// Every `${name}` must be predefined or captured by an earlier step; records the names this
/// step captures.
fn check_vars(step: &Step, defined: &mut BTreeSet<String>, errs: &mut Vec<Diag>) {
    let mut used: Vec<String> = Vec::new();
    let mut captured: Vec<String> = Vec::new();
    match &step.kind {
        StepKind::Control(c) => {
            c.args.vars(&mut used);
            captured.extend(c.capture.iter().map(|c| c.name.clone()));
        }
        StepKind::Send(s) => {
            s.template.vars(&mut used);
            if let Channel::Nats { subject } = &s.channel {
                used.extend(subject.vars().map(str::to_owned));
            }
            for f in &s.faults {
                if let Fault::ReusedUuid { from: Some(v) } = f {
                    used.push(v.clone());
                }
            }
        }
        StepKind::Expect(e) => {
            if let Expectation::Message {
                matches: Some(t), ..
            }
            | Expectation::Response {
                matches: Some(t), ..
            } = &e.what
            {
                t.vars(&mut used);
            }
            if let Some(Channel::Nats { subject }) = &e.channel {
                used.extend(subject.vars().map(str::to_owned));
            }
            captured.extend(e.capture.iter().map(|c| c.name.clone()));
        }
        StepKind::ExpectState(s) => used.extend(s.transaction.vars().map(str::to_owned)),
        StepKind::ExpectAudit(a) => {
            if let Some(t) = &a.transaction {
                used.extend(t.vars().map(str::to_owned));
            }
        }
        StepKind::Capture(c) => captured.extend(c.values.iter().map(|(_, s)| s.name.clone())),
        StepKind::CheckVectors(_) | StepKind::Sleep(_) => {}
    }
    for u in used {
        if !defined.contains(&u) {
            errs.push(Diag::new(
                step.line,
                0,
                format!("`${{{u}}}` is used before any step captures it"),
            ));
        }
    }
    defined.extend(captured);
}
