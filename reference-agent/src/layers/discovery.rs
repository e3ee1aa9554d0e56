//! Discovery Layer (SPEC III-B): Capability Manifests, Offer/Request publication, the index service, federated query and merge, offer revocation.

use mtp_protocol::cbor::Value;
use mtp_protocol::error_record::Notification;
use tonic::Status;

use crate::agent::Agent;
use crate::services::control::ControlResult;

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

/// A message received on a discovery NATS subject (`mtp.offer.>`, `mtp.request.>`,
/// `mtp.manifest.>`, `mtp.revocation.>`; PROFILE G-06), already opened and checked by the
/// runtime's consumer loop.
pub async fn on_nats_message(
    agent: &Agent,
    subject: &str,
    frame: mtp_protocol::wire::Frame,
) -> Result<(), Status> {
    let _ = (agent, subject, frame);
    Ok(())
}
