//! Which scenarios a run includes (`--suite`, `--only`, `--exclude`) and the per-scenario
//! seed.

use std::fmt;
use std::str::FromStr;

use mtp_reports::model::Layer;

use crate::scenario::Scenario;

/// A shell-style pattern: `*` any run of characters, `?` one character; everything else
/// literal. Case-sensitive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(p: impl Into<String>) -> Glob {
        Glob(p.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, s: &str) -> bool {
        // Iterative wildcard matching with backtracking to the last `*`.
        let p: Vec<char> = self.0.chars().collect();
        let t: Vec<char> = s.chars().collect();
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `--suite`: `all`, `smoke` (scenarios tagged `smoke`), `layer:<layer>`, `req:<id glob>`
/// (any requirement id matches), `tag:<tag>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Suite {
    All,
    Smoke,
    Layer(Layer),
    Req(Glob),
    Tag(String),
}

impl FromStr for Suite {
    type Err = String;

    fn from_str(s: &str) -> Result<Suite, String> {
        match s {
            "all" => return Ok(Suite::All),
            "smoke" => return Ok(Suite::Smoke),
            _ => {}
        }
        if let Some(l) = s.strip_prefix("layer:") {
            return Layer::from_name(l).map(Suite::Layer).ok_or_else(|| {
                let names: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
                format!("unknown layer `{l}` (one of: {})", names.join(", "))
            });
        }
        if let Some(r) = s.strip_prefix("req:") {
            if r.is_empty() {
                return Err(
                    "`req:` needs a requirement id or pattern, e.g. `req:SPEC-II-A-*`".into(),
                );
            }
            return Ok(Suite::Req(Glob::new(r)));
        }
        if let Some(t) = s.strip_prefix("tag:") {
            if t.is_empty() {
                return Err("`tag:` needs a tag".into());
            }
            return Ok(Suite::Tag(t.to_owned()));
        }
        Err(format!(
            "unknown suite `{s}` (all, smoke, layer:<layer>, req:<id pattern>, tag:<tag>)"
        ))
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suite::All => f.write_str("all"),
            Suite::Smoke => f.write_str("smoke"),
            Suite::Layer(l) => write!(f, "layer:{l}"),
            Suite::Req(g) => write!(f, "req:{g}"),
            Suite::Tag(t) => write!(f, "tag:{t}"),
        }
    }
}

/// The whole selection: the suite, then `--only` (any pattern matches the id; none given:
/// all), then `--exclude` (no pattern matches the id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub suite: Suite,
    pub only: Vec<Glob>,
    pub exclude: Vec<Glob>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            suite: Suite::All,
            only: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl Selection {
    pub fn matches(&self, s: &Scenario) -> bool {
        let in_suite = match &self.suite {
            Suite::All => true,
            Suite::Smoke => s.tags.iter().any(|t| t == "smoke"),
            Suite::Layer(l) => s.layer == *l,
            Suite::Req(g) => s.requirements.iter().any(|r| g.matches(r)),
            Suite::Tag(t) => s.tags.iter().any(|x| x == t),
        };
        in_suite
            && (self.only.is_empty() || self.only.iter().any(|g| g.matches(&s.id)))
            && !self.exclude.iter().any(|g| g.matches(&s.id))
    }

    pub fn apply(&self, scenarios: Vec<Scenario>) -> Vec<Scenario> {
        scenarios.into_iter().filter(|s| self.matches(s)).collect()
    }
}

/// Splits repeated and comma-separated pattern arguments.
pub fn globs<S: AsRef<str>>(args: &[S]) -> Vec<Glob> {
    args.iter()
        .flat_map(|a| a.as_ref().split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Glob::new)
        .collect()
}

/// The scenario seed: the first 8 bytes (big-endian) of
/// `SHA-256("mtp-cert/scenario-seed/1" || 0x00 || run_seed as 8 bytes big-endian || scenario id as UTF-8)`.
/// It depends only on the run seed and the id — not on `--jobs`, the selection or the order —
/// so `mtp-cert replay <id> --seed <run seed>` reproduces the scenario exactly.
pub fn scenario_seed(run_seed: u64, scenario_id: &str) -> u64 {
    let mut input = b"mtp-cert/scenario-seed/1\0".to_vec();
    input.extend_from_slice(&run_seed.to_be_bytes());
    input.extend_from_slice(scenario_id.as_bytes());
    let h = mtp_protocol::crypto::sha256(&input);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match() {
        let g = Glob::new("DISC-*-00?");
        assert!(g.matches("DISC-OFFER-SIG-001"));
        assert!(!g.matches("DISC-OFFER-SIG-0010"));
        assert!(!g.matches("NEG-OFFER-001"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*b*c").matches("aXXbYYc"));
        assert!(!Glob::new("a*b*c").matches("aXXbYY"));
        assert_eq!(globs(&["A-*,B-*", " C "]).len(), 3);
    }

    #[test]
    fn suites_parse() {
        assert_eq!("all".parse(), Ok(Suite::All));
        assert_eq!(
            "layer:discovery".parse(),
            Ok(Suite::Layer(Layer::Discovery))
        );
        assert!("layer:nope".parse::<Suite>().is_err());
        assert!("bogus".parse::<Suite>().is_err());
        assert_eq!(
            "req:SPEC-II-*".parse(),
            Ok(Suite::Req(Glob::new("SPEC-II-*")))
        );
    }

    #[test]
    fn seeds_are_a_function_of_run_seed_and_id() {
        assert_eq!(scenario_seed(7, "A-1"), scenario_seed(7, "A-1"));
        assert_ne!(scenario_seed(7, "A-1"), scenario_seed(8, "A-1"));
        assert_ne!(scenario_seed(7, "A-1"), scenario_seed(7, "A-2"));
    }
}
