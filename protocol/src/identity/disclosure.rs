//! Selective disclosure: SD-JWT salted, hashed, individually disclosable claims adapted to
//! the JSON-LD credential (SPEC-III-A-1-06/07, BIND-III-C-01; PROFILE G-35).
