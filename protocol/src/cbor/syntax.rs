//! The encoding-preserving syntax tree of one CBOR data item, and the one parser behind
//! the strict decoder, the lenient decoder, diagnostic notation and the mutators.
//!
//! Heads are parsed here rather than with `ciborium_ll::Decoder`: its `Header` drops the
//! argument width (it cannot tell `18 0c` from `0c`, nor `fa 3fc00000` from `f9 3e00`)
//! and its `Title` type is private, so non-shortest forms could not be reported.

use super::head::{FloatBits, Width};
use super::{DecodeError, DecodeErrorKind, MAX_DEPTH, Value};

/// Length of a string, array or map: definite with its head width, or indefinite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Len {
    Definite(Width),
    Indefinite,
}

/// The content of a byte or text string.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StrBody {
    Definite(Width, Vec<u8>),
    /// Chunks of an indefinite-length string, each with its own head width.
    Indefinite(Vec<(Width, Vec<u8>)>),
}

impl StrBody {
    pub(crate) fn concat(&self) -> Vec<u8> {
        match self {
            StrBody::Definite(_, b) => b.clone(),
            StrBody::Indefinite(chunks) => {
                chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect()
            }
        }
    }
}

/// One data item exactly as encoded.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Uint(u64, Width),
    /// Major type 1; the value is `-1 - arg`.
    Nint(u64, Width),
    Bytes(StrBody),
    /// Chunks are valid UTF-8 each (RFC 8949 §3.2.3).
    Text(StrBody),
    Array(Len, Vec<Node>),
    Map(Len, Vec<(Node, Node)>),
    Tag(u64, Width, Box<Node>),
    /// Simple value; `< 24` in the initial byte, otherwise `f8 xx` with `xx >= 32`.
    Simple(u8),
    Float(FloatBits),
}

fn err(offset: usize, kind: DecodeErrorKind) -> DecodeError {
    DecodeError { offset, kind }
}

/// Parse mode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Well-formed and RFC 8949 §4.2.1 deterministic (BIND-IV-A-01..05).
    Strict,
    /// Any well-formed item.
    Lenient,
}

/// A parsed head.
struct Head {
    offset: usize,
    major: u8,
    ai: u8,
    arg: u64,
    /// `None` for additional information 31 (indefinite / break).
    width: Option<Width>,
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    mode: Mode,
}

/// Parses the one data item that starts at `start`; returns it and the offset just past it
/// (RFC 8742 item boundary). Error offsets are absolute.
pub(crate) fn parse_at(
    bytes: &[u8],
    start: usize,
    mode: Mode,
) -> Result<(Node, usize), DecodeError> {
    let mut p = Parser {
        b: bytes,
        pos: start,
        mode,
    };
    let node = p.item(0)?;
    Ok((node, p.pos))
}

/// Parses exactly one data item from `bytes` (no trailing bytes).
pub(crate) fn parse(bytes: &[u8], mode: Mode) -> Result<Node, DecodeError> {
    let mut p = Parser {
        b: bytes,
        pos: 0,
        mode,
    };
    let node = p.item(0)?;
    if p.pos < bytes.len() {
        return Err(err(p.pos, DecodeErrorKind::TrailingBytes));
    }
    Ok(node)
}

impl Parser<'_> {
    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, item_offset: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(end) => {
                let s = self
                    .b
                    .get(self.pos..end)
                    .ok_or(err(item_offset, DecodeErrorKind::Truncated))?;
                self.pos = end;
                Ok(s)
            }
            None => Err(err(item_offset, DecodeErrorKind::Truncated)),
        }
    }

    fn head(&mut self) -> Result<Head, DecodeError> {
        let offset = self.pos;
        let ib = *self
            .b
            .get(offset)
            .ok_or(err(offset, DecodeErrorKind::Truncated))?;
        self.pos += 1;
        let major = ib >> 5;
        let ai = ib & 0x1f;
        let (arg, width) = match ai {
            0..=23 => (u64::from(ai), Some(Width::Immediate)),
            24..=27 => {
                let n = 1usize << (ai - 24);
                let bytes = self.take(n, offset)?;
                let arg = bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
                let w = [Width::One, Width::Two, Width::Four, Width::Eight][usize::from(ai - 24)];
                (arg, Some(w))
            }
            28..=30 => return Err(err(offset, DecodeErrorKind::ReservedAdditionalInfo(ai))),
            _ => (0, None),
        };
        Ok(Head {
            offset,
            major,
            ai,
            arg,
            width,
        })
    }

    /// Checks a definite integer/length/tag head is in its shortest form (strict mode).
    fn check_shortest(&self, h: &Head, w: Width) -> Result<(), DecodeError> {
        if self.mode == Mode::Strict && w != Width::shortest(h.arg) {
            return Err(err(h.offset, DecodeErrorKind::NonShortestHead));
        }
        Ok(())
    }

    /// A declared length, checked against the remaining input before anything is
    /// allocated from it (`min_item_bytes` bytes per element at least).
    fn length(&self, h: &Head, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = usize::try_from(h.arg)
            .map_err(|_| err(h.offset, DecodeErrorKind::LengthExceedsInput))?;
        match n.checked_mul(min_item_bytes) {
            Some(need) if need <= self.remaining() => Ok(n),
            _ => Err(err(h.offset, DecodeErrorKind::LengthExceedsInput)),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Node, DecodeError> {
        let h = self.head()?;
        match h.width {
            None => self.indefinite(h, depth),
            Some(w) => self.definite(h, w, depth),
        }
    }

    fn definite(&mut self, h: Head, w: Width, depth: usize) -> Result<Node, DecodeError> {
        match h.major {
            0 => {
                self.check_shortest(&h, w)?;
                Ok(Node::Uint(h.arg, w))
            }
            1 => {
                self.check_shortest(&h, w)?;
                Ok(Node::Nint(h.arg, w))
            }
            2 | 3 => {
                self.check_shortest(&h, w)?;
                let data = self.string_data(&h)?;
                if h.major == 2 {
                    Ok(Node::Bytes(StrBody::Definite(w, data)))
                } else {
                    Ok(Node::Text(StrBody::Definite(w, data)))
                }
            }
            4 => {
                self.check_shortest(&h, w)?;
                let n = self.length(&h, 1)?;
                let depth = self.enter(&h, depth)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth)?);
                }
                Ok(Node::Array(Len::Definite(w), items))
            }
            5 => {
                self.check_shortest(&h, w)?;
                let n = self.length(&h, 2)?;
                let depth = self.enter(&h, depth)?;
                let mut entries = Vec::with_capacity(n);
                let mut prev_key: Option<(usize, usize)> = None;
                for _ in 0..n {
                    let key_start = self.pos;
                    let k = self.item(depth)?;
                    let key_end = self.pos;
                    if self.mode == Mode::Strict {
                        self.check_key_order(prev_key, (key_start, key_end))?;
                    }
                    prev_key = Some((key_start, key_end));
                    let v = self.item(depth)?;
                    entries.push((k, v));
                }
                Ok(Node::Map(Len::Definite(w), entries))
            }
            6 => {
                self.check_shortest(&h, w)?;
                let depth = self.enter(&h, depth)?;
                let inner = self.item(depth)?;
                if self.mode == Mode::Strict {
                    check_bignum(&h, &inner)?;
                }
                Ok(Node::Tag(h.arg, w, Box::new(inner)))
            }
            _ => self.major7(h, w),
        }
    }

    fn major7(&mut self, h: Head, w: Width) -> Result<Node, DecodeError> {
        match w {
            Width::Immediate => Ok(Node::Simple(h.ai)),
            Width::One => {
                if h.arg < 32 {
                    // RFC 8949 §3.3: not well-formed.
                    return Err(err(h.offset, DecodeErrorKind::InvalidSimple(h.arg as u8)));
                }
                Ok(Node::Simple(h.arg as u8))
            }
            Width::Two | Width::Four | Width::Eight => {
                let f = match w {
                    Width::Two => FloatBits::F16(h.arg as u16),
                    Width::Four => FloatBits::F32(h.arg as u32),
                    _ => FloatBits::F64(h.arg),
                };
                if self.mode == Mode::Strict && !f.is_preferred() {
                    return Err(err(h.offset, DecodeErrorKind::NonShortestFloat));
                }
                Ok(Node::Float(f))
            }
        }
    }

    fn indefinite(&mut self, h: Head, depth: usize) -> Result<Node, DecodeError> {
        match h.major {
            0 | 1 | 6 => return Err(err(h.offset, DecodeErrorKind::InvalidIndefinite)),
            7 => return Err(err(h.offset, DecodeErrorKind::StrayBreak)),
            _ => {}
        }
        if self.mode == Mode::Strict {
            return Err(err(h.offset, DecodeErrorKind::IndefiniteLength));
        }
        match h.major {
            2 | 3 => {
                let mut chunks = Vec::new();
                loop {
                    let c = self.head()?;
                    match (c.major, c.width) {
                        (7, None) => break,
                        (m, Some(w)) if m == h.major => {
                            let data = self.string_data(&c)?;
                            chunks.push((w, data));
                        }
                        _ => return Err(err(c.offset, DecodeErrorKind::InvalidChunk)),
                    }
                }
                if h.major == 2 {
                    Ok(Node::Bytes(StrBody::Indefinite(chunks)))
                } else {
                    Ok(Node::Text(StrBody::Indefinite(chunks)))
                }
            }
            4 => {
                let depth = self.enter(&h, depth)?;
                let mut items = Vec::new();
                while !self.at_break()? {
                    items.push(self.item(depth)?);
                }
                Ok(Node::Array(Len::Indefinite, items))
            }
            _ => {
                let depth = self.enter(&h, depth)?;
                let mut entries = Vec::new();
                while !self.at_break()? {
                    let k = self.item(depth)?;
                    let v_off = self.pos;
                    if self.b.get(v_off) == Some(&0xff) {
                        // A break where a value is due: odd number of items.
                        return Err(err(v_off, DecodeErrorKind::StrayBreak));
                    }
                    let v = self.item(depth)?;
                    entries.push((k, v));
                }
                Ok(Node::Map(Len::Indefinite, entries))
            }
        }
    }

    /// Consumes a break if one is next.
    fn at_break(&mut self) -> Result<bool, DecodeError> {
        match self.b.get(self.pos) {
            None => Err(err(self.pos, DecodeErrorKind::Truncated)),
            Some(0xff) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    fn enter(&self, h: &Head, depth: usize) -> Result<usize, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(err(h.offset, DecodeErrorKind::DepthExceeded));
        }
        Ok(depth + 1)
    }

    /// The payload of a definite string; text must be valid UTF-8.
    fn string_data(&mut self, h: &Head) -> Result<Vec<u8>, DecodeError> {
        let n = self.length(h, 1)?;
        let data = self.take(n, h.offset)?.to_vec();
        if h.major == 3 && std::str::from_utf8(&data).is_err() {
            return Err(err(h.offset, DecodeErrorKind::InvalidUtf8));
        }
        Ok(data)
    }

    /// BIND-IV-A-02 / BIND-IV-A-05: keys in strictly ascending bytewise order of their
    /// encoding (the input bytes are that encoding, the key having passed strict checks).
    fn check_key_order(
        &self,
        prev: Option<(usize, usize)>,
        cur: (usize, usize),
    ) -> Result<(), DecodeError> {
        let Some(prev) = prev else { return Ok(()) };
        let a = self.b.get(prev.0..prev.1).unwrap_or_default();
        let b = self.b.get(cur.0..cur.1).unwrap_or_default();
        match a.cmp(b) {
            std::cmp::Ordering::Less => Ok(()),
            std::cmp::Ordering::Equal => Err(err(cur.0, DecodeErrorKind::DuplicateKey)),
            std::cmp::Ordering::Greater => Err(err(cur.0, DecodeErrorKind::UnsortedKeys)),
        }
    }
}

/// RFC 8949 §3.4.3 preferred serialization of bignums (required by §4.2.1): no leading
/// zero bytes, and only for values that do not fit major type 0/1.
fn check_bignum(h: &Head, inner: &Node) -> Result<(), DecodeError> {
    if (h.arg == 2 || h.arg == 3)
        && let Node::Bytes(StrBody::Definite(_, b)) = inner
        && !bignum_is_preferred(b)
    {
        return Err(err(h.offset, DecodeErrorKind::NonPreferredBignum));
    }
    Ok(())
}

pub(crate) fn bignum_is_preferred(b: &[u8]) -> bool {
    b.len() > 8 && b.first() != Some(&0)
}

impl Node {
    /// Appends the exact encoding of this node.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        use super::head::write_head;
        match self {
            Node::Uint(a, w) => write_head(out, 0, *a, *w),
            Node::Nint(a, w) => write_head(out, 1, *a, *w),
            Node::Bytes(s) => write_str(out, 2, s),
            Node::Text(s) => write_str(out, 3, s),
            Node::Array(len, items) => {
                write_len(out, 4, *len, items.len());
                for i in items {
                    i.write(out);
                }
                if *len == Len::Indefinite {
                    out.push(0xff);
                }
            }
            Node::Map(len, entries) => {
                write_len(out, 5, *len, entries.len());
                for (k, v) in entries {
                    k.write(out);
                    v.write(out);
                }
                if *len == Len::Indefinite {
                    out.push(0xff);
                }
            }
            Node::Tag(t, w, inner) => {
                write_head(out, 6, *t, *w);
                inner.write(out);
            }
            Node::Simple(s) => {
                if *s < 24 {
                    out.push(0xe0 | s);
                } else {
                    out.push(0xf8);
                    out.push(*s);
                }
            }
            Node::Float(f) => f.write(out),
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// The logical value (lenient view: map order and duplicates kept, chunks joined).
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Node::Uint(a, _) => Value::Integer(i128::from(*a)),
            Node::Nint(a, _) => Value::Integer(-1 - i128::from(*a)),
            Node::Bytes(s) => Value::Bytes(s.concat()),
            Node::Text(s) => Value::Text(String::from_utf8_lossy(&s.concat()).into_owned()),
            Node::Array(_, items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Map(_, entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_value(), v.to_value()))
                    .collect(),
            ),
            Node::Tag(t, _, inner) => Value::Tag(*t, Box::new(inner.to_value())),
            Node::Simple(20) => Value::Bool(false),
            Node::Simple(21) => Value::Bool(true),
            Node::Simple(22) => Value::Null,
            Node::Simple(23) => Value::Undefined,
            Node::Simple(s) => Value::Simple(*s),
            Node::Float(f) => Value::Float(if f.is_nan() { f64::NAN } else { f.to_f64() }),
        }
    }
}

fn write_len(out: &mut Vec<u8>, major: u8, len: Len, n: usize) {
    match len {
        Len::Definite(w) => super::head::write_head(out, major, n as u64, w),
        Len::Indefinite => out.push((major << 5) | 31),
    }
}

fn write_str(out: &mut Vec<u8>, major: u8, s: &StrBody) {
    use super::head::write_head;
    match s {
        StrBody::Definite(w, b) => {
            write_head(out, major, b.len() as u64, *w);
            out.extend_from_slice(b);
        }
        StrBody::Indefinite(chunks) => {
            out.push((major << 5) | 31);
            for (w, c) in chunks {
                write_head(out, major, c.len() as u64, *w);
                out.extend_from_slice(c);
            }
            out.push(0xff);
        }
    }
}
