//! The test-control service (`mtp.control.v1.TestControl`, contract `mtp-iut-control/1`,
//! docs/iut-contract.md): actions dispatched to the layers, events from the agent's log.

use mtp_protocol::cbor::Value;
use mtp_protocol::errors::{Coded, ErrorCode};

/// Why an action failed (`ControlError.kind` in control.proto).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("unsupported action {0}")]
    Unsupported(String),
    #[error("bad arguments: {0}")]
    BadArgs(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{code} {message}")]
    Mtp { code: ErrorCode, message: String },
    #[error("internal: {0}")]
    Internal(String),
}

impl ControlError {
    /// An MTP error the agent raised while performing the action.
    pub fn mtp(err: &(impl Coded + std::fmt::Display + ?Sized)) -> ControlError {
        ControlError::Mtp {
            code: err.code(),
            message: err.to_string(),
        }
    }

    /// `ControlError.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            ControlError::Unsupported(_) => "unsupported_action",
            ControlError::BadArgs(_) => "bad_args",
            ControlError::NotFound(_) => "not_found",
            ControlError::Mtp { .. } => "mtp_error",
            ControlError::Internal(_) => "internal",
        }
    }
}

/// Result of one action: the CBOR result map.
pub type ControlResult = Result<Value, ControlError>;
