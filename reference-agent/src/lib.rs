//! The MTP reference agent (`mtp-agent`): the sans-IO core of `mtp-protocol` with tokio,
//! gRPC/mTLS 1.3 (MTPSync, BIND V-A) and NATS JetStream (MTPAsync, BIND V-B) at the edges.
#![forbid(unsafe_code)]

pub mod agent;
pub mod config;
pub mod deal;
pub mod events;
pub mod faults;
pub mod keys;
pub mod layers;
pub mod runtime;
pub mod services;
pub mod store;
pub mod transaction;
pub mod transport;
