//! The discovery `Index` gRPC service (SPEC III-B-2; PROFILE G-09, G-31): Query, Publish,
//! Revoke over MTPSync.
