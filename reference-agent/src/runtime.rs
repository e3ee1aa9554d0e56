//! Starting an agent: bind the MTPSync listener, build the [`Agent`], serve the MTP `Agent`
//! service over mutual TLS 1.3, record every refused handshake in the agent trail (0109),
//! and load the configured peers.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::agent::{Agent, AgentError, Bound};
use crate::config::AgentConfig;
use crate::events::{Event, EventKind};
use crate::services::agent::AgentService;
use crate::transport::sync::server::{ServerError, ServerOptions, SyncServer};
use crate::transport::sync::tls::{EventSink, TransportEvent};

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind MTPSync listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("peer document {path}: {reason}")]
    Peer { path: String, reason: String },
}

/// A started agent.
pub struct RunningAgent {
    pub agent: Agent,
    pub sync: SyncServer,
}

impl RunningAgent {
    /// `grpcs://host:port` of the MTPSync server.
    pub fn sync_endpoint(&self) -> String {
        self.sync.endpoint()
    }

    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.sync.shutdown().await
    }
}

/// Start an agent with its MTPSync service. `nats` is the advertised NATS `(host, port)`.
pub async fn start(
    config: AgentConfig,
    seed: [u8; 32],
    nats: Option<(String, u16)>,
) -> Result<RunningAgent, StartError> {
    let listener = TcpListener::bind(config.sync_listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.sync_listen,
            source,
        })?;
    let sync_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.sync_listen,
        source,
    })?;
    let peers = config.peers.clone();
    let agent = Agent::new(config, seed, &Bound { sync_addr, nats })?;
    for path in peers {
        let text = std::fs::read_to_string(&path).map_err(|e| StartError::Peer {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let doc = mtp_protocol::identity::DidDocument::from_json(&text).map_err(|e| {
            StartError::Peer {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        agent.add_peer(doc)?;
    }
    let sink_agent = agent.clone();
    let events = EventSink::from_fn(move |ev| {
        if let TransportEvent::HandshakeRefused(r) = ev {
            // PROFILE G-42 agent trail; docs/iut-contract.md event `handshake_refused`.
            sink_agent.raise(None, &r, None);
            let mut e = Event::new(EventKind::HandshakeRefused, sink_agent.now());
            e.code = Some(mtp_protocol::errors::ErrorCode::TransportSecurityFailure.as_u16());
            e.detail = Some(r.to_string());
            sink_agent.events.push(e);
        }
    });
    let router = tonic::transport::Server::builder()
        .add_service(AgentService::new(agent.clone()).into_server());
    let sync = SyncServer::serve(
        listener,
        &agent.tls,
        agent.pins.clone(),
        ServerOptions {
            events,
            ..ServerOptions::default()
        },
        router,
    )?;
    tracing::info!(did = %agent.did(), endpoint = %sync.endpoint(), "agent started");
    Ok(RunningAgent { agent, sync })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> AgentConfig {
        AgentConfig {
            state_dir: dir.to_path_buf(),
            sync_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..AgentConfig::default()
        }
    }

    #[tokio::test]
    async fn two_agents_notify_each_other_and_an_unpinned_peer_is_audited() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let a = start(config(d1.path()), [1; 32], None).await.unwrap();
        let b = start(config(d2.path()), [2; 32], None).await.unwrap();
        // b does not know a yet: a's handshake is refused and b records 0109.
        a.agent.add_peer(b.agent.document()).unwrap();
        let mut client = a.agent.agent_client(&b.agent.did()).await.ok();
        if let Some(c) = client.as_mut() {
            let frame =
                mtp_protocol::wire::Frame::new("error", mtp_protocol::cbor::Value::map::<&str>([]))
                    .unwrap();
            let req = crate::transport::sync::framing::request(&frame).unwrap();
            assert!(c.notify(req).await.is_err());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let refused = b
            .agent
            .events
            .snapshot()
            .into_iter()
            .any(|e| e.kind == EventKind::HandshakeRefused);
        assert!(refused, "b must record the refused handshake");
        assert!(
            !b.agent
                .transactions
                .export_audit(&crate::transaction::AGENT_TRAIL_ID)
                .unwrap()
                .is_empty()
        );
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }
}
