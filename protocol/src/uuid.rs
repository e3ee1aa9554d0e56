//! MTP-UUID (SPEC IX, BIND IX; PROFILE G-11, G-29).
//!
//! A 256-bit identifier, big-endian (PROFILE G-29):
//!
//! | bytes   | bits    | field                                              |
//! |---------|---------|----------------------------------------------------|
//! | 0       | 255–248 | version nibble (`0x1`) ‖ type nibble               |
//! | 1..9    | 247–184 | timestamp, nanoseconds since the Unix epoch        |
//! | 9..15   | 183–136 | source = SHA-256(UTF-8 of the full creator DID)[0..6] |
//! | 15..32  | 135–0   | 136 random bits, supplied by the caller (sans-IO)  |
//!
//! Text form (SPEC-IX-02, BIND-IX-I02): `vt-tttttttttttttttt-ssssssssssss-r{34}`, 67
//! lowercase hex characters with hyphens at offsets 2, 19 and 32. Anything else is
//! malformed (SPEC-IX-03). CBOR form: a 32-byte byte string (BIND-IX-01).

use std::collections::HashMap;
use std::fmt;

use crate::cbor::Value;
use crate::errors::{Coded, ErrorCode};
use crate::time::Timestamp;

/// The only MTP-UUID version defined (BIND-IX-I01).
pub const VERSION: u8 = 1;
/// Binary length in bytes (BIND IX).
pub const BYTE_LEN: usize = 32;
/// Canonical text length (SPEC-IX-I02).
pub const TEXT_LEN: usize = 67;
/// Offsets of the three hyphens in the text form (SPEC-IX-I02).
pub const HYPHEN_POSITIONS: [usize; 3] = [2, 19, 32];

/// Object types with a type-nibble value (BIND-IX-I03).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ObjectType {
    Offer = 0x1,
    Request = 0x2,
    Terms = 0x3,
    Receipt = 0x4,
    Mandate = 0x5,
    Agent = 0x6,
    Principal = 0x7,
    Manifest = 0x8,
    Error = 0x9,
}

impl ObjectType {
    pub const ALL: [ObjectType; 9] = [
        ObjectType::Offer,
        ObjectType::Request,
        ObjectType::Terms,
        ObjectType::Receipt,
        ObjectType::Mandate,
        ObjectType::Agent,
        ObjectType::Principal,
        ObjectType::Manifest,
        ObjectType::Error,
    ];

    pub fn nibble(self) -> u8 {
        self as u8
    }

    /// `None` for 0x0 (reserved) and 0xA–0xF (extensions).
    pub fn from_nibble(n: u8) -> Option<ObjectType> {
        ObjectType::ALL.into_iter().find(|t| t.nibble() == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Offer => "offer",
            ObjectType::Request => "request",
            ObjectType::Terms => "terms",
            ObjectType::Receipt => "receipt",
            ObjectType::Mandate => "mandate",
            ObjectType::Agent => "agent",
            ObjectType::Principal => "principal",
            ObjectType::Manifest => "manifest",
            ObjectType::Error => "error",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:x})", self.name(), self.nibble())
    }
}

/// The type nibble of a well-formed id: a defined object type, or an extension nibble
/// 0xA–0xF (BIND-IX-I03; only accepted when the extension is declared, PROFILE G-29).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TypeNibble {
    Object(ObjectType),
    /// Invariant: `0xA..=0xF`.
    Extension(u8),
}

impl TypeNibble {
    pub fn value(self) -> u8 {
        match self {
            TypeNibble::Object(t) => t.nibble(),
            TypeNibble::Extension(n) => n,
        }
    }
}

impl From<ObjectType> for TypeNibble {
    fn from(t: ObjectType) -> TypeNibble {
        TypeNibble::Object(t)
    }
}

impl fmt::Display for TypeNibble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeNibble::Object(t) => t.fmt(f),
            TypeNibble::Extension(n) => write!(f, "extension (0x{n:x})"),
        }
    }
}

/// Why an MTP-UUID is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UuidError {
    /// Text form not 67 characters (SPEC-IX-I02).
    #[error("MTP-UUID text must be 67 characters, got {len}")]
    WrongLength { len: usize },
    /// Binary form not 32 bytes (BIND-IX-01).
    #[error("MTP-UUID must be 32 bytes, got {len}")]
    WrongByteLength { len: usize },
    /// CBOR item is not a byte string (BIND-IX-01).
    #[error("MTP-UUID must be a CBOR byte string (major type 2), got {found}")]
    NotByteString { found: &'static str },
    /// Upper-case hex digit (SPEC-IX-02).
    #[error("upper-case hex digit at offset {position} (MTP-UUID text is lowercase)")]
    UpperCase { position: usize },
    /// Missing hyphen at 2/19/32, or a hyphen elsewhere (SPEC-IX-I02).
    #[error("hyphen misplaced at offset {position} (hyphens belong at 2, 19 and 32)")]
    BadHyphen { position: usize },
    /// A character that is neither a hex digit nor a hyphen.
    #[error("non-hex character at offset {position}")]
    NonHex { position: usize },
    /// Version nibble other than 0x1 (BIND-IX-I01; PROFILE G-29).
    #[error("MTP-UUID version {0} is not supported (only version 1)")]
    BadVersion(u8),
    /// Type nibble 0x0 is reserved (BIND-IX-I03).
    #[error("MTP-UUID type nibble 0x0 is reserved")]
    ReservedType,
    /// Type nibble 0xA–0xF without a declared extension (BIND-IX-I03; PROFILE G-29).
    #[error("MTP-UUID type nibble 0x{0:x} is an undeclared extension type")]
    ExtensionType(u8),
    /// Well-formed id with the wrong type nibble for the field (BIND-IX-I03).
    #[error("wrong type nibble for the field: expected {expected}, found {found}")]
    WrongType {
        expected: ObjectType,
        found: TypeNibble,
    },
    /// `generate` called with a time outside 1970–2554 (the u64 nanosecond range).
    #[error("timestamp {0} cannot be represented as u64 nanoseconds since the Unix epoch")]
    TimestampOutOfRange(Timestamp),
    /// The id is already bound to different content (SPEC-IX-04, SPEC-IX-05).
    #[error("MTP-UUID {id} reused: already bound to different content")]
    Reuse {
        id: MtpUuid,
        bound_digest: [u8; 32],
        new_digest: [u8; 32],
    },
}

impl Coded for UuidError {
    fn code(&self) -> ErrorCode {
        match self {
            UuidError::Reuse { .. } => ErrorCode::UuidReuse,
            _ => ErrorCode::MalformedUuid,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            UuidError::WrongLength { .. }
            | UuidError::UpperCase { .. }
            | UuidError::BadHyphen { .. }
            | UuidError::NonHex { .. } => "SPEC-IX-03",
            UuidError::WrongByteLength { .. } | UuidError::NotByteString { .. } => "BIND-IX-01",
            UuidError::BadVersion(_) | UuidError::TimestampOutOfRange(_) => "BIND-IX-I01",
            UuidError::ReservedType | UuidError::ExtensionType(_) | UuidError::WrongType { .. } => {
                "BIND-IX-I03"
            }
            UuidError::Reuse { .. } => "SPEC-IX-04",
        })
    }
}

/// An MTP-UUID: 32 raw bytes, big-endian fields (BIND IX; PROFILE G-29).
///
/// Invariant: version nibble 1 and a type nibble 0x1–0xF (0xA–0xF only through the
/// explicit extension constructors/parsers).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MtpUuid([u8; BYTE_LEN]);

/// `SHA-256(UTF-8 of the full DID string)[0..6]` (BIND-IX-I01; PROFILE G-29).
pub fn source_of(did: &str) -> [u8; 6] {
    let h = crate::crypto::sha256(did.as_bytes());
    let mut s = [0u8; 6];
    s.copy_from_slice(&h[..6]);
    s
}

impl MtpUuid {
    fn assemble(nibble: u8, timestamp_ns: u64, source: [u8; 6], random: [u8; 17]) -> MtpUuid {
        let mut b = [0u8; BYTE_LEN];
        b[0] = (VERSION << 4) | (nibble & 0x0f);
        b[1..9].copy_from_slice(&timestamp_ns.to_be_bytes());
        b[9..15].copy_from_slice(&source);
        b[15..32].copy_from_slice(&random);
        MtpUuid(b)
    }

    /// A version-1 id from its fields.
    pub fn new(ty: ObjectType, timestamp_ns: u64, source: [u8; 6], random: [u8; 17]) -> MtpUuid {
        MtpUuid::assemble(ty.nibble(), timestamp_ns, source, random)
    }

    /// A version-1 id with an extension type nibble (0xA–0xF).
    pub fn new_extension(
        nibble: u8,
        timestamp_ns: u64,
        source: [u8; 6],
        random: [u8; 17],
    ) -> Result<MtpUuid, UuidError> {
        match nibble {
            0xa..=0xf => Ok(MtpUuid::assemble(nibble, timestamp_ns, source, random)),
            0 => Err(UuidError::ReservedType),
            _ => Err(UuidError::ExtensionType(nibble)),
        }
    }

    /// Generates an id for an object created by `creator_did` at `now`; `random` must
    /// come from a CSPRNG (SPEC-IX-I01). The source field hashes the full DID string.
    pub fn generate(
        ty: ObjectType,
        now: Timestamp,
        creator_did: &str,
        random: [u8; 17],
    ) -> Result<MtpUuid, UuidError> {
        let ns = now
            .unix_nanos()
            .ok_or(UuidError::TimestampOutOfRange(now))?;
        Ok(MtpUuid::new(ty, ns, source_of(creator_did), random))
    }

    pub fn version(&self) -> u8 {
        self.0[0] >> 4
    }

    pub fn type_nibble(&self) -> TypeNibble {
        let n = self.0[0] & 0x0f;
        match ObjectType::from_nibble(n) {
            Some(t) => TypeNibble::Object(t),
            None => TypeNibble::Extension(n),
        }
    }

    /// `None` for extension types.
    pub fn object_type(&self) -> Option<ObjectType> {
        ObjectType::from_nibble(self.0[0] & 0x0f)
    }

    pub fn timestamp_ns(&self) -> u64 {
        let mut t = [0u8; 8];
        t.copy_from_slice(&self.0[1..9]);
        u64::from_be_bytes(t)
    }

    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.timestamp_ns())
    }

    pub fn source(&self) -> [u8; 6] {
        let mut s = [0u8; 6];
        s.copy_from_slice(&self.0[9..15]);
        s
    }

    pub fn random(&self) -> [u8; 17] {
        let mut r = [0u8; 17];
        r.copy_from_slice(&self.0[15..32]);
        r
    }

    /// `true` when the timestamp lies more than [`crate::profile::UUID_FUTURE_WARNING_S`]
    /// after `now`: a warning, never a rejection (PROFILE G-29).
    pub fn is_far_future(&self, now: Timestamp) -> bool {
        let limit = crate::profile::UUID_FUTURE_WARNING_S as i128 * 1_000_000_000;
        self.timestamp().nanos_since(now) > limit
    }

    /// Whether the source field matches `did` (BIND-IX-I01).
    pub fn is_from(&self, did: &str) -> bool {
        self.source() == source_of(did)
    }

    pub fn as_bytes(&self) -> &[u8; BYTE_LEN] {
        &self.0
    }

    pub fn to_bytes(self) -> [u8; BYTE_LEN] {
        self.0
    }

    /// Checks the first byte (version and type nibble), PROFILE G-29.
    fn check_head(head: u8, declared_extensions: &[u8]) -> Result<(), UuidError> {
        let version = head >> 4;
        if version != VERSION {
            return Err(UuidError::BadVersion(version));
        }
        match head & 0x0f {
            0 => Err(UuidError::ReservedType),
            n @ 0xa..=0xf if !declared_extensions.contains(&n) => Err(UuidError::ExtensionType(n)),
            _ => Ok(()),
        }
    }

    /// Strict binary decoding: 32 bytes, version 1, type 0x1–0x9.
    pub fn from_bytes(bytes: &[u8]) -> Result<MtpUuid, UuidError> {
        MtpUuid::from_bytes_with_extensions(bytes, &[])
    }

    /// As [`MtpUuid::from_bytes`], additionally accepting the declared extension nibbles
    /// (values outside 0xA–0xF in `declared` are ignored).
    pub fn from_bytes_with_extensions(bytes: &[u8], declared: &[u8]) -> Result<MtpUuid, UuidError> {
        let arr: [u8; BYTE_LEN] = bytes
            .try_into()
            .map_err(|_| UuidError::WrongByteLength { len: bytes.len() })?;
        MtpUuid::check_head(arr[0], declared)?;
        Ok(MtpUuid(arr))
    }

    /// Strict text parsing (SPEC-IX-02, SPEC-IX-03, SPEC-IX-I02): exactly 67 characters,
    /// lowercase hex, hyphens exactly at 2, 19 and 32, version 1, type 0x1–0x9. The first
    /// offending character is reported.
    pub fn parse(s: &str) -> Result<MtpUuid, UuidError> {
        MtpUuid::parse_with_extensions(s, &[])
    }

    /// As [`MtpUuid::parse`], additionally accepting the declared extension nibbles.
    pub fn parse_with_extensions(s: &str, declared: &[u8]) -> Result<MtpUuid, UuidError> {
        let b = s.as_bytes();
        if b.len() != TEXT_LEN {
            return Err(UuidError::WrongLength {
                len: s.chars().count(),
            });
        }
        let mut out = [0u8; BYTE_LEN];
        let mut nibbles = 0usize;
        for (position, &c) in b.iter().enumerate() {
            let is_hyphen_slot = HYPHEN_POSITIONS.contains(&position);
            let v = match c {
                b'-' if is_hyphen_slot => continue,
                _ if is_hyphen_slot => return Err(UuidError::BadHyphen { position }),
                b'-' => return Err(UuidError::BadHyphen { position }),
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => return Err(UuidError::UpperCase { position }),
                _ => return Err(UuidError::NonHex { position }),
            };
            // 64 hex digits fill exactly 32 bytes (67 - 3 hyphens).
            let slot = out
                .get_mut(nibbles / 2)
                .ok_or(UuidError::NonHex { position })?;
            if nibbles.is_multiple_of(2) {
                *slot = v << 4;
            } else {
                *slot |= v;
            }
            nibbles += 1;
        }
        MtpUuid::check_head(out[0], declared)?;
        Ok(MtpUuid(out))
    }

    /// Fails with [`UuidError::WrongType`] unless the type nibble is `expected`
    /// (e.g. `offer_id` must be an Offer id).
    pub fn expect_type(&self, expected: ObjectType) -> Result<(), UuidError> {
        match self.type_nibble() {
            TypeNibble::Object(t) if t == expected => Ok(()),
            found => Err(UuidError::WrongType { expected, found }),
        }
    }

    /// From a CBOR item: must be a byte string of exactly 32 bytes (BIND-IX-01).
    pub fn from_value(v: &Value) -> Result<MtpUuid, UuidError> {
        match v {
            Value::Bytes(b) => MtpUuid::from_bytes(b),
            other => Err(UuidError::NotByteString {
                found: other.kind(),
            }),
        }
    }

    /// From a CBOR item, accepting the declared extension nibbles.
    pub fn from_value_with_extensions(v: &Value, declared: &[u8]) -> Result<MtpUuid, UuidError> {
        match v {
            Value::Bytes(b) => MtpUuid::from_bytes_with_extensions(b, declared),
            other => Err(UuidError::NotByteString {
                found: other.kind(),
            }),
        }
    }

    /// The CBOR item: byte string of the raw 32 bytes (BIND-IX-01).
    pub fn to_value(&self) -> Value {
        Value::Bytes(self.0.to_vec())
    }
}

impl fmt::Display for MtpUuid {
    /// The canonical 67-character text form (SPEC-IX-02).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = |r: std::ops::Range<usize>| hex::encode(&self.0[r]);
        write!(f, "{}-{}-{}-{}", h(0..1), h(1..9), h(9..15), h(15..32))
    }
}

impl fmt::Debug for MtpUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MtpUuid({self})")
    }
}

impl std::str::FromStr for MtpUuid {
    type Err = UuidError;
    fn from_str(s: &str) -> Result<MtpUuid, UuidError> {
        MtpUuid::parse(s)
    }
}

/// Outcome of [`UuidRegistry::reserve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// First sighting: the id is now permanently bound to the content digest.
    New,
    /// Byte-identical resend of a known object (PROFILE G-29): idempotently ignored,
    /// reported as `ErrorCode::DuplicateDeliveryIgnored` (0400, Informational) if at all.
    Duplicate,
}

impl Reservation {
    /// The informational code a duplicate may be logged with (PROFILE G-29).
    pub fn code(self) -> Option<ErrorCode> {
        match self {
            Reservation::New => None,
            Reservation::Duplicate => Some(ErrorCode::DuplicateDeliveryIgnored),
        }
    }
}

/// Permanent id reservations (SPEC-IX-04, SPEC-IX-05): an id, once bound to content, stays
/// bound forever, even after the object is revoked, expired or deleted. There is
/// deliberately no way to release an id.
#[derive(Clone, Debug, Default)]
pub struct UuidRegistry {
    bound: HashMap<MtpUuid, [u8; 32]>,
}

impl UuidRegistry {
    pub fn new() -> UuidRegistry {
        UuidRegistry::default()
    }

    /// Binds `id` to `content_digest` (SHA-256 of the object's deterministic CBOR).
    /// Same id with the same digest → [`Reservation::Duplicate`]; with a different
    /// digest → [`UuidError::Reuse`] (0100, Fatal).
    pub fn reserve(
        &mut self,
        id: MtpUuid,
        content_digest: [u8; 32],
    ) -> Result<Reservation, UuidError> {
        match self.bound.get(&id) {
            None => {
                self.bound.insert(id, content_digest);
                Ok(Reservation::New)
            }
            Some(d) if *d == content_digest => Ok(Reservation::Duplicate),
            Some(d) => Err(UuidError::Reuse {
                id,
                bound_digest: *d,
                new_digest: content_digest,
            }),
        }
    }

    /// [`UuidRegistry::reserve`] with the SHA-256 of `content` (the encoded object).
    pub fn reserve_content(
        &mut self,
        id: MtpUuid,
        content: &[u8],
    ) -> Result<Reservation, UuidError> {
        self.reserve(id, crate::crypto::sha256(content))
    }

    pub fn is_reserved(&self, id: &MtpUuid) -> bool {
        self.bound.contains_key(id)
    }

    /// The digest an id is bound to.
    pub fn digest_of(&self, id: &MtpUuid) -> Option<[u8; 32]> {
        self.bound.get(id).copied()
    }

    pub fn len(&self) -> usize {
        self.bound.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bound.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    const DID: &str = "did:mtp:4HUtbHhN2TkpR7mBqWdF5P3e8vXyZ1jKcLoA9sGbQiEu";

    fn sample() -> MtpUuid {
        MtpUuid::new(
            ObjectType::Offer,
            1_772_807_327_391_000_000,
            [1, 2, 3, 4, 5, 6],
            [0xab; 17],
        )
    }

    #[test]
    fn layout_is_big_endian() {
        let id = sample();
        let b = id.as_bytes();
        assert_eq!(b[0], 0x11);
        assert_eq!(&b[1..9], &1_772_807_327_391_000_000u64.to_be_bytes());
        assert_eq!(&b[9..15], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&b[15..], &[0xab; 17]);
        assert_eq!(id.version(), 1);
        assert_eq!(id.object_type(), Some(ObjectType::Offer));
        assert_eq!(id.type_nibble(), TypeNibble::Object(ObjectType::Offer));
        assert_eq!(id.timestamp_ns(), 1_772_807_327_391_000_000);
        assert_eq!(id.timestamp().to_string(), "2026-03-06T14:28:47.391Z");
        assert_eq!(id.source(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(id.random(), [0xab; 17]);
    }

    #[test]
    fn text_form_and_round_trip() {
        let id = sample();
        let s = id.to_string();
        assert_eq!(s.len(), 67);
        assert_eq!(
            s,
            "11-189a46df1c59a5c0-010203040506-ababababababababababababababababab"
        );
        assert_eq!(MtpUuid::parse(&s), Ok(id));
        assert_eq!(MtpUuid::from_bytes(id.as_bytes()), Ok(id));
        assert_eq!(MtpUuid::from_value(&id.to_value()), Ok(id));
        assert_eq!(s.parse::<MtpUuid>(), Ok(id));
        for t in ObjectType::ALL {
            let id = MtpUuid::new(t, u64::MAX, [0xff; 6], [0; 17]);
            assert_eq!(MtpUuid::parse(&id.to_string()), Ok(id));
            assert_eq!(id.object_type(), Some(t));
            assert_eq!(id.expect_type(t), Ok(()));
        }
    }

    #[test]
    fn generate_hashes_the_full_did() {
        let now = Timestamp::parse("2026-03-06T14:22:07.391Z").unwrap();
        let id = MtpUuid::generate(ObjectType::Terms, now, DID, [7; 17]).unwrap();
        let h = Sha256::digest(DID.as_bytes());
        assert_eq!(&id.source(), &h[..6]);
        assert!(id.is_from(DID));
        assert!(!id.is_from("did:mtp:other"));
        assert_eq!(id.timestamp(), now);
        assert!(!id.is_far_future(now));
        assert!(!id.is_far_future(now.add_secs(-300).unwrap()));
        assert!(id.is_far_future(now.add_secs(-301).unwrap()));
        assert_eq!(id.object_type(), Some(ObjectType::Terms));
        let before_epoch = Timestamp::from_unix_secs(-1).unwrap();
        assert_eq!(
            MtpUuid::generate(ObjectType::Terms, before_epoch, DID, [7; 17]),
            Err(UuidError::TimestampOutOfRange(before_epoch))
        );
    }

    #[test]
    fn every_malformed_text_variant() {
        let good = sample().to_string();
        let with = |pos: usize, c: char| {
            let mut v: Vec<char> = good.chars().collect();
            v[pos] = c;
            v.into_iter().collect::<String>()
        };
        assert_eq!(
            MtpUuid::parse(&good[..66]),
            Err(UuidError::WrongLength { len: 66 })
        );
        assert_eq!(
            MtpUuid::parse(&format!("{good}0")),
            Err(UuidError::WrongLength { len: 68 })
        );
        assert_eq!(MtpUuid::parse(""), Err(UuidError::WrongLength { len: 0 }));
        assert_eq!(
            MtpUuid::parse(&with(40, 'A')),
            Err(UuidError::UpperCase { position: 40 })
        );
        assert_eq!(
            MtpUuid::parse(&with(40, 'g')),
            Err(UuidError::NonHex { position: 40 })
        );
        assert_eq!(
            MtpUuid::parse(&with(40, ' ')),
            Err(UuidError::NonHex { position: 40 })
        );
        assert_eq!(
            MtpUuid::parse(&with(19, '0')),
            Err(UuidError::BadHyphen { position: 19 })
        );
        assert_eq!(
            MtpUuid::parse(&with(2, '_')),
            Err(UuidError::BadHyphen { position: 2 })
        );
        assert_eq!(
            MtpUuid::parse(&with(5, '-')),
            Err(UuidError::BadHyphen { position: 5 })
        );
        // A multi-byte character makes the byte length wrong even at 67 characters.
        let multibyte = with(40, 'é');
        assert_eq!(multibyte.chars().count(), 67);
        assert_eq!(
            MtpUuid::parse(&multibyte),
            Err(UuidError::WrongLength { len: 67 })
        );
        // Version and type nibbles.
        assert_eq!(MtpUuid::parse(&with(0, '0')), Err(UuidError::BadVersion(0)));
        assert_eq!(MtpUuid::parse(&with(0, '2')), Err(UuidError::BadVersion(2)));
        assert_eq!(MtpUuid::parse(&with(1, '0')), Err(UuidError::ReservedType));
        for (c, n) in [('a', 0xa), ('f', 0xf)] {
            let s = with(1, c);
            assert_eq!(MtpUuid::parse(&s), Err(UuidError::ExtensionType(n)));
            let id = MtpUuid::parse_with_extensions(&s, &[n]).unwrap();
            assert_eq!(id.type_nibble(), TypeNibble::Extension(n));
            assert_eq!(id.object_type(), None);
            assert_eq!(id.to_string(), s);
        }
        assert_eq!(
            MtpUuid::parse_with_extensions(&with(1, 'b'), &[0xa]),
            Err(UuidError::ExtensionType(0xb))
        );
    }

    #[test]
    fn malformed_binary_and_cbor() {
        let id = sample();
        let mut b = id.to_bytes().to_vec();
        assert_eq!(
            MtpUuid::from_bytes(&b[..31]),
            Err(UuidError::WrongByteLength { len: 31 })
        );
        b.push(0);
        assert_eq!(
            MtpUuid::from_bytes(&b),
            Err(UuidError::WrongByteLength { len: 33 })
        );
        assert_eq!(
            MtpUuid::from_value(&Value::Bytes(vec![0x11; 33])),
            Err(UuidError::WrongByteLength { len: 33 })
        );
        assert_eq!(
            MtpUuid::from_value(&Value::text(id.to_string())),
            Err(UuidError::NotByteString {
                found: "text string"
            })
        );
        assert_eq!(
            MtpUuid::from_value(&Value::Tag(24, Box::new(id.to_value()))),
            Err(UuidError::NotByteString { found: "tag" })
        );
        let mut raw = id.to_bytes();
        raw[0] = 0x01;
        assert_eq!(MtpUuid::from_bytes(&raw), Err(UuidError::BadVersion(0)));
        raw[0] = 0x10;
        assert_eq!(MtpUuid::from_bytes(&raw), Err(UuidError::ReservedType));
        raw[0] = 0x1c;
        assert_eq!(
            MtpUuid::from_bytes(&raw),
            Err(UuidError::ExtensionType(0xc))
        );
        assert!(MtpUuid::from_bytes_with_extensions(&raw, &[0xc]).is_ok());
        assert!(MtpUuid::from_value_with_extensions(&Value::Bytes(raw.to_vec()), &[0xc]).is_ok());
        assert_eq!(
            MtpUuid::new_extension(0x3, 0, [0; 6], [0; 17]),
            Err(UuidError::ExtensionType(3))
        );
        assert_eq!(
            MtpUuid::new_extension(0x0, 0, [0; 6], [0; 17]),
            Err(UuidError::ReservedType)
        );
        assert_eq!(
            MtpUuid::new_extension(0xa, 0, [0; 6], [0; 17]).map(|u| u.type_nibble()),
            Ok(TypeNibble::Extension(0xa))
        );
    }

    #[test]
    fn wrong_type_for_field() {
        let id = sample();
        let err = id.expect_type(ObjectType::Terms).unwrap_err();
        assert_eq!(
            err,
            UuidError::WrongType {
                expected: ObjectType::Terms,
                found: TypeNibble::Object(ObjectType::Offer)
            }
        );
        assert_eq!(err.code(), ErrorCode::MalformedUuid);
        assert_eq!(err.requirement(), Some("BIND-IX-I03"));
        let ext = MtpUuid::new_extension(0xa, 0, [0; 6], [0; 17]).unwrap();
        assert!(matches!(
            ext.expect_type(ObjectType::Offer),
            Err(UuidError::WrongType {
                found: TypeNibble::Extension(0xa),
                ..
            })
        ));
    }

    /// PROFILE G-11: the SPEC II informative example ids are negative vectors.
    #[test]
    fn spec_example_ids_are_rejected() {
        let truncated = [
            "01-0018A3F29B7C4E01-7A3F2B9C1D4E-8F2A...",
            "02-0018A3F29B8D5F02-9C1D4E8F2A3B-6D7E...",
            "03-0018A3F29BC7A103-7A3F2B9C1D4E-4F5A...",
            "04-0018A3F29BD8B204-7A3F2B9C1D4E-2C3D...",
            "05-0018A3F29BC9C205-COMBINED-HASH-REF...",
        ];
        for ex in truncated {
            assert!(
                matches!(MtpUuid::parse(ex), Err(UuidError::WrongLength { .. })),
                "{ex}"
            );
            // Completed to 67 characters: upper-case hex is the first offence.
            let completed = format!("{}{}", &ex[..ex.len() - 3], "0".repeat(67 - (ex.len() - 3)));
            assert_eq!(completed.len(), 67);
            let err = MtpUuid::parse(&completed).unwrap_err();
            assert!(
                matches!(err, UuidError::UpperCase { position: 7 }),
                "{completed}: {err:?}"
            );
            assert_eq!(err.code(), ErrorCode::MalformedUuid);
            // Even lower-cased, version nibble 0 is malformed (or the mandate id's extra
            // hyphen / non-hex letters).
            let lower = completed.to_ascii_lowercase();
            let err = MtpUuid::parse(&lower).unwrap_err();
            if ex.starts_with("05") {
                assert_eq!(err, UuidError::NonHex { position: 21 });
            } else {
                assert_eq!(err, UuidError::BadVersion(0), "{lower}");
            }
        }
    }

    #[test]
    fn reuse_registry() {
        let mut reg = UuidRegistry::new();
        let id = sample();
        assert!(reg.is_empty());
        assert_eq!(reg.reserve(id, [1; 32]), Ok(Reservation::New));
        assert_eq!(reg.reserve(id, [1; 32]), Ok(Reservation::Duplicate));
        assert_eq!(
            Reservation::Duplicate.code(),
            Some(ErrorCode::DuplicateDeliveryIgnored)
        );
        let err = reg.reserve(id, [2; 32]).unwrap_err();
        assert_eq!(
            err,
            UuidError::Reuse {
                id,
                bound_digest: [1; 32],
                new_digest: [2; 32]
            }
        );
        assert_eq!(err.code(), ErrorCode::UuidReuse);
        assert_eq!(err.requirement(), Some("SPEC-IX-04"));
        // The original binding is permanent: still bound to the first digest.
        assert_eq!(reg.digest_of(&id), Some([1; 32]));
        assert!(reg.is_reserved(&id));
        let other = MtpUuid::new(ObjectType::Offer, 1, [0; 6], [0; 17]);
        assert_eq!(reg.reserve_content(other, b"abc"), Ok(Reservation::New));
        assert_eq!(
            reg.reserve_content(other, b"abc"),
            Ok(Reservation::Duplicate)
        );
        assert!(matches!(
            reg.reserve_content(other, b"abd"),
            Err(UuidError::Reuse { .. })
        ));
        assert_eq!(reg.len(), 2);
    }

    #[test]
    fn error_codes() {
        for e in [
            UuidError::WrongLength { len: 1 },
            UuidError::WrongByteLength { len: 1 },
            UuidError::NotByteString {
                found: "text string",
            },
            UuidError::UpperCase { position: 3 },
            UuidError::BadHyphen { position: 3 },
            UuidError::NonHex { position: 3 },
            UuidError::BadVersion(0),
            UuidError::ReservedType,
            UuidError::ExtensionType(0xa),
        ] {
            assert_eq!(e.code(), ErrorCode::MalformedUuid, "{e}");
            assert!(e.requirement().is_some());
        }
    }
}
