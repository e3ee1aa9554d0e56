//! The IUT description: where the implementation under test listens, how the harness
//! authenticates to it, what it claims to support (the ICS), and the default timeouts.
//! `mtp-cert ics-template` prints [`TEMPLATE`]; the format is documented there and in
//! `docs/scenarios.md`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mtp_reports::model::{Ics, IutSummary, OptionalAlgorithm, Role};

use crate::scenario::yaml::{self, Diag, Node};

/// A commented IUT description, as printed by `mtp-cert ics-template`. It parses as is; the
/// fingerprints are placeholders to replace.
pub const TEMPLATE: &str = r#"# mtp-cert IUT description: tells the harness how to reach the implementation under test
# (IUT) and what it claims to support. Validate with `mtp-cert run --iut FILE --suite smoke`.

# Free text: product and version, as it should appear in the reports.
name: example-agent 0.1.0

# Where the IUT listens. For `mtp-cert run --jobs N` give a list of endpoint maps instead,
# one per identical IUT instance (`endpoints: [{sync: ..., control: ...}, {...}]`): a
# scenario resets the IUT's whole protocol state, so each instance runs one scenario at a
# time, and the run uses as many jobs as there are instances.
endpoints:
  # MTPSync (gRPC over mutual TLS 1.3, PROFILE G-09/G-37): the address the harness dials, and
  # the SHA-256 fingerprint of the IUT's self-signed ML-DSA certificate (`sha256:<64 hex>`).
  sync:
    address: grpcs://127.0.0.1:7443
    fingerprint: sha256:0000000000000000000000000000000000000000000000000000000000000000
  # MTPAsync (NATS JetStream, PROFILE G-06). Optional: remove the block if the IUT has no
  # asynchronous transport; scenarios that need it then end inconclusive. The subject
  # prefix is the IUT's inbox prefix; an `async.subject_prefix` in the IUT's `hello`
  # answer takes precedence.
  async:
    url: nats://127.0.0.1:4222
    subject_prefix: mtp
  # The test-control interface (docs/iut-contract.md): address and certificate fingerprint.
  control:
    address: grpcs://127.0.0.1:7444
    fingerprint: sha256:0000000000000000000000000000000000000000000000000000000000000000

# The harness's own TLS identity for the test-control channel, which the IUT must pin.
# Either `generate: true` (a fixed, documented identity: every mtp-cert derives the same
# certificate, so the fingerprint it prints can be pinned once) or `seed_file: <path>`: a
# file holding 64 hex digits (a 32-byte seed), relative to this file.
harness_identity:
  generate: true

# Implementation Conformance Statement: what the IUT supports. Scenarios whose `ics`
# preconditions are not met are reported as not applicable.
ics:
  # requester, provider, index, registry, verifier
  roles: [requester, provider]
  # Optional algorithms (BIND VI, X): ML-DSA-87, ML-KEM-1024, SHA3-256. The mandatory ones
  # (ML-DSA-65, ML-KEM-768, SHA-256, AES-256-GCM) are not listed.
  algorithms: []
  # Price units it negotiates in.
  price_units: [USD]
  # Verification methods (SPEC III-F) it implements.
  verification_methods: [automated]
  # Extension identifiers (SPEC XI) it understands.
  extensions: []
  # Settlement rails it can use.
  settlement_rails: [test]

# Defaults; a scenario or a step can set its own.
timeouts:
  step: 10s       # one step (an expectation's `within` when it gives none)
  scenario: 120s  # a whole scenario
  connect: 5s     # a TLS connection to the IUT
"#;

/// A `host:port` with its URL scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// An endpoint reached over TLS with a pinned certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedEndpoint {
    pub address: Address,
    /// SHA-256 of the DER certificate.
    pub fingerprint: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsEndpoint {
    pub url: Address,
    pub subject_prefix: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub sync: PinnedEndpoint,
    pub nats: Option<NatsEndpoint>,
    pub control: PinnedEndpoint,
}

/// The harness's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HarnessIdentity {
    /// Derived by the harness.
    Generated,
    /// From a 32-byte seed read from `path`.
    SeedFile { path: PathBuf, seed: [u8; 32] },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub step: Duration,
    pub scenario: Duration,
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            step: Duration::from_secs(10),
            scenario: Duration::from_secs(120),
            connect: Duration::from_secs(5),
        }
    }
}

/// A validated IUT description.
#[derive(Clone, Debug, PartialEq)]
pub struct IutDescription {
    pub name: String,
    /// The (first) instance.
    pub endpoints: Endpoints,
    /// Every identical IUT instance, the first included (`endpoints` written as a list of
    /// maps; a single map gives one instance).
    pub instances: Vec<Endpoints>,
    pub harness_identity: HarnessIdentity,
    pub ics: Ics,
    pub timeouts: Timeouts,
    /// The file it was read from.
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
}

impl IutDescription {
    /// How many identical IUT instances the description lists (at least 1).
    pub fn instance_count(&self) -> usize {
        self.instances.len().max(1)
    }

    pub fn summary(&self) -> IutSummary {
        IutSummary {
            name: self.name.clone(),
            description_sha256: self.sha256.clone(),
        }
    }
}

/// Problems with an IUT description, each `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct IutError {
    pub file: PathBuf,
    pub problems: Vec<Diag>,
}

impl fmt::Display for IutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if d.line == 0 {
                write!(f, "{}: {}", self.file.display(), d.message)?;
            } else {
                write!(f, "{}:{}: {}", self.file.display(), d.line, d.message)?;
            }
        }
        Ok(())
    }
}

/// Reads and validates an IUT description file.
pub fn load(path: &Path) -> Result<IutDescription, IutError> {
    let err = |line, msg: String| IutError {
        file: path.to_owned(),
        problems: vec![Diag::new(line, 0, msg)],
    };
    let bytes = std::fs::read(path).map_err(|e| err(0, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| err(1, "not UTF-8 text".into()))?;
    parse(text, path)
}

/// Parses an IUT description as if read from `path` (relative paths inside it are resolved
/// against `path`'s folder).
pub fn parse(text: &str, path: &Path) -> Result<IutDescription, IutError> {
    let fail = |problems: Vec<Diag>| IutError {
        file: path.to_owned(),
        problems,
    };
    let root = yaml::parse(text).map_err(|d| fail(vec![d]))?;
    let mut problems = Vec::new();
    let desc = describe(&root, text, path, &mut problems);
    match desc {
        Some(d) if problems.is_empty() => Ok(d),
        _ => Err(fail(problems)),
    }
}

fn ok<T>(r: Result<T, Diag>, problems: &mut Vec<Diag>) -> Option<T> {
    r.map_err(|d| problems.push(d)).ok()
}

fn describe(
    root: &Node,
    text: &str,
    path: &Path,
    problems: &mut Vec<Diag>,
) -> Option<IutDescription> {
    let mut m = ok(root.map("the IUT description"), problems)?;
    let name = ok(
        m.required("name")
            .and_then(|n| n.non_empty_str("name").map(str::to_owned)),
        problems,
    );
    let endpoints = ok(m.required("endpoints").and_then(endpoint_list), problems);
    let harness_identity = ok(
        m.required("harness_identity")
            .and_then(|n| harness_identity(n, path)),
        problems,
    );
    let ics = ok(m.required("ics").and_then(ics), problems);
    let timeouts = match m.opt("timeouts") {
        Some(t) => ok(timeouts(t), problems),
        None => Some(Timeouts::default()),
    };
    if let Err(d) = m.finish(&["name", "endpoints", "harness_identity", "ics", "timeouts"]) {
        problems.push(d);
    }
    let instances = endpoints?;
    Some(IutDescription {
        name: name?,
        endpoints: instances.first()?.clone(),
        instances,
        harness_identity: harness_identity?,
        ics: ics?,
        timeouts: timeouts?,
        path: path.to_owned(),
        sha256: hex::encode(mtp_protocol::crypto::sha256(text.as_bytes())),
    })
}

fn address(n: &Node, what: &str, schemes: &[&str]) -> Result<Address, Diag> {
    let s = n.str(what)?;
    let bad = |why: &str| {
        Diag::at(
            n,
            format!("{what} `{s}`: {why} (write `{}://host:port`)", schemes[0]),
        )
    };
    let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if !schemes.contains(&scheme) {
        return Err(bad(&format!("scheme must be {}", schemes.join(" or "))));
    }
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r.split_once("]:").ok_or_else(|| bad("bad IPv6 address"))?;
        (h, p)
    } else {
        rest.rsplit_once(':').ok_or_else(|| bad("no port"))?
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(bad("bad host"));
    }
    let port: u16 = port
        .trim_end_matches('/')
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("bad port"))?;
    Ok(Address {
        scheme: scheme.to_owned(),
        host: host.to_owned(),
        port,
    })
}

/// `sha256:<64 hex>` (either case).
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let h = s.strip_prefix("sha256:")?;
    let bytes = hex::decode(h).ok()?;
    bytes.try_into().ok()
}

fn pinned(n: &Node, what: &str) -> Result<PinnedEndpoint, Diag> {
    let mut m = n.map(what)?;
    let address = address(m.required("address")?, "address", &["grpcs"])?;
    let fnode = m.required("fingerprint")?;
    let fingerprint = parse_fingerprint(fnode.str("fingerprint")?).ok_or_else(|| {
        Diag::at(
            fnode,
            "fingerprint must be `sha256:` followed by 64 hex digits (SHA-256 of the DER certificate)",
        )
    })?;
    m.finish(&["address", "fingerprint"])?;
    Ok(PinnedEndpoint {
        address,
        fingerprint,
    })
}

/// `endpoints`: one map, or a non-empty list of maps (identical instances).
fn endpoint_list(n: &Node) -> Result<Vec<Endpoints>, Diag> {
    match &n.kind {
        yaml::NodeKind::Seq(items) => {
            if items.is_empty() {
                return Err(Diag::at(n, "endpoints: the list of instances is empty"));
            }
            let list = items.iter().map(endpoints).collect::<Result<Vec<_>, _>>()?;
            for (i, e) in list.iter().enumerate() {
                if let Some(j) = list[..i].iter().position(|o| {
                    o.control.address == e.control.address || o.sync.address == e.sync.address
                }) {
                    return Err(Diag::at(
                        &items[i],
                        format!(
                            "endpoints: instance {} uses an address of instance {}",
                            i + 1,
                            j + 1
                        ),
                    ));
                }
            }
            Ok(list)
        }
        _ => Ok(vec![endpoints(n)?]),
    }
}

fn endpoints(n: &Node) -> Result<Endpoints, Diag> {
    let mut m = n.map("endpoints")?;
    let sync = pinned(m.required("sync")?, "endpoints.sync")?;
    let nats = match m.opt("async") {
        Some(a) => {
            let mut am = a.map("endpoints.async")?;
            let url = address(am.required("url")?, "url", &["nats", "tls"])?;
            let pn = am.required("subject_prefix")?;
            let prefix = pn.str("subject_prefix")?;
            let valid = !prefix.is_empty()
                && prefix.split('.').all(|t| {
                    !t.is_empty()
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
            if !valid {
                return Err(Diag::at(
                    pn,
                    format!(
                        "subject_prefix `{prefix}`: dot-separated tokens of letters, digits, `_`, `-`"
                    ),
                ));
            }
            am.finish(&["url", "subject_prefix"])?;
            Some(NatsEndpoint {
                url,
                subject_prefix: prefix.to_owned(),
            })
        }
        None => None,
    };
    let control = pinned(m.required("control")?, "endpoints.control")?;
    m.finish(&["sync", "async", "control"])?;
    Ok(Endpoints {
        sync,
        nats,
        control,
    })
}

fn harness_identity(n: &Node, path: &Path) -> Result<HarnessIdentity, Diag> {
    let mut m = n.map("harness_identity")?;
    let generate = m.opt("generate");
    let seed_file = m.opt("seed_file");
    let id = match (generate, seed_file) {
        (Some(g), None) => {
            if !g.bool("generate")? {
                return Err(Diag::at(g, "write `generate: true`, or give `seed_file`"));
            }
            HarnessIdentity::Generated
        }
        (None, Some(f)) => {
            let rel = f.non_empty_str("seed_file")?;
            let full = path
                .parent()
                .map(|d| d.join(rel))
                .unwrap_or_else(|| PathBuf::from(rel));
            let text = std::fs::read_to_string(&full)
                .map_err(|e| Diag::at(f, format!("seed_file `{}`: {e}", full.display())))?;
            let seed = hex::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    Diag::at(
                        f,
                        format!(
                            "seed_file `{}` must hold 64 hex digits (a 32-byte seed)",
                            full.display()
                        ),
                    )
                })?;
            HarnessIdentity::SeedFile { path: full, seed }
        }
        (Some(_), Some(f)) => {
            return Err(Diag::at(
                f,
                "give either `generate: true` or `seed_file`, not both",
            ));
        }
        (None, None) => {
            return Err(Diag::at(
                n,
                "harness_identity needs `generate: true` or `seed_file: <path>`",
            ));
        }
    };
    m.finish(&["generate", "seed_file"])?;
    Ok(id)
}

fn string_list(n: Option<&Node>, what: &str) -> Result<Vec<String>, Diag> {
    let mut out: Vec<String> = Vec::new();
    if let Some(n) = n {
        for (s, sn) in n.str_list(what)? {
            if out.contains(&s) {
                return Err(Diag::at(sn, format!("`{s}` listed twice in {what}")));
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn ics(n: &Node) -> Result<Ics, Diag> {
    let mut m = n.map("ics")?;
    let rn = m.required("roles")?;
    let mut roles = Vec::new();
    for (r, node) in rn.str_list("roles")? {
        let role = Role::from_name(&r).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            Diag::at(
                node,
                format!("unknown role `{r}` (one of: {})", names.join(", ")),
            )
        })?;
        if roles.contains(&role) {
            return Err(Diag::at(node, format!("role `{r}` listed twice")));
        }
        roles.push(role);
    }
    if roles.is_empty() {
        return Err(Diag::at(rn, "the ICS must claim at least one role"));
    }
    let mut algorithms = Vec::new();
    if let Some(an) = m.opt("algorithms") {
        for (a, node) in an.str_list("algorithms")? {
            let alg = OptionalAlgorithm::from_name(&a).ok_or_else(|| {
                Diag::at(
                    node,
                    format!("unknown optional algorithm `{a}` (ML-DSA-87, ML-KEM-1024, SHA3-256; the mandatory ones are not listed)"),
                )
            })?;
            if algorithms.contains(&alg) {
                return Err(Diag::at(node, format!("algorithm `{a}` listed twice")));
            }
            algorithms.push(alg);
        }
    }
    let ics = Ics {
        roles,
        algorithms,
        price_units: string_list(m.opt("price_units"), "price_units")?,
        verification_methods: string_list(m.opt("verification_methods"), "verification_methods")?,
        extensions: string_list(m.opt("extensions"), "extensions")?,
        settlement_rails: string_list(m.opt("settlement_rails"), "settlement_rails")?,
    };
    m.finish(&[
        "roles",
        "algorithms",
        "price_units",
        "verification_methods",
        "extensions",
        "settlement_rails",
    ])?;
    Ok(ics)
}

fn timeouts(n: &Node) -> Result<Timeouts, Diag> {
    let mut m = n.map("timeouts")?;
    let mut t = Timeouts::default();
    for (key, slot) in [
        ("step", &mut t.step),
        ("scenario", &mut t.scenario),
        ("connect", &mut t.connect),
    ] {
        if let Some(v) = m.opt(key) {
            let d = v.duration(key)?;
            if d.is_zero() {
                return Err(Diag::at(v, format!("timeouts.{key} must be positive")));
            }
            *slot = d;
        }
    }
    m.finish(&["step", "scenario", "connect"])?;
    Ok(t)
}

#[cfg(test)]
mod instance_tests {
    use super::*;

    fn with_endpoints(list: &str) -> Result<IutDescription, IutError> {
        let start = TEMPLATE.find("\nendpoints:").unwrap() + 1;
        let end = TEMPLATE.find("# The harness's own TLS identity").unwrap();
        let text = format!("{}{list}\n{}", &TEMPLATE[..start], &TEMPLATE[end..]);
        parse(&text, Path::new("iut.yaml"))
    }

    const FP: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn instance(sync: u16, control: u16) -> String {
        format!(
            "  - sync: {{address: grpcs://127.0.0.1:{sync}, fingerprint: \"{FP}\"}}\n    control: {{address: grpcs://127.0.0.1:{control}, fingerprint: \"{FP}\"}}\n"
        )
    }

    #[test]
    fn endpoints_may_list_identical_instances() {
        let one = parse(TEMPLATE, Path::new("iut.yaml")).unwrap();
        assert_eq!(one.instance_count(), 1);
        assert_eq!(one.instances[0], one.endpoints);
        let two = with_endpoints(&format!(
            "endpoints:\n{}{}",
            instance(7443, 7444),
            instance(7453, 7454)
        ))
        .unwrap();
        assert_eq!(two.instance_count(), 2);
        assert_eq!(two.endpoints, two.instances[0]);
        assert_eq!(two.instances[1].control.address.port, 7454);
        let clash = with_endpoints(&format!(
            "endpoints:\n{}{}",
            instance(7443, 7444),
            instance(7453, 7444)
        ))
        .unwrap_err();
        assert!(clash.to_string().contains("instance 2"), "{clash}");
        assert!(with_endpoints("endpoints: []").is_err());
    }
}
