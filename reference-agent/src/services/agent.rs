//! The MTP `Agent` gRPC service (MTPSync, BIND V-A; PROFILE G-09): every RPC is handed to
//! the layer that owns it; notifications go to every layer's hook.

use tonic::{Request, Response, Status, Streaming};

use crate::agent::Agent;
use crate::layers::{self, FrameStream};
use crate::transport::sync::framing::{self, Ack, ErrorContext, Rpc};
use crate::transport::sync::pb;
use crate::transport::sync::pb::agent_server;

/// The service object registered with tonic.
#[derive(Clone)]
pub struct AgentService {
    pub agent: Agent,
}

impl AgentService {
    pub fn new(agent: Agent) -> AgentService {
        AgentService { agent }
    }

    pub fn into_server(self) -> agent_server::AgentServer<AgentService> {
        agent_server::AgentServer::new(self)
    }
}

#[tonic::async_trait]
impl agent_server::Agent for AgentService {
    async fn resolve_did(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        layers::identity::on_resolve_did(&self.agent, req).await
    }

    type NegotiateStream = FrameStream;
    async fn negotiate(
        &self,
        req: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        layers::negotiation::serve_negotiate(self.agent.clone(), req).await
    }

    type CommitStream = FrameStream;
    async fn commit(
        &self,
        req: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        layers::commitment::serve_commit(self.agent.clone(), req).await
    }

    async fn settle(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        layers::settlement::on_settle(&self.agent, req).await
    }

    async fn deliver(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        layers::verification::on_deliver(&self.agent, req).await
    }

    async fn verify(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        layers::verification::on_verify(&self.agent, req).await
    }

    /// `notification` / `error` frames (SPEC VI; PROFILE G-16): checked, recorded, offered
    /// to every layer, acknowledged.
    async fn notify(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        let agent = &self.agent;
        let ctx = ErrorContext::now(&agent.did());
        let frame = framing::receive(&req, Rpc::Notify).map_err(|e| {
            agent.raise(None, &e, None);
            framing::status_for(&e, Rpc::Notify, &ctx)
        })?;
        let ack = Ack::of(&frame);
        if frame.frame_type == "notification" {
            match <mtp_protocol::error_record::Notification as mtp_protocol::primitives::CborObject>::from_value(&frame.body) {
                Ok(n) => {
                    layers::identity::on_notification(agent, &n).await?;
                    layers::discovery::on_notification(agent, &n).await?;
                    layers::negotiation::on_notification(agent, &n).await?;
                    layers::commitment::on_notification(agent, &n).await?;
                    layers::settlement::on_notification(agent, &n).await?;
                    layers::verification::on_notification(agent, &n).await?;
                    layers::attribution::on_notification(agent, &n).await?;
                }
                Err(e) => {
                    agent.raise(None, &e, None);
                    return Err(framing::status_for(&e, Rpc::Notify, &ctx));
                }
            }
        }
        let out = ack
            .to_frame()
            .map_err(|e| framing::status_for(&e, Rpc::Notify, &ctx))?;
        framing::response(&out).map_err(|e| framing::status_for(&e, Rpc::Notify, &ctx))
    }
}
