//! MTPSync: tonic gRPC over TLS 1.3 with mutual authentication and DID-pinned ML-DSA-65 certificates (BIND V-A; PROFILE G-09, G-37).
