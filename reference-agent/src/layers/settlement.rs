//! Settlement Layer (SPEC III-E): the Settlement Interface (initiate, confirm, reverse, query
//! status) with an in-process ledger rail and a configurable failing rail; atomic and
//! proportional partial settlement; retry-then-escalate (SPEC VI).

use mtp_protocol::cbor::Value;
use mtp_protocol::error_record::Notification;
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::services::control::ControlResult;
use crate::transport::sync::pb;

use crate::config::RailConfig;

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}

impl State {
    pub fn new(rails: &[RailConfig]) -> State {
        let _ = rails;
        State {}
    }
}

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

/// `Agent/Settle` (PROFILE G-09).
pub async fn on_settle(
    agent: &Agent,
    request: Request<pb::Frame>,
) -> Result<Response<pb::Frame>, Status> {
    let _ = (agent, request);
    Err(Status::unimplemented("Settle"))
}
