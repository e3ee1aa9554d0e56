//! MTPAsync: NATS JetStream with the encrypted envelope of PROFILE G-06 (BIND V-B).
//!
//! - [`server`]: the suite's own `nats-server` (JetStream, file store) on a free loopback
//!   port.
//! - [`jetstream`]: streams over the profile subjects, publish with `Nats-Msg-Id` and
//!   `Mtp-Version`, durable pull consumers with explicit ack (at-least-once).
//! - [`dedup`]: client-side de-duplication by message id, in memory or in a state file;
//!   redeliveries are 0400 Duplicate Delivery Ignored (PROFILE G-29).
//! - [`envelope`]: sealed publish and verified open of the encrypted envelope
//!   (BIND-V-B-01; PROFILE G-40, G-41).
//! - [`alg`]: the signed `alg_profile` announcement on `mtp.alg` (BIND-X-I01; PROFILE G-38).

pub mod alg;
pub mod dedup;
pub mod envelope;
pub mod jetstream;
pub mod server;

pub use dedup::{DedupError, DedupStore, FileDedup, MemoryDedup, SharedDedup};
pub use envelope::{
    EnvelopeError, LookupError, SealedMessage, SenderIdentity, SenderKeyLookup, StaticKeys,
    open_payload, open_received,
};
pub use jetstream::{
    AsyncTransport, ConsumerOptions, Delivery, DuplicateDelivery, InboxConsumer, NatsError,
    Outbound, PublishReceipt, Received, StreamKind, TransportOptions,
};
pub use server::{NatsServer, NatsServerOptions, ServerError};
