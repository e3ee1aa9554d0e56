//! W3C Status List 2021 revocation (SPEC-III-A-3-01..04, BIND-III-B-05; PROFILE G-33, G-55).
