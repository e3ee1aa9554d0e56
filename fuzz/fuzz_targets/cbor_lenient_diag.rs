//! Lenient decoder and diagnostic notation: never panic; bytes → EDN → bytes is lossless.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtp_protocol::cbor::{self, diag};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = cbor::from_slice_lenient(data) {
        let _ = cbor::to_vec(&v);
        let text = diag::to_diag(data).expect("well-formed input renders");
        assert_eq!(diag::from_diag(&text).expect("own notation parses"), data);
    }
});
