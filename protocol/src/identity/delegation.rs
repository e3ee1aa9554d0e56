//! Authority Delegation Certificates (`MTPAuthorityDelegation`) and delegation chains
//! (SPEC-III-A-2-01..06, BIND-III-B-01..05; PROFILE G-04, G-33).
