//! `mtp-cert coverage`: which requirements the scenarios cover.
