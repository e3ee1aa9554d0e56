//! `mtp-reports`: the result model of an `mtp-cert` run ([`model`]) and its writers: JUnit
//! XML ([`junit`]), JSON ([`json`], `mtp-cert-report/1`), HTML ([`html`]), Markdown
//! ([`markdown`]), all written by [`write_all`]; the signed certification bundle
//! ([`bundle`], `mtp-cert-bundle/1`); and baseline gating ([`baseline`]).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod baseline;
pub mod bundle;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod matrix;
pub mod model;
pub mod text;
pub mod view;
mod write;

pub use write::{ReportError, ReportKind, WriteOptions, Written, render, write_all, write_atomic};
