//! `mtp-reports`: the result model of an `mtp-cert` run ([`model`]) and, with the "Reports"
//! issue, its writers (JUnit, JSON, HTML, Markdown, certification bundle).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod model;
