//! MTPAsync: NATS JetStream with the encrypted envelope of PROFILE G-06 (BIND V-B).
