//! Non-deterministic variants of a deterministically encoded item, for negative tests
//! and fault injection (BIND-IV-A-02..05). Pure functions: each takes the bytes of a
//! valid deterministic item and returns a variant, or `None` when the item has nothing
//! the mutation applies to (or the input is not well-formed).
//!
//! Every variant is well-formed, decodes with [`super::from_slice_lenient`] to the same
//! logical value up to map order (except [`duplicate_key`]), and is rejected by
//! [`super::from_slice`] with the kind named on each function.

use super::head::Width;
use super::syntax::{Len, Mode, Node, StrBody, parse};

/// Applies `f` to the first node (pre-order) for which it returns `true`.
fn first(n: &mut Node, f: &mut dyn FnMut(&mut Node) -> bool) -> bool {
    if f(n) {
        return true;
    }
    match n {
        Node::Array(_, items) => items.iter_mut().any(|i| first(i, f)),
        Node::Map(_, entries) => entries.iter_mut().any(|(k, v)| first(k, f) || first(v, f)),
        Node::Tag(_, _, inner) => first(inner, f),
        _ => false,
    }
}

fn apply(bytes: &[u8], f: &mut dyn FnMut(&mut Node) -> bool) -> Option<Vec<u8>> {
    let mut node = parse(bytes, Mode::Lenient).ok()?;
    first(&mut node, f).then(|| node.to_bytes())
}

/// The first map with two or more entries gets its first two entries swapped.
/// Strict decoding fails with `UnsortedKeys`.
pub fn reorder_map_keys(bytes: &[u8]) -> Option<Vec<u8>> {
    apply(bytes, &mut |n| match n {
        Node::Map(_, e) if e.len() >= 2 => {
            e.swap(0, 1);
            true
        }
        _ => false,
    })
}

/// The first array, map or string is made indefinite-length (a string becomes one
/// chunk). Strict decoding fails with `IndefiniteLength`.
pub fn indefinite_length(bytes: &[u8]) -> Option<Vec<u8>> {
    apply(bytes, &mut |n| match n {
        Node::Array(len, _) | Node::Map(len, _) => {
            *len = Len::Indefinite;
            true
        }
        Node::Bytes(body) | Node::Text(body) => {
            if let StrBody::Definite(_, data) = body {
                let data = std::mem::take(data);
                let chunks = if data.is_empty() {
                    Vec::new()
                } else {
                    vec![(Width::shortest(data.len() as u64), data)]
                };
                *body = StrBody::Indefinite(chunks);
            }
            true
        }
        _ => false,
    })
}

/// The first integer, length or tag head that can be widened is encoded one width
/// wider. Strict decoding fails with `NonShortestHead`.
pub fn non_shortest_int(bytes: &[u8]) -> Option<Vec<u8>> {
    fn widen(w: &mut Width) -> bool {
        match w.wider() {
            Some(x) => {
                *w = x;
                true
            }
            None => false,
        }
    }
    apply(bytes, &mut |n| match n {
        Node::Uint(_, w) | Node::Nint(_, w) | Node::Tag(_, w, _) => widen(w),
        Node::Bytes(StrBody::Definite(w, _)) | Node::Text(StrBody::Definite(w, _)) => widen(w),
        Node::Array(Len::Definite(w), _) | Node::Map(Len::Definite(w), _) => widen(w),
        _ => false,
    })
}

/// The first float narrower than binary64 is encoded one width wider (a NaN as the
/// wider quiet NaN). Strict decoding fails with `NonShortestFloat`.
pub fn non_shortest_float(bytes: &[u8]) -> Option<Vec<u8>> {
    apply(bytes, &mut |n| match n {
        Node::Float(f) => match f.wider() {
            Some(x) => {
                *f = x;
                true
            }
            None => false,
        },
        _ => false,
    })
}

/// The first non-empty map gets its first entry repeated right after itself.
/// Strict decoding fails with `DuplicateKey`.
pub fn duplicate_key(bytes: &[u8]) -> Option<Vec<u8>> {
    apply(bytes, &mut |n| match n {
        Node::Map(len, e) if !e.is_empty() => {
            let dup = e[0].clone();
            e.insert(1, dup);
            if let Len::Definite(w) = len {
                *w = Width::shortest(e.len() as u64);
            }
            true
        }
        _ => false,
    })
}

/// Every map re-encoded in RFC 7049 §3.9 "length-first" canonical order (shorter
/// encoded key first, then bytewise). `None` when that is identical to the input.
/// Strict decoding fails with `UnsortedKeys`.
pub fn length_first_order(bytes: &[u8]) -> Option<Vec<u8>> {
    fn sort(n: &mut Node) {
        match n {
            Node::Array(_, items) => items.iter_mut().for_each(sort),
            Node::Map(_, entries) => {
                for (k, v) in entries.iter_mut() {
                    sort(k);
                    sort(v);
                }
                entries.sort_by_cached_key(|(k, _)| {
                    let b = k.to_bytes();
                    (b.len(), b)
                });
            }
            Node::Tag(_, _, inner) => sort(inner),
            _ => {}
        }
    }
    let mut node = parse(bytes, Mode::Lenient).ok()?;
    sort(&mut node);
    let out = node.to_bytes();
    (out != bytes).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{DecodeErrorKind, from_slice, from_slice_lenient};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn strict_kind(b: &[u8]) -> DecodeErrorKind {
        from_slice(b).unwrap_err().kind
    }

    #[test]
    fn each_mutation() {
        // {1: 1.5, "a": [2]}
        let b = h("a201f93e0061618102");
        assert!(from_slice(&b).is_ok());
        let r = reorder_map_keys(&b).unwrap();
        assert_eq!(hex::encode(&r), "a26161810201f93e00");
        assert_eq!(strict_kind(&r), DecodeErrorKind::UnsortedKeys);
        let r = indefinite_length(&b).unwrap();
        assert_eq!(hex::encode(&r), "bf01f93e0061618102ff");
        assert_eq!(strict_kind(&r), DecodeErrorKind::IndefiniteLength);
        let r = non_shortest_int(&b).unwrap();
        assert_eq!(hex::encode(&r), "b80201f93e0061618102");
        assert_eq!(strict_kind(&r), DecodeErrorKind::NonShortestHead);
        let r = non_shortest_float(&b).unwrap();
        assert_eq!(hex::encode(&r), "a201fa3fc0000061618102");
        assert_eq!(strict_kind(&r), DecodeErrorKind::NonShortestFloat);
        let r = duplicate_key(&b).unwrap();
        assert_eq!(hex::encode(&r), "a301f93e0001f93e0061618102");
        assert_eq!(strict_kind(&r), DecodeErrorKind::DuplicateKey);
        assert!(from_slice_lenient(&r).is_ok());
        assert_eq!(length_first_order(&b), None);
        // {1000: 0, "a": 0}: bytewise puts 1000 (19 03e8) first, length-first puts "a" first.
        let b = h("a21903e800616100");
        let r = length_first_order(&b).unwrap();
        assert_eq!(hex::encode(&r), "a26161001903e800");
        assert_eq!(strict_kind(&r), DecodeErrorKind::UnsortedKeys);
    }

    #[test]
    fn nothing_to_mutate() {
        assert_eq!(reorder_map_keys(&h("a10102")), None);
        assert_eq!(indefinite_length(&h("01")), None);
        assert_eq!(non_shortest_float(&h("fb3ff199999999999a")), None);
        assert_eq!(non_shortest_int(&h("f5")), None);
        assert_eq!(duplicate_key(&h("a0")), None);
        assert_eq!(reorder_map_keys(&h("ff")), None);
    }
}
