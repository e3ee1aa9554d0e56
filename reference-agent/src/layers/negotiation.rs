//! Negotiation Layer (SPEC III-C): single-round, multi-round, conditional and multi-party negotiation; strategies; the signed negotiation log in the Terms.

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

/// `Agent/Negotiate` (PROFILE G-09).
pub async fn serve_negotiate(
    agent: Agent,
    request: Request<tonic::Streaming<pb::Frame>>,
) -> Result<Response<super::FrameStream>, Status> {
    let _ = (agent, request);
    Err(Status::unimplemented("Negotiate"))
}
