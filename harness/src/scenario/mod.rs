//! Scenarios: the YAML language of `docs/scenarios.md` ([`model`]), its loader and validator
//! ([`loader`]), message templates and value paths ([`template`]), the embedded requirement
//! catalogue ([`catalogue`]) and the position-keeping YAML reader they share ([`yaml`]).

pub mod catalogue;
pub mod loader;
pub mod model;
pub mod template;
pub mod yaml;

pub use loader::{LoadDiagnostic, LoadError, load_file, load_paths, parse_str};
pub use model::*;
