//! MTP-UUID vectors (SPEC IX, BIND IX; PROFILE G-29): one valid id per object type and
//! for the extreme timestamps, in text, binary and CBOR form, and malformed text and binary
//! forms, each refused with 0102.
//!
//! Seeds: `uuid/<name>/random` (the 17 random bytes, first bytes of a [`SeededRng`]). The
//! creator of every valid id is the shared world's provider (its DID hashes into the
//! source field).

use serde_json::json;

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::SeededRng;
use mtp_protocol::errors::Coded;
use mtp_protocol::uuid::{MtpUuid, ObjectType, source_of};

use super::doc::{VectorDoc, files_of};
use super::world::{T0, world};
use super::{At, MASTER, VectorError, VectorFile, ensure};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "uuid";

const COMMON: &[&str] = &[
    "SPEC-IX-02",
    "SPEC-IX-I01",
    "SPEC-IX-I02",
    "SPEC-X-A-08",
    "BIND-IX-01",
    "BIND-IX-02",
    "BIND-IX-I01",
    "BIND-IX-I02",
    "BIND-IX-I03",
];

/// Nanoseconds past `T0` of every valid id (exercises the sub-second part).
const NANOS: u64 = 123_456_789;

fn random(name: &str) -> [u8; 17] {
    SeededRng::from_master(&MASTER, &format!("uuid/{name}/random")).bytes()
}

fn type_requirement(t: ObjectType) -> Option<&'static str> {
    match t {
        ObjectType::Offer => Some("BIND-VII-A-01"),
        ObjectType::Request => Some("BIND-VII-B-01"),
        ObjectType::Terms => Some("BIND-VII-C-01"),
        ObjectType::Receipt => Some("BIND-VII-D-01"),
        _ => None,
    }
}

fn valid(
    name: &str,
    ty: ObjectType,
    timestamp_ns: u64,
    creator: &str,
) -> Result<VectorDoc, VectorError> {
    let id_name = format!("{FAMILY}/valid-{name}");
    let r = random(name);
    let id = MtpUuid::new(ty, timestamp_ns, source_of(creator), r);
    let text = id.to_string();
    let bytes = cbor::to_vec(&id.to_value()).at(&id_name)?;
    // Self-check: text and binary round trips, the layout.
    ensure(&id_name, MtpUuid::parse(&text).ok() == Some(id), || {
        "text form does not parse back".into()
    })?;
    let back = cbor::from_slice(&bytes)
        .at(&id_name)
        .and_then(|v| MtpUuid::from_value(&v).at(&id_name))?;
    ensure(&id_name, back == id, || "CBOR does not decode back".into())?;
    ensure(
        &id_name,
        text.len() == 67 && bytes.len() == 34 && bytes[..2] == [0x58, 0x20],
        || format!("lengths: text {}, cbor {}", text.len(), bytes.len()),
    )?;
    let mut reqs: Vec<&'static str> = COMMON.to_vec();
    reqs.push("BIND-VI-E-02");
    reqs.push("BIND-VI-E-I01");
    if let Some(r) = type_requirement(ty) {
        reqs.push(r);
    }
    let ts = mtp_protocol::time::Timestamp::from_unix_nanos(timestamp_ns);
    Ok(VectorDoc::new(
        id_name,
        &reqs,
        &format!(
            "A version-1 MTP-UUID of type {} (nibble 0x{:x}): byte 0 = version || type, bytes \
             1..8 = timestamp in ns since the Unix epoch (big-endian), bytes 9..14 = \
             SHA-256(creator DID)[0..6], bytes 15..31 = 136 random bits. Text form: 67 \
             lowercase hex characters with hyphens at 2, 19 and 32; CBOR: a 32-byte byte \
             string (0x58 0x20). Text -> binary -> text is the identity.",
            ty.name(),
            ty.nibble()
        ),
    )
    .input("type", ty.name())
    .input("type_nibble", ty.nibble())
    .input("version", 1)
    .input("timestamp_ns", timestamp_ns.to_string())
    .input("timestamp", ts.to_rfc3339())
    .input("creator_did", creator)
    .input("random_seed_label", format!("uuid/{name}/random"))
    .input("random", hex::encode(r))
    .expected("text", text.clone())
    .expected("binary", hex::encode(id.as_bytes()))
    .expected("source", hex::encode(source_of(creator)))
    .expected(
        "fields",
        json!({
            "version_type": hex::encode([id.as_bytes()[0]]),
            "timestamp": hex::encode(&id.as_bytes()[1..9]),
            "source": hex::encode(&id.as_bytes()[9..15]),
            "random": hex::encode(&id.as_bytes()[15..]),
        }),
    )
    .codec(json!({
        "type": "mtp_uuid",
        "operations": ["encode", "parse"],
        "valid": true,
        "text": text,
    }))
    .bytes(bytes))
}

/// A malformed text form: `codec_encode` of the text must be refused with 0102.
fn invalid_text(name: &str, text: &str, why: &str) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/invalid-text-{name}");
    let err = match MtpUuid::parse(text) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "malformed text parses".into(),
            });
        }
        Err(e) => e,
    };
    let code = err.code().as_u16();
    ensure(&id, code == 102, || format!("code {code}"))?;
    Ok(VectorDoc::new(
        id,
        &["SPEC-IX-02", "SPEC-IX-I02", "BIND-IX-I02", "BIND-IX-I03", "BIND-IX-I01", "SPEC-X-A-08"],
        &format!("Malformed MTP-UUID text form ({why}): refused with 0102 Malformed MTP-UUID (PROFILE G-29)."),
    )
    .input("text", text)
    .expected("valid", false)
    .expected("code", code)
    .expected("error", err.to_string())
    .codec(json!({
        "type": "mtp_uuid",
        "operations": ["encode"],
        "valid": false,
        "code": code,
        "text": text,
    })))
}

/// A malformed CBOR form: `codec_parse` must refuse it with 0102.
fn invalid_binary(name: &str, item: Value, why: &str) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/invalid-binary-{name}");
    let bytes = cbor::to_vec(&item).at(&id)?;
    let err = match MtpUuid::from_value(&item) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "malformed binary form decodes".into(),
            });
        }
        Err(e) => e,
    };
    let code = err.code().as_u16();
    ensure(&id, code == 102, || format!("code {code}"))?;
    Ok(VectorDoc::new(
        id,
        &["BIND-IX-01", "BIND-IX-I01", "BIND-IX-I03", "SPEC-X-A-08"],
        &format!(
            "Malformed MTP-UUID in CBOR ({why}): deterministic CBOR, but not a valid MTP-UUID; \
             refused with 0102 Malformed MTP-UUID (PROFILE G-29)."
        ),
    )
    .expected("valid", false)
    .expected("code", code)
    .expected("error", err.to_string())
    .codec(json!({
        "type": "mtp_uuid",
        "operations": ["parse"],
        "valid": false,
        "code": code,
    }))
    .bytes(bytes))
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let w = world()?;
    let creator = w.provider.did_str();
    let t0_ns = u64::try_from(T0).unwrap_or(0) * 1_000_000_000 + NANOS;
    let mut docs = Vec::new();
    for ty in ObjectType::ALL {
        let name = ty.name().to_ascii_lowercase();
        docs.push(valid(&name, ty, t0_ns, creator)?);
    }
    docs.push(valid("timestamp-zero", ObjectType::Offer, 0, creator)?);
    docs.push(valid(
        "timestamp-max",
        ObjectType::Terms,
        u64::MAX,
        creator,
    )?);

    // Malformed text forms, derived from the valid Offer id.
    let base = MtpUuid::new(
        ObjectType::Offer,
        t0_ns,
        source_of(creator),
        random("offer"),
    );
    let text = base.to_string();
    let replace_at = |i: usize, c: char| -> String {
        text.char_indices()
            .map(|(j, x)| if j == i { c } else { x })
            .collect()
    };
    let upper: String = text.to_ascii_uppercase();
    let moved_hyphen = {
        let mut chars: Vec<char> = text.chars().collect();
        chars.swap(2, 3);
        chars.into_iter().collect::<String>()
    };
    let no_hyphens: String = text.chars().filter(|c| *c != '-').collect();
    let cases: Vec<(&str, String, &str)> = vec![
        ("uppercase", upper, "upper-case hex digits"),
        (
            "too-short",
            text.chars().take(66).collect(),
            "66 characters",
        ),
        ("too-long", format!("{text}0"), "68 characters"),
        (
            "hyphen-misplaced",
            moved_hyphen,
            "first hyphen at offset 3 instead of 2",
        ),
        ("no-hyphens", no_hyphens, "64 hex digits without hyphens"),
        ("non-hex", replace_at(40, 'g'), "non-hex character 'g'"),
        ("version-2", replace_at(0, '2'), "version nibble 2"),
        ("type-0", replace_at(1, '0'), "reserved type nibble 0x0"),
        (
            "type-a",
            replace_at(1, 'a'),
            "undeclared extension type nibble 0xa",
        ),
    ];
    for (name, t, why) in &cases {
        docs.push(invalid_text(name, t, why)?);
    }

    // Malformed binary forms.
    let raw = *base.as_bytes();
    let with_head = |head: u8| {
        let mut b = raw;
        b[0] = head;
        Value::Bytes(b.to_vec())
    };
    let binary: Vec<(&str, Value, &str)> = vec![
        (
            "31-bytes",
            Value::Bytes(raw[..31].to_vec()),
            "a 31-byte byte string",
        ),
        (
            "33-bytes",
            Value::Bytes([&raw[..], &[0u8]].concat()),
            "a 33-byte byte string",
        ),
        (
            "text-string",
            Value::text(text.clone()),
            "the 67-character text form as a CBOR text string instead of a byte string",
        ),
        ("version-0", with_head(0x01), "version nibble 0"),
        ("type-0", with_head(0x10), "reserved type nibble 0x0"),
        (
            "type-f",
            with_head(0x1f),
            "undeclared extension type nibble 0xf",
        ),
    ];
    for (name, item, why) in binary {
        docs.push(invalid_binary(name, item, why)?);
    }
    files_of(&docs)
}
