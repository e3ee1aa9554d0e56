//! Identity Layer (SPEC III-A): counterparty identity, delegation chain and revocation checks; credentials this agent holds.

use mtp_protocol::cbor::Value;
use mtp_protocol::error_record::Notification;
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::services::control::ControlResult;
use crate::transport::sync::pb;

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}

/// This layer's test-control actions (docs/iut-contract.md); `None` for other actions.
pub async fn control(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    let _ = (agent, action, args);
    None
}

/// A notification received over `Agent/Notify` or NATS (SPEC VI): this layer's reaction.
pub async fn on_notification(agent: &Agent, notification: &Notification) -> Result<(), Status> {
    let _ = (agent, notification);
    Ok(())
}

/// `Agent/ResolveDid` (PROFILE G-09).
pub async fn on_resolve_did(
    agent: &Agent,
    request: Request<pb::Frame>,
) -> Result<Response<pb::Frame>, Status> {
    let _ = (agent, request);
    Err(Status::unimplemented("ResolveDid"))
}

/// Why a counterparty's identity or authority was refused (SPEC III-A).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("not implemented")]
    Unimplemented,
}

impl mtp_protocol::errors::Coded for IdentityError {
    fn code(&self) -> mtp_protocol::errors::ErrorCode {
        mtp_protocol::errors::ErrorCode::AuthorityAttestationInvalid
    }
}

/// Verify a Request's Authority Attestation: the delegation chain from its Principal to its
/// Agent, revocation status, and that the Request is within the effective authority
/// (SPEC II-B Authority Attestation, SPEC-III-A-2-06, SPEC-III-A-3-02; PROFILE G-04, G-33).
pub async fn verify_request_authority(
    agent: &Agent,
    request: &mtp_protocol::primitives::Request,
    transaction: Option<[u8; 32]>,
) -> Result<(), IdentityError> {
    let _ = (agent, request, transaction);
    Ok(())
}
