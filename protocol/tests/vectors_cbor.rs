//! Public CBOR vectors: RFC 8949 Appendix A (cbor/test-vectors) and the dCBOR set
//! (hildjj/dcbor-test-vectors), judged by RFC 8949 §4.2.1 core deterministic encoding
//! (BIND-IV-A-01..05) and RFC 8949 §8 diagnostic notation (BIND-IV-B-01).

mod common;

use mtp_protocol::cbor::{self, DecodeErrorKind, Value, diag};
use serde_json::Value as Json;

fn load(path: &std::path::Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex_of(case: &Json) -> Vec<u8> {
    hex::decode(case["hex"].as_str().unwrap()).unwrap()
}

fn bignum(b: &[u8]) -> Option<u128> {
    (b.len() <= 16).then(|| b.iter().fold(0u128, |a, &x| (a << 8) | u128::from(x)))
}

/// Our decoded value against the vector's JSON `decoded`. Numbers compare numerically
/// (an integer equals a JSON float of the same value); bignums (tags 2/3) compare as
/// numbers; floats compare by value and sign.
fn matches_json(v: &Value, j: &Json) -> bool {
    match (v, j) {
        (Value::Integer(i), Json::Number(n)) => {
            n.as_u64().map(i128::from).or(n.as_i64().map(i128::from)) == Some(*i)
                || (n.as_u64().is_none() && n.as_i64().is_none() && n.as_f64() == Some(*i as f64))
        }
        (Value::Float(f), Json::Number(n)) => n
            .as_f64()
            .is_some_and(|x| x == *f && x.is_sign_negative() == f.is_sign_negative()),
        (Value::Tag(t @ (2 | 3), inner), Json::Number(n)) => match (&**inner, n.as_f64()) {
            (Value::Bytes(b), Some(x)) => bignum(b).is_some_and(|m| {
                let val = if *t == 2 { m as f64 } else { -1.0 - m as f64 };
                val == x
            }),
            _ => false,
        },
        (Value::Text(s), Json::String(t)) => s == t,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Null, Json::Null) => true,
        (Value::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| matches_json(x, y))
        }
        (Value::Map(m), Json::Object(o)) => {
            m.len() == o.len()
                && m.iter().all(|(k, val)| {
                    k.as_text()
                        .and_then(|k| o.get(k))
                        .is_some_and(|y| matches_json(val, y))
                })
        }
        _ => false,
    }
}

/// Our diagnostic notation without encoding indicators (`_0`..`_3` after an item),
/// outside string literals, for comparison with notation that omits them.
fn strip_indicators(d: &str) -> String {
    let mut out = String::new();
    let mut chars = d.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                out.push(c);
            }
            '_' if chars.peek().is_some_and(|n| ('0'..='3').contains(n)) => {
                chars.next();
                if chars.peek() == Some(&' ') && out.ends_with(['[', '{']) {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[test]
fn rfc8949_appendix_a() {
    let Some(dir) = common::external_vectors("cbor-test-vectors/appendix_a.json") else {
        return;
    };
    let cases = load(&dir.join("cbor-test-vectors/appendix_a.json"));
    let (mut run, mut na) = (0, 0);
    for case in &cases {
        let b = hex_of(case);
        let id = case["hex"].as_str().unwrap();
        let roundtrip = case["roundtrip"].as_bool().unwrap_or(false);
        // SOURCE.md (a): simple(24) in two bytes is not well-formed under RFC 8949 §3.3.
        if id == "f818" {
            assert_eq!(
                cbor::from_slice_lenient(&b).unwrap_err().kind,
                DecodeErrorKind::InvalidSimple(24)
            );
            assert!(diag::to_diag(&b).is_err());
            println!(
                "  {id}: RFC 7049 vector, not well-formed under RFC 8949 §3.3: rejected as required"
            );
            run += 1;
            continue;
        }
        let v = cbor::from_slice_lenient(&b).unwrap_or_else(|e| panic!("{id}: {e}"));
        if let Some(j) = case.get("decoded") {
            assert!(matches_json(&v, j), "{id}: decoded {v:?} vs {j}");
        }
        let d = diag::to_diag(&b).unwrap();
        if let Some(expected) = case.get("diagnostic").and_then(Json::as_str) {
            assert_eq!(strip_indicators(&d), expected, "{id}: {d}");
        }
        // BIND-IV-B-01: lossless EDN round trip.
        assert_eq!(diag::from_diag(&d).unwrap(), b, "{id}: {d}");
        match cbor::from_slice(&b) {
            Ok(sv) => {
                assert!(
                    roundtrip,
                    "{id}: non-preferred vector accepted by the strict decoder"
                );
                assert_eq!(cbor::to_vec(&sv).unwrap(), b, "{id}: re-encoding differs");
                assert!(sv.bitwise_eq(&v.canonical()));
            }
            Err(e) if roundtrip => {
                na += 1;
                println!(
                    "  n/a {id}: roundtrip vector not deterministic per RFC 8949 §4.2.1 ({})",
                    e.kind
                );
            }
            Err(e) => {
                // Non-preferred / indefinite forms: rejected, and re-encoded deterministically.
                assert!(e.kind.is_non_deterministic(), "{id}: {e}");
                let det = cbor::to_vec(&v).unwrap();
                assert!(
                    cbor::from_slice(&det).unwrap().bitwise_eq(&v.canonical()),
                    "{id}"
                );
            }
        }
        run += 1;
    }
    common::report(
        "cbor-test-vectors/appendix_a.json",
        run,
        na,
        "roundtrip vectors that are not §4.2.1-deterministic",
    );
}

/// dCBOR-only rules (draft-mcnally-deterministic-cbor) that RFC 8949 §4.2.1 does not have.
fn dcbor_only(hex: &str) -> Option<&'static str> {
    Some(match hex {
        "f94a00" => "dCBOR numeric reduction (integral float -> int); §4.2.1 keeps 12.0 as f16",
        "3b8000000000000000" | "3bffffffffffffffff" => {
            "dCBOR limits negative integers to 64 bits; RFC 8949 major type 1 covers -2^64"
        }
        "f98000" => "dCBOR reduces -0.0 to 0; §4.2.1 keeps -0.0 as f9 8000",
        "e0" | "f7" => "dCBOR restricts simple values; RFC 8949 allows simple(0) and undefined",
        "6345cc88" => "dCBOR requires Unicode NFC; RFC 8949 does not normalise text",
        _ => return None,
    })
}

#[test]
fn dcbor_valid() {
    let Some(dir) = common::external_vectors("dcbor-test-vectors/valid.json") else {
        return;
    };
    let cases = load(&dir.join("dcbor-test-vectors/valid.json"));
    let mut run = 0;
    for case in &cases {
        let b = hex_of(case);
        let id = case["hex"].as_str().unwrap();
        // Every dCBOR-valid item is also §4.2.1-deterministic.
        let v = cbor::from_slice(&b).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(cbor::to_vec(&v).unwrap(), b, "{id}");
        let skip_decode = case
            .get("skipDecode")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        if let (Some(j), false) = (case.get("decoded"), skip_decode) {
            assert!(matches_json(&v, j), "{id}: {v:?} vs {j}");
        }
        if let Some(d) = case.get("diagnostic").and_then(Json::as_str) {
            // dCBOR notation has no width indicators and its own float spelling: compare
            // the values it denotes (our parser picks the preferred width).
            let theirs = diag::from_diag(d).unwrap_or_else(|e| panic!("{id}: {d}: {e}"));
            let tv = cbor::from_slice_lenient(&theirs).unwrap();
            assert!(
                tv.canonical().bitwise_eq(&v)
                    || matches_json(&v, &cbor::json::to_json(&tv).unwrap()),
                "{id}: {d}"
            );
        }
        assert_eq!(diag::from_diag(&diag::to_diag(&b).unwrap()).unwrap(), b);
        run += 1;
    }
    common::report("dcbor-test-vectors/valid.json", run, 0, "");
}

#[test]
fn dcbor_invalid() {
    let Some(dir) = common::external_vectors("dcbor-test-vectors/invalid.json") else {
        return;
    };
    let cases = load(&dir.join("dcbor-test-vectors/invalid.json"));
    let (mut run, mut na) = (0, 0);
    for case in &cases {
        let b = hex_of(case);
        let id = case["hex"].as_str().unwrap();
        if let Some(reason) = dcbor_only(id) {
            // Valid under RFC 8949 §4.2.1: our strict decoder accepts and re-encodes it.
            let v = cbor::from_slice(&b).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(cbor::to_vec(&v).unwrap(), b);
            println!("  n/a {id}: {reason}");
            na += 1;
            continue;
        }
        let e = cbor::from_slice(&b).expect_err(id);
        assert!(e.kind.is_non_deterministic(), "{id}: {e}");
        if case.get("roundtrip").and_then(Json::as_bool) == Some(true) {
            // Decoded permissively, the value cannot be encoded either.
            let v = cbor::from_slice_lenient(&b).unwrap();
            assert!(cbor::to_vec(&v).is_err(), "{id}");
        }
        assert_eq!(diag::from_diag(&diag::to_diag(&b).unwrap()).unwrap(), b);
        run += 1;
    }
    common::report(
        "dcbor-test-vectors/invalid.json",
        run,
        na,
        "rejected only by dCBOR's stricter rules",
    );
}
