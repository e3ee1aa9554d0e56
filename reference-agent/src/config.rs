//! Agent configuration: a YAML file, overridden by command-line flags (`mtp-agent --help`).
//! Unknown keys are refused so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("config: {0}")]
    Invalid(String),
}

/// The whole agent configuration (YAML). Every field has a default so an empty file works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Display name in logs and `hello`.
    pub name: String,
    /// File holding the 32-byte master seed as 64 hex characters; every key derives from it.
    /// Created with a fresh random seed when missing.
    pub seed_file: Option<PathBuf>,
    /// Persistent state: audit trails, receipts, reserved MTP-UUIDs, NATS de-duplication.
    pub state_dir: PathBuf,
    /// MTPSync listen address (gRPC over mutual TLS 1.3, BIND V-A).
    pub sync_listen: SocketAddr,
    /// Host name put in the DID Document's MTPSync endpoint (`grpcs://host:port`).
    pub advertise_host: String,
    /// Test-control listen address (docs/iut-contract.md); `None` disables the service.
    pub control_listen: Option<SocketAddr>,
    /// Certificate fingerprints (`sha256:<hex>`) allowed to use the test-control service.
    pub control_pins: Vec<String>,
    /// NATS JetStream (BIND V-B); `None` disables MTPAsync.
    pub nats: Option<NatsConfig>,
    /// Serve the discovery index service on the MTPSync port (SPEC III-B-2).
    pub serve_index: bool,
    /// Indexes to publish to and query (`grpcs://host:port#sha256:<hex>` or a DID Document file).
    pub indexes: Vec<String>,
    /// DID Document files of peers trusted from the start (their MTPSync certificates are pinned).
    pub peers: Vec<PathBuf>,
    /// Settlement rails (SPEC III-E).
    pub rails: Vec<RailConfig>,
    /// Logging.
    pub log: LogConfig,
    /// Deliberate defects for proving the suite's checks can fail (`faults.rs`); never set
    /// this on an agent you certify.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test_faults: Vec<String>,
}

/// MTPAsync settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// `nats://host:port`.
    pub url: String,
    /// Cluster name put in the DID Document's MTPAsync service.
    pub cluster: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            cluster: "mtp-local".into(),
        }
    }
}

/// One settlement rail adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RailConfig {
    /// Rail identifier as used in `settlement.rail` (e.g. `ledger`, `flaky`).
    pub id: String,
    pub kind: RailKind,
}

/// Settlement rail adapters shipped with the reference agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum RailKind {
    /// In-process double-entry ledger; always available.
    Ledger,
    /// A rail that can be told to fail, be temporarily unavailable, or fail reversals.
    Flaky {
        #[serde(default)]
        mode: FlakyMode,
        #[serde(default)]
        unavailable_attempts: u32,
    },
}

/// Behaviour of the flaky rail (test-control `configure_rail`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlakyMode {
    #[default]
    Ok,
    Fail,
    Unavailable,
    FailReversal,
}

/// Log output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// tracing-subscriber `EnvFilter` directive, e.g. `info,mtp_reference_agent=debug`.
    pub filter: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            name: "mtp-agent".into(),
            seed_file: None,
            state_dir: PathBuf::from("mtp-agent-state"),
            sync_listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            advertise_host: "127.0.0.1".into(),
            control_listen: None,
            control_pins: Vec::new(),
            nats: None,
            serve_index: false,
            indexes: Vec::new(),
            peers: Vec::new(),
            rails: vec![
                RailConfig {
                    id: "ledger".into(),
                    kind: RailKind::Ledger,
                },
                RailConfig {
                    id: "flaky".into(),
                    kind: RailKind::Flaky {
                        mode: FlakyMode::Ok,
                        unavailable_attempts: 0,
                    },
                },
            ],
            log: LogConfig::default(),
            test_faults: Vec::new(),
        }
    }
}

impl AgentConfig {
    /// Parse YAML text.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<AgentConfig, ConfigError> {
        let cfg: AgentConfig = if text.trim().is_empty() {
            AgentConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
                path: origin.to_path_buf(),
                source,
            })?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read and parse a YAML file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        AgentConfig::from_yaml(&text, path)
    }

    /// Cross-field checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut ids = std::collections::BTreeSet::new();
        for r in &self.rails {
            if r.id.is_empty() || !ids.insert(r.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "rail ids must be unique and non-empty (got {:?})",
                    r.id
                )));
            }
        }
        for pin in &self.control_pins {
            if !is_fingerprint(pin) {
                return Err(ConfigError::Invalid(format!(
                    "control pin {pin:?} is not sha256:<64 lowercase hex>"
                )));
            }
        }
        if self.advertise_host.is_empty() {
            return Err(ConfigError::Invalid("advertise_host is empty".into()));
        }
        for f in &self.test_faults {
            if crate::faults::find(f).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "unknown test fault {f:?} (known: {})",
                    crate::faults::names().join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A commented example configuration (`mtp-agent config-template`).
    pub fn template() -> String {
        let body = serde_yaml::to_string(&AgentConfig::default()).unwrap_or_default();
        format!(
            "# mtp-agent configuration. Every key is optional; command-line flags override it.\n\
             # See `mtp-agent --help` and README.md.\n{body}"
        )
    }
}

/// `sha256:` followed by 64 lowercase hex characters (PROFILE G-32).
pub fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        let c = AgentConfig::from_yaml("", Path::new("x.yaml")).unwrap();
        assert_eq!(c, AgentConfig::default());
    }

    #[test]
    fn template_round_trips() {
        let t = AgentConfig::template();
        let c = AgentConfig::from_yaml(&t, Path::new("t.yaml")).unwrap();
        assert_eq!(c, AgentConfig::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(matches!(
            AgentConfig::from_yaml("sync_listn: 1.2.3.4:5", Path::new("x")),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            AgentConfig::from_yaml("control_pins: [abc]", Path::new("x")),
            Err(ConfigError::Invalid(_))
        ));
        let dup = "rails:\n  - {id: a, kind: {type: ledger}}\n  - {id: a, kind: {type: ledger}}\n";
        assert!(matches!(
            AgentConfig::from_yaml(dup, Path::new("x")),
            Err(ConfigError::Invalid(_))
        ));
    }
}
