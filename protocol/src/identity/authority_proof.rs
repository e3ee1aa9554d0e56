//! Zero-knowledge authority proofs: Bulletproofs range proofs on Ristretto that
//! `maxTransactionValue ≥ amount` (SPEC-III-A-1-08, BIND-III-C-02..04; PROFILE G-36).
