//! Commitment Layer (SPEC III-D): Mandates, multi-party signature collection, conditional Mandates and preconditions, supersession.

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

/// `Agent/Commit` (PROFILE G-09).
pub async fn serve_commit(
    agent: Agent,
    request: Request<tonic::Streaming<pb::Frame>>,
) -> Result<Response<super::FrameStream>, Status> {
    let _ = (agent, request);
    Err(Status::unimplemented("Commit"))
}
