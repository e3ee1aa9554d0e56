//! Hand-written byte cases for the encoder and both decoders.

use super::*;
use crate::errors::{Coded, ErrorCode};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn enc(v: &Value) -> String {
    hex::encode(to_vec(v).unwrap())
}

fn strict_err(s: &str) -> (DecodeErrorKind, usize) {
    let e = from_slice(&h(s)).unwrap_err();
    (e.kind, e.offset)
}

#[test]
fn encodes_shortest_heads() {
    assert_eq!(enc(&Value::Integer(0)), "00");
    assert_eq!(enc(&Value::Integer(23)), "17");
    assert_eq!(enc(&Value::Integer(24)), "1818");
    assert_eq!(enc(&Value::Integer(256)), "190100");
    assert_eq!(enc(&Value::Integer(65536)), "1a00010000");
    assert_eq!(enc(&Value::Integer(1 << 32)), "1b0000000100000000");
    assert_eq!(enc(&Value::Integer(INT_MAX)), "1bffffffffffffffff");
    assert_eq!(enc(&Value::Integer(-1)), "20");
    assert_eq!(enc(&Value::Integer(-25)), "3818");
    assert_eq!(enc(&Value::Integer(INT_MIN)), "3bffffffffffffffff");
    assert_eq!(
        to_vec(&Value::Integer(INT_MAX + 1)),
        Err(EncodeError::IntegerOutOfRange(INT_MAX + 1))
    );
    assert_eq!(
        to_vec(&Value::Integer(INT_MIN - 1)),
        Err(EncodeError::IntegerOutOfRange(INT_MIN - 1))
    );
    assert_eq!(&enc(&Value::bytes(vec![0u8; 24]))[..4], "5818");
    assert_eq!(enc(&Value::text("IETF")), "6449455446");
    assert_eq!(enc(&Value::Tag(1, Box::new(Value::Integer(0)))), "c100");
    assert_eq!(enc(&Value::Tag(24, Box::new(Value::Integer(0)))), "d81800");
    assert_eq!(enc(&Value::Simple(16)), "f0");
    assert_eq!(enc(&Value::Simple(255)), "f8ff");
    assert_eq!(
        to_vec(&Value::Simple(24)),
        Err(EncodeError::InvalidSimple(24))
    );
    assert_eq!(enc(&Value::Bool(true)), "f5");
    assert_eq!(enc(&Value::Null), "f6");
    assert_eq!(enc(&Value::Undefined), "f7");
}

#[test]
fn encodes_shortest_floats() {
    // BIND-IV-A-04 vectors.
    assert_eq!(enc(&Value::Float(1.5)), "f93e00");
    assert_eq!(enc(&Value::Float(f64::from(0.92f32))), "fa3f6b851f");
    assert_eq!(enc(&Value::Float(0.08)), "fb3fb47ae147ae147b");
    assert_eq!(enc(&Value::Float(0.0)), "f90000");
    assert_eq!(enc(&Value::Float(-0.0)), "f98000");
    assert_eq!(enc(&Value::Float(65504.0)), "f97bff");
    assert_eq!(enc(&Value::Float(65505.0)), "fa477fe100");
    assert_eq!(enc(&Value::Float(5.960464477539063e-8)), "f90001");
    assert_eq!(enc(&Value::Float(1e-7)), "fb3e7ad7f29abcaf48");
    assert_eq!(enc(&Value::Float(f64::from(1e-7f32))), "fa33d6bf95");
    assert_eq!(enc(&Value::Float(f64::INFINITY)), "f97c00");
    assert_eq!(enc(&Value::Float(f64::NEG_INFINITY)), "f9fc00");
    assert_eq!(enc(&Value::Float(f64::NAN)), "f97e00");
    assert_eq!(enc(&Value::Float(-f64::NAN)), "f97e00");
    assert_eq!(
        enc(&Value::Float(f64::from_bits(0x7ff0_0000_0000_0001))),
        "f97e00"
    );
    assert_eq!(enc(&Value::Float(1e300)), "fb7e37e43c8800759c");
}

#[test]
fn sorts_map_keys_bytewise() {
    // "b" (61 62) sorts before "aa" (62 61 61): bytewise, not Rust string order.
    let v = Value::map([("aa", Value::Integer(1)), ("b", Value::Integer(2))]);
    assert_eq!(enc(&v), "a261620262616101");
    let v = Value::Map(vec![
        (Value::text("a"), Value::Integer(0)),
        (Value::Integer(1000), Value::Integer(0)),
        (Value::Integer(-1), Value::Integer(0)),
        (Value::Integer(10), Value::Integer(0)),
    ]);
    assert_eq!(enc(&v), "a40a001903e800200061610 0".replace(' ', ""));
    let dup = Value::Map(vec![
        (Value::Integer(1), Value::Null),
        (Value::Integer(1), Value::Null),
    ]);
    assert_eq!(to_vec(&dup), Err(EncodeError::DuplicateKey));
    let mut c = v.clone();
    c.canonicalize();
    assert_eq!(from_slice(&to_vec(&v).unwrap()).unwrap(), c);
}

#[test]
fn decodes_deterministic_items() {
    assert_eq!(
        from_slice(&h("1bffffffffffffffff")).unwrap(),
        Value::Integer(INT_MAX)
    );
    assert_eq!(
        from_slice(&h("3bffffffffffffffff")).unwrap(),
        Value::Integer(INT_MIN)
    );
    assert_eq!(from_slice(&h("f93e00")).unwrap(), Value::Float(1.5));
    assert_eq!(
        from_slice(&h("f90001")).unwrap(),
        Value::Float(5.960464477539063e-8)
    );
    assert!(matches!(from_slice(&h("f97e00")).unwrap(), Value::Float(f) if f.is_nan()));
    assert_eq!(
        from_slice(&h("a2 01 02 03 04")).unwrap(),
        Value::Map(vec![
            (Value::Integer(1), Value::Integer(2)),
            (Value::Integer(3), Value::Integer(4))
        ])
    );
    assert_eq!(
        from_slice(&h("c249010000000000000000")).unwrap().kind(),
        "tag"
    );
    assert!(check_deterministic(&h("83 01 02 03")).is_ok());
}

#[test]
fn strict_rejections_with_offsets() {
    use DecodeErrorKind::*;
    assert_eq!(strict_err(""), (Truncated, 0));
    assert_eq!(strict_err("19 01"), (Truncated, 0));
    assert_eq!(strict_err("82 01"), (LengthExceedsInput, 0));
    assert_eq!(strict_err("82 01 19"), (Truncated, 2));
    assert_eq!(strict_err("01 02"), (TrailingBytes, 1));
    assert_eq!(strict_err("81 1c"), (ReservedAdditionalInfo(28), 1));
    assert_eq!(strict_err("1e"), (ReservedAdditionalInfo(30), 0));
    assert_eq!(strict_err("82 01 18 05"), (NonShortestHead, 2));
    assert_eq!(strict_err("19 00 ff"), (NonShortestHead, 0));
    assert_eq!(strict_err("1a 00 00 ff ff"), (NonShortestHead, 0));
    assert_eq!(
        strict_err("1b 00 00 00 00 ff ff ff ff"),
        (NonShortestHead, 0)
    );
    assert_eq!(strict_err("38 00"), (NonShortestHead, 0));
    assert_eq!(strict_err("58 01 00"), (NonShortestHead, 0));
    assert_eq!(strict_err("98 01 00"), (NonShortestHead, 0));
    assert_eq!(strict_err("d8 01 00"), (NonShortestHead, 0));
    assert_eq!(strict_err("5f 41 00 ff"), (IndefiniteLength, 0));
    assert_eq!(strict_err("81 7f ff"), (IndefiniteLength, 1));
    assert_eq!(strict_err("9f ff"), (IndefiniteLength, 0));
    assert_eq!(strict_err("bf ff"), (IndefiniteLength, 0));
    assert_eq!(strict_err("1f"), (InvalidIndefinite, 0));
    assert_eq!(strict_err("df 00"), (InvalidIndefinite, 0));
    assert_eq!(strict_err("ff"), (StrayBreak, 0));
    assert_eq!(strict_err("82 01 ff"), (StrayBreak, 2));
    assert_eq!(strict_err("a2 61 62 00 61 61 00"), (UnsortedKeys, 4));
    assert_eq!(strict_err("a2 19 03 e8 00 18 64 00"), (UnsortedKeys, 5));
    assert_eq!(strict_err("a2 01 00 01 01"), (DuplicateKey, 3));
    assert_eq!(strict_err("fa 3f c0 00 00"), (NonShortestFloat, 0));
    assert_eq!(
        strict_err("fb 3f f8 00 00 00 00 00 00"),
        (NonShortestFloat, 0)
    );
    assert_eq!(strict_err("fa 7f 80 00 00"), (NonShortestFloat, 0));
    assert_eq!(strict_err("fa 7f c0 00 00"), (NonShortestFloat, 0));
    assert_eq!(strict_err("f9 7e 01"), (NonShortestFloat, 0));
    assert_eq!(strict_err("f9 fe 00"), (NonShortestFloat, 0));
    assert_eq!(
        strict_err("fb 80 00 00 00 00 00 00 00"),
        (NonShortestFloat, 0)
    );
    assert_eq!(strict_err("82 00 62 c3 28"), (InvalidUtf8, 2));
    assert_eq!(strict_err("f8 18"), (InvalidSimple(24), 0));
    assert_eq!(strict_err("f8 1f"), (InvalidSimple(31), 0));
    assert_eq!(strict_err("f8 00"), (InvalidSimple(0), 0));
    assert_eq!(strict_err("c2 41 02"), (NonPreferredBignum, 0));
    assert_eq!(
        strict_err("c2 4a 00 01 00 00 00 00 00 00 00 01"),
        (NonPreferredBignum, 0)
    );
    // Declared lengths checked against the remaining input before allocation.
    assert_eq!(
        strict_err("5b ff ff ff ff ff ff ff ff"),
        (LengthExceedsInput, 0)
    );
    assert_eq!(
        strict_err("9b 00 00 00 01 00 00 00 00 01"),
        (LengthExceedsInput, 0)
    );
    assert_eq!(strict_err("a2 01 02 03"), (LengthExceedsInput, 0));
    assert_eq!(strict_err("62 61"), (LengthExceedsInput, 0));
}

#[test]
fn depth_limit() {
    let mut ok = vec![0x81u8; MAX_DEPTH];
    ok.push(0x00);
    assert!(from_slice(&ok).is_ok());
    let mut deep = vec![0x81u8; MAX_DEPTH + 1];
    deep.push(0x00);
    assert_eq!(
        from_slice(&deep).unwrap_err(),
        DecodeError {
            offset: MAX_DEPTH,
            kind: DecodeErrorKind::DepthExceeded
        }
    );
    assert_eq!(
        from_slice_lenient(&deep).unwrap_err().kind,
        DecodeErrorKind::DepthExceeded
    );
    let tags = vec![0xc1u8; 100_000];
    assert_eq!(
        from_slice(&tags).unwrap_err().kind,
        DecodeErrorKind::DepthExceeded
    );
    let mut v = Value::Integer(0);
    for _ in 0..=MAX_DEPTH {
        v = Value::Array(vec![v]);
    }
    assert_eq!(to_vec(&v), Err(EncodeError::DepthExceeded));
}

#[test]
fn lenient_accepts_well_formed_variants() {
    let l = |s: &str| from_slice_lenient(&h(s)).unwrap();
    assert_eq!(l("18 05"), Value::Integer(5));
    assert_eq!(l("5f 41 01 42 02 03 ff"), Value::bytes(vec![1, 2, 3]));
    assert_eq!(l("7f 61 61 60 61 62 ff"), Value::text("ab"));
    assert_eq!(
        l("9f 01 9f ff ff"),
        Value::Array(vec![Value::Integer(1), Value::Array(vec![])])
    );
    assert_eq!(
        l("a2 01 00 01 01"),
        Value::Map(vec![
            (Value::Integer(1), Value::Integer(0)),
            (Value::Integer(1), Value::Integer(1))
        ])
    );
    assert_eq!(l("fb 3f f8 00 00 00 00 00 00"), Value::Float(1.5));
    let e = |s: &str| from_slice_lenient(&h(s)).unwrap_err();
    assert_eq!(e("5f 61 61 ff").kind, DecodeErrorKind::InvalidChunk);
    assert_eq!(e("5f 5f ff ff").kind, DecodeErrorKind::InvalidChunk);
    assert_eq!(
        e("7f 61 c3 61 a9 ff"),
        DecodeError {
            offset: 1,
            kind: DecodeErrorKind::InvalidUtf8
        }
    );
    assert_eq!(e("bf 01 ff").kind, DecodeErrorKind::StrayBreak);
    assert_eq!(e("9f 01").kind, DecodeErrorKind::Truncated);
    assert_eq!(e("01 00").kind, DecodeErrorKind::TrailingBytes);
    assert_eq!(e("f8 10").kind, DecodeErrorKind::InvalidSimple(16));
}

#[test]
fn error_codes() {
    let e = from_slice(&h("a2 61 62 00 61 61 00")).unwrap_err();
    assert_eq!(
        (e.code(), e.requirement()),
        (ErrorCode::SerializationMismatch, Some("BIND-IV-A-02"))
    );
    let e = from_slice(&h("9f ff")).unwrap_err();
    assert_eq!(
        (e.code(), e.requirement()),
        (ErrorCode::SerializationMismatch, Some("BIND-IV-A-03"))
    );
    let e = from_slice(&h("fa 3f c0 00 00")).unwrap_err();
    assert_eq!(
        (e.code(), e.requirement()),
        (ErrorCode::SerializationMismatch, Some("BIND-IV-A-04"))
    );
    let e = from_slice(&h("a2 01 00 01 01")).unwrap_err();
    assert_eq!(
        (e.code(), e.requirement()),
        (ErrorCode::SerializationMismatch, Some("BIND-IV-A-05"))
    );
    let e = from_slice(&h("82 01")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::TransientSerializationFailure);
    let e = from_slice(&h("ff")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::TransientSerializationFailure);
}

/// RFC 8742 sequences: item boundaries, and refusal of anything a strict single-item decode
/// refuses, with the failing item's index (moved from the audit module's boundary walker).
#[test]
fn sequence_boundaries_are_bounded_and_total() {
    let one = |b: &[u8]| super::sequence_from_slice(b).map(|v| v.len());
    assert_eq!(one(&[0x00]), Ok(1));
    assert_eq!(one(&[0x18, 0x20]), Ok(1));
    assert_eq!(one(&[0x82, 0x01, 0xa1, 0x61, 0x61, 0xf6]), Ok(1));
    assert_eq!(one(&[0xc0, 0x61, 0x41]), Ok(1));
    assert_eq!(one(&[0x00, 0x18, 0x20, 0xc0, 0x61, 0x41]), Ok(3));
    assert!(one(&[0x9f, 0xff]).is_err(), "indefinite length");
    assert!(one(&[0x1c]).is_err(), "reserved ai");
    assert!(one(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(one(&[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(one(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(one(&[0x19, 0x01]).is_err(), "truncated argument");
    assert!(super::from_slice(&[]).is_err());
    assert_eq!(one(&[]), Ok(0));
    // The error names the failing item and an offset into the whole input.
    let (index, e) = super::sequence_from_slice(&[0x00, 0x01, 0x19, 0x01]).unwrap_err();
    assert_eq!((index, e.offset), (2, 2));
}
