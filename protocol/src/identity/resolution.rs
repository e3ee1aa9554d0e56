//! DID resolution (registry and peer) and signed DID Update Transactions with version
//! history, as pure request/response types (BIND-II-B-01..05; PROFILE G-32).
