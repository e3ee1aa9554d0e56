//! Transports at the edge of the sans-IO core (BIND V): MTPSync = gRPC over mutual TLS 1.3
//! (`sync`), MTPAsync = NATS JetStream with application-layer encryption (`nats`).

pub mod nats;
pub mod sync;
