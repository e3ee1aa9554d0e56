//! Diagnostic-notation parser: never panics on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtp_protocol::cbor::diag;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(bytes) = diag::from_diag(s) {
            let _ = diag::to_diag(&bytes);
        }
    }
});
