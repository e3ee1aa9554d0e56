//! Property tests of the deterministic CBOR layer (BIND IV-A, IV-B, IV-C).

use mtp_protocol::cbor::{
    self, DecodeErrorKind, INT_MAX, INT_MIN, Value,
    diag::{from_diag, to_diag, value_to_diag},
    json::{from_json, to_json},
    mutate,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn arb_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<u16>().prop_map(|b| {
            // Values exactly representable in binary16 (via the decoder).
            let bytes = [0xf9, (b >> 8) as u8, b as u8];
            match cbor::from_slice_lenient(&bytes) {
                Ok(Value::Float(f)) => f,
                _ => 0.0,
            }
        }),
        any::<f32>().prop_map(f64::from),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(65504.0),
        Just(1e-7),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter),
        "[a-z]{0,4}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        (INT_MIN..=INT_MAX).prop_map(Value::Integer),
        (0i128..30).prop_map(Value::Integer),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        arb_text().prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Undefined),
        prop_oneof![0u8..20, 32u8..=255].prop_map(Value::Simple),
        arb_float().prop_map(Value::Float),
    ]
}

/// Drops entries whose encoded key repeats an earlier one (duplicates cannot be encoded).
fn dedup(entries: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (k, v) in entries {
        let kb = cbor::to_vec(&k).unwrap_or_default();
        if !seen.contains(&kb) {
            seen.push(kb);
            out.push((k, v));
        }
    }
    out
}

fn arb_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner.clone()), 0..5)
                .prop_map(|e| Value::Map(dedup(e))),
            (prop_oneof![0u64..2, 4u64..30, any::<u64>()], inner)
                .prop_map(|(t, v)| Value::Tag(if t == 2 || t == 3 { 4 } else { t }, Box::new(v))),
        ]
    })
}

/// Values JSON can carry exactly: integers in the i64/u64 range, non-integral finite
/// floats, text, bool, null, arrays, maps with unique text keys.
fn arb_json_compatible() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|i| Value::Integer(i.into())),
        any::<f64>()
            .prop_filter("non-integral finite", |f| f.is_finite() && f.fract() != 0.0)
            .prop_map(Value::Float),
        arb_text().prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((arb_text(), inner), 0..5).prop_map(|e| {
                Value::Map(dedup(
                    e.into_iter().map(|(k, v)| (Value::Text(k), v)).collect(),
                ))
            }),
        ]
    })
}

/// Permutes every map's entries (deterministically from `seed`).
fn shuffle(v: &mut Value, seed: &mut u64) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| shuffle(i, seed)),
        Value::Map(entries) => {
            for (k, val) in entries.iter_mut() {
                shuffle(k, seed);
                shuffle(val, seed);
            }
            for i in (1..entries.len()).rev() {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let j = (*seed >> 33) as usize % (i + 1);
                entries.swap(i, j);
            }
        }
        Value::Tag(_, inner) => shuffle(inner, seed),
        _ => {}
    }
}

type Mutation = fn(&[u8]) -> Option<Vec<u8>>;

const MUTATIONS: [(&str, Mutation, DecodeErrorKind); 6] = [
    (
        "reorder_map_keys",
        mutate::reorder_map_keys,
        DecodeErrorKind::UnsortedKeys,
    ),
    (
        "indefinite_length",
        mutate::indefinite_length,
        DecodeErrorKind::IndefiniteLength,
    ),
    (
        "non_shortest_int",
        mutate::non_shortest_int,
        DecodeErrorKind::NonShortestHead,
    ),
    (
        "non_shortest_float",
        mutate::non_shortest_float,
        DecodeErrorKind::NonShortestFloat,
    ),
    (
        "duplicate_key",
        mutate::duplicate_key,
        DecodeErrorKind::DuplicateKey,
    ),
    (
        "length_first_order",
        mutate::length_first_order,
        DecodeErrorKind::UnsortedKeys,
    ),
];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 384,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/cbor_properties.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn decode_of_encode_is_canonical(v in arb_value()) {
        let b = cbor::to_vec(&v).unwrap();
        let d = cbor::from_slice(&b).unwrap();
        prop_assert!(d.bitwise_eq(&v.canonical()), "{:?} vs {:?}", d, v.canonical());
        prop_assert!(cbor::check_deterministic(&b).is_ok());
    }

    #[test]
    fn encoding_ignores_map_insertion_order(v in arb_value(), seed in any::<u64>()) {
        let mut s = v.clone();
        let mut seed = seed;
        shuffle(&mut s, &mut seed);
        prop_assert_eq!(cbor::to_vec(&s).unwrap(), cbor::to_vec(&v).unwrap());
    }

    #[test]
    fn encode_is_idempotent_through_lenient_decoder(v in arb_value()) {
        let b = cbor::to_vec(&v).unwrap();
        let again = cbor::to_vec(&cbor::from_slice_lenient(&b).unwrap()).unwrap();
        prop_assert_eq!(again, b);
    }

    #[test]
    fn diag_round_trips(v in arb_value()) {
        let b = cbor::to_vec(&v).unwrap();
        let d = to_diag(&b).unwrap();
        prop_assert_eq!(from_diag(&d).unwrap(), b.clone(), "{}", d);
        let vd = value_to_diag(&v);
        let back = cbor::from_slice(&from_diag(&vd).unwrap()).unwrap();
        prop_assert!(back.bitwise_eq(&v.canonical()), "{}", vd);
    }

    #[test]
    fn json_round_trips(v in arb_json_compatible()) {
        let j = to_json(&v).unwrap();
        prop_assert!(from_json(&j).unwrap().bitwise_eq(&v));
        let text = serde_json::to_string(&j).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert!(from_json(&parsed).unwrap().bitwise_eq(&v), "{}", text);
    }

    #[test]
    fn mutations_are_rejected_strictly_and_accepted_leniently(v in arb_value()) {
        let b = cbor::to_vec(&v).unwrap();
        for (name, m, kind) in MUTATIONS {
            let Some(nb) = m(&b) else { continue };
            prop_assert_ne!(&nb, &b, "{}", name);
            let e = cbor::from_slice(&nb).unwrap_err();
            prop_assert_eq!(&e.kind, &kind, "{} {}", name, hex::encode(&nb));
            let lenient = cbor::from_slice_lenient(&nb).unwrap();
            if name != "duplicate_key" {
                prop_assert!(lenient.canonical().bitwise_eq(&v.canonical()), "{}", name);
            }
            // Lossless diagnostic notation of the non-deterministic form too.
            prop_assert_eq!(from_diag(&to_diag(&nb).unwrap()).unwrap(), nb.clone(), "{}", name);
        }
    }

    #[test]
    fn chained_mutations_round_trip_through_diag(v in arb_value(), picks in prop::collection::vec(0usize..6, 1..5)) {
        let mut b = cbor::to_vec(&v).unwrap();
        for p in picks {
            if let Some(nb) = MUTATIONS[p].1(&b) {
                b = nb;
            }
        }
        let d = to_diag(&b).unwrap();
        prop_assert_eq!(from_diag(&d).unwrap(), b.clone(), "{}", d);
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let strict = cbor::from_slice(&bytes);
        let lenient = cbor::from_slice_lenient(&bytes);
        if strict.is_ok() {
            prop_assert!(lenient.is_ok());
            prop_assert_eq!(cbor::to_vec(&strict.unwrap()).unwrap(), bytes.clone());
        }
        if let Ok(d) = to_diag(&bytes) {
            prop_assert_eq!(from_diag(&d).unwrap(), bytes.clone(), "{}", d);
        }
        for (_, m, _) in MUTATIONS {
            let _ = m(&bytes);
        }
    }

    #[test]
    fn from_diag_never_panics(s in any::<String>()) {
        let _ = from_diag(&s);
    }

    #[test]
    fn from_diag_never_panics_on_diag_like_text(
        s in "[\\[\\]{}()_,: 0-9a-fhbx'\"\\\\.eE+\\-#/NaInftyrulsmp]{0,40}"
    ) {
        if let Ok(b) = from_diag(&s) {
            prop_assert!(cbor::from_slice_lenient(&b).is_ok(), "{}", s);
        }
    }
}
