//! gRPC services of the agent: the MTP `Agent` service (MTPSync), the discovery `Index`
//! service, and the test-control service (docs/iut-contract.md).

pub mod agent;
pub mod control;
pub mod index;
