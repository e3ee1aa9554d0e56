//! Discovery Layer (SPEC III-B): Capability Manifests, Offer/Request publication, the index service, federated query and merge, offer revocation.

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {}
