//! Verification Layer (SPEC III-F): delivery, the four verification methods, Receipts, disputes and revised Receipts.

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

/// `Agent/Deliver` (PROFILE G-09).
pub async fn on_deliver(
    agent: &Agent,
    request: Request<pb::Frame>,
) -> Result<Response<pb::Frame>, Status> {
    let _ = (agent, request);
    Err(Status::unimplemented("Deliver"))
}

/// `Agent/Verify` (PROFILE G-09).
pub async fn on_verify(
    agent: &Agent,
    request: Request<pb::Frame>,
) -> Result<Response<pb::Frame>, Status> {
    let _ = (agent, request);
    Err(Status::unimplemented("Verify"))
}
