//! CBOR diagnostic notation (RFC 8949 §8 with RFC 8610 Appendix G literals; BIND-IV-B-01,
//! BIND-IV-B-I01; PROFILE G-28).
//!
//! Output ([`to_diag`]) is lossless for every well-formed item:
//! - floats always carry their width: `1.5_1` (binary16), `100000.0_2` (binary32),
//!   `1.1_3` (binary64), also `NaN_1`, `-Infinity_2`; a NaN other than the quiet
//!   positive NaN of its width is written `float'7e01'` (the raw float bits in hex,
//!   2/4/8 bytes; an application-extension literal of this suite);
//! - integers, lengths and tag numbers carry `_0`..`_3` (argument in 1/2/4/8 bytes) only
//!   where the input did not use the shortest form; `[_0 1]`, `h'01'_1`, `24_0(...)`;
//! - indefinite lengths: `[_ 1, 2]`, `{_ "a": 1}`, `(_ h'01', h'02')`, empty `''_`, `""_`;
//! - byte strings `h'..'`, text as JSON-escaped `"..."`, tags `0("...")`, `simple(n)`,
//!   `true`, `false`, `null`, `undefined`.
//!
//! Input ([`from_diag`]) accepts that, plus `b64'..'` (either alphabet, padding
//! optional), single-quoted byte strings `'text'`, whitespace, comments `/ ... /` and
//! `#` to end of line, `0x`/`0o`/`0b` integers, and concatenation of adjacent string
//! literals of one kind (RFC 8610 G.4). Literals without an indicator get the preferred
//! (shortest) encoding. `from_diag(&to_diag(b)?)? == b` for every well-formed `b`.

use std::fmt::Write as _;

use base64::Engine as _;

use super::head::{FloatBits, NAN16, NAN32, NAN64, Width, f64_to_f16_exact, f64_to_f32_exact};
use super::syntax::{Len, Mode, Node, StrBody, parse};
use super::{DecodeError, MAX_DEPTH, Value};

/// Diagnostic notation of the well-formed item in `bytes` (any encoding, lossless).
pub fn to_diag(bytes: &[u8]) -> Result<String, DecodeError> {
    let node = parse(bytes, Mode::Lenient)?;
    let mut out = String::new();
    write_node(&node, &mut out);
    Ok(out)
}

/// Diagnostic notation of a value's deterministic encoding. Values that cannot be
/// encoded (duplicate keys, out-of-range integers) are printed in their given order.
pub fn value_to_diag(value: &Value) -> String {
    if let Ok(bytes) = super::to_vec(value)
        && let Ok(s) = to_diag(&bytes)
    {
        return s;
    }
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// Where and why diagnostic notation could not be parsed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{kind} at position {position}")]
pub struct DiagError {
    /// Byte offset into the input text.
    pub position: usize,
    pub kind: DiagErrorKind,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DiagErrorKind {
    #[error("unexpected end of input")]
    UnexpectedEnd,
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    #[error("invalid number")]
    InvalidNumber,
    #[error("integer outside the CBOR range")]
    IntegerOutOfRange,
    #[error("invalid or misplaced encoding indicator")]
    InvalidIndicator,
    #[error("float not exactly representable in the indicated width")]
    FloatNotRepresentable,
    #[error("invalid escape sequence")]
    InvalidEscape,
    #[error("invalid hex literal")]
    InvalidHex,
    #[error("invalid base64 literal")]
    InvalidBase64,
    #[error("byte and text strings concatenated")]
    MixedConcatenation,
    #[error("indefinite-length string chunks must be strings of one kind")]
    InvalidChunk,
    #[error("simple value {0} has no well-formed encoding")]
    InvalidSimple(u64),
    #[error("unknown keyword {0:?}")]
    UnknownKeyword(String),
    #[error("nesting deeper than {MAX_DEPTH}")]
    DepthExceeded,
    #[error("input after the data item")]
    TrailingInput,
}

/// Parses diagnostic notation into the CBOR bytes it denotes (honouring indicators).
pub fn from_diag(text: &str) -> Result<Vec<u8>, DiagError> {
    let mut p = DiagParser {
        s: text.as_bytes(),
        src: text,
        pos: 0,
    };
    p.ws()?;
    let node = p.item(0)?;
    p.ws()?;
    if p.pos < p.s.len() {
        return Err(p.err(DiagErrorKind::TrailingInput));
    }
    Ok(node.to_bytes())
}

// ---------------------------------------------------------------------------------
// Output

fn indicator(out: &mut String, w: Width, preferred: Width) {
    if w != preferred
        && let Some(d) = w.indicator()
    {
        let _ = write!(out, "_{d}");
    }
}

fn write_node(n: &Node, out: &mut String) {
    match n {
        Node::Uint(a, w) => {
            let _ = write!(out, "{a}");
            indicator(out, *w, Width::shortest(*a));
        }
        Node::Nint(a, w) => {
            let _ = write!(out, "-{}", u128::from(*a) + 1);
            indicator(out, *w, Width::shortest(*a));
        }
        Node::Bytes(s) | Node::Text(s) => {
            let text = matches!(n, Node::Text(_));
            match s {
                StrBody::Definite(w, b) => {
                    write_str_lit(b, text, out);
                    indicator(out, *w, Width::shortest(b.len() as u64));
                }
                StrBody::Indefinite(chunks) if chunks.is_empty() => {
                    out.push_str(if text { "\"\"_" } else { "''_" });
                }
                StrBody::Indefinite(chunks) => {
                    out.push_str("(_ ");
                    for (i, (w, c)) in chunks.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        write_str_lit(c, text, out);
                        indicator(out, *w, Width::shortest(c.len() as u64));
                    }
                    out.push(')');
                }
            }
        }
        Node::Array(len, items) => {
            out.push('[');
            write_len_prefix(*len, items.len(), out);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_node(item, out);
            }
            out.push(']');
        }
        Node::Map(len, entries) => {
            out.push('{');
            write_len_prefix(*len, entries.len(), out);
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_node(k, out);
                out.push_str(": ");
                write_node(v, out);
            }
            out.push('}');
        }
        Node::Tag(t, w, inner) => {
            let _ = write!(out, "{t}");
            indicator(out, *w, Width::shortest(*t));
            out.push('(');
            write_node(inner, out);
            out.push(')');
        }
        Node::Simple(s) => write_simple(*s, out),
        Node::Float(f) => write_float(*f, out),
    }
}

fn write_len_prefix(len: Len, n: usize, out: &mut String) {
    match len {
        Len::Indefinite => out.push_str("_ "),
        Len::Definite(w) => {
            if w != Width::shortest(n as u64)
                && let Some(d) = w.indicator()
            {
                let _ = write!(out, "_{d} ");
            }
        }
    }
}

fn write_simple(s: u8, out: &mut String) {
    match s {
        20 => out.push_str("false"),
        21 => out.push_str("true"),
        22 => out.push_str("null"),
        23 => out.push_str("undefined"),
        s => {
            let _ = write!(out, "simple({s})");
        }
    }
}

fn write_str_lit(b: &[u8], text: bool, out: &mut String) {
    if text {
        write_text(&String::from_utf8_lossy(b), out);
    } else {
        out.push_str("h'");
        out.push_str(&hex::encode(b));
        out.push('\'');
    }
}

fn write_text(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Shortest round-trip decimal of a finite f64, always with a `.` (`1.0e+300`).
fn decimal(x: f64) -> String {
    let s = format!("{x:?}");
    match s.split_once('e') {
        Some((m, e)) => {
            let m = if m.contains('.') {
                m.to_owned()
            } else {
                format!("{m}.0")
            };
            let e = if e.starts_with('-') {
                e.to_owned()
            } else {
                format!("+{e}")
            };
            format!("{m}e{e}")
        }
        None => s,
    }
}

fn write_float(f: FloatBits, out: &mut String) {
    let d = match f {
        FloatBits::F16(_) => 1,
        FloatBits::F32(_) => 2,
        FloatBits::F64(_) => 3,
    };
    let x = f.to_f64();
    if x.is_nan() {
        if f.is_canonical_nan() {
            let _ = write!(out, "NaN_{d}");
        } else {
            let mut b = Vec::new();
            f.write(&mut b);
            let _ = write!(
                out,
                "float'{}'",
                hex::encode(b.get(1..).unwrap_or_default())
            );
        }
    } else if x.is_infinite() {
        let _ = write!(out, "{}Infinity_{d}", if x < 0.0 { "-" } else { "" });
    } else {
        let _ = write!(out, "{}_{d}", decimal(x));
    }
}

/// Fallback printer for values [`super::to_vec`] rejects.
fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Bytes(b) => write_str_lit(b, false, out),
        Value::Text(s) => write_text(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(k, out);
                out.push_str(": ");
                write_value(val, out);
            }
            out.push('}');
        }
        Value::Tag(t, inner) => {
            let _ = write!(out, "{t}(");
            write_value(inner, out);
            out.push(')');
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
        Value::Undefined => out.push_str("undefined"),
        Value::Simple(s) => write_simple(*s, out),
        Value::Float(f) => write_float(FloatBits::preferred(*f), out),
    }
}

// ---------------------------------------------------------------------------------
// Input

struct DiagParser<'a> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
}

enum StrKind {
    Bytes,
    Text,
}

impl DiagParser<'_> {
    fn err(&self, kind: DiagErrorKind) -> DiagError {
        DiagError {
            position: self.pos,
            kind,
        }
    }

    fn err_at(&self, position: usize, kind: DiagErrorKind) -> DiagError {
        DiagError { position, kind }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.pos.saturating_add(k)).copied()
    }

    fn unexpected(&self) -> DiagError {
        match self.src.get(self.pos..).and_then(|r| r.chars().next()) {
            Some(c) => self.err(DiagErrorKind::UnexpectedChar(c)),
            None => self.err(DiagErrorKind::UnexpectedEnd),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), DiagError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// Skips whitespace and comments (`/ ... /`, `# ...` to end of line).
    fn ws(&mut self) -> Result<(), DiagError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.pos += 1,
                Some(b'#') => {
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == b'\n' {
                            break;
                        }
                    }
                }
                Some(b'/') => {
                    let start = self.pos;
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            None => return Err(self.err_at(start, DiagErrorKind::UnexpectedEnd)),
                            Some(b'/') => {
                                self.pos += 1;
                                break;
                            }
                            Some(_) => self.pos += 1,
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// An optional `_d` indicator right here: `Ok(None)` if absent.
    fn width_indicator(&mut self) -> Result<Option<u8>, DiagError> {
        if self.peek() != Some(b'_') {
            return Ok(None);
        }
        match self.peek_at(1) {
            Some(d @ b'0'..=b'9') => {
                self.pos += 2;
                Ok(Some(d - b'0'))
            }
            _ => Err(self.err(DiagErrorKind::InvalidIndicator)),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Node, DiagError> {
        match self.peek() {
            None => Err(self.err(DiagErrorKind::UnexpectedEnd)),
            Some(b'[') => self.array(depth),
            Some(b'{') => self.map(depth),
            Some(b'(') => self.indefinite_string(),
            Some(b'"' | b'\'') => self.string_seq(),
            Some(b'-' | b'0'..=b'9') => self.number(depth),
            Some(c) if c.is_ascii_alphabetic() => self.word(depth),
            Some(_) => Err(self.unexpected()),
        }
    }

    fn enter(&self, depth: usize) -> Result<usize, DiagError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(DiagErrorKind::DepthExceeded));
        }
        Ok(depth + 1)
    }

    /// After `[` or `{`: `_ ` (indefinite), `_d ` (width), or nothing.
    fn container_len(&mut self) -> Result<Option<Len>, DiagError> {
        if self.peek() != Some(b'_') {
            return Ok(None);
        }
        let at = self.pos;
        match self.peek_at(1) {
            Some(d @ b'0'..=b'9') => {
                self.pos += 2;
                let w = Width::from_indicator(d - b'0')
                    .ok_or(self.err_at(at, DiagErrorKind::InvalidIndicator))?;
                Ok(Some(Len::Definite(w)))
            }
            _ => {
                self.pos += 1;
                Ok(Some(Len::Indefinite))
            }
        }
    }

    fn finish_len(&self, len: Option<Len>, n: usize, at: usize) -> Result<Len, DiagError> {
        match len {
            None => Ok(Len::Definite(Width::shortest(n as u64))),
            Some(Len::Definite(w)) if !w.fits(n as u64) => {
                Err(self.err_at(at, DiagErrorKind::InvalidIndicator))
            }
            Some(l) => Ok(l),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, DiagError> {
        let at = self.pos;
        let depth = self.enter(depth)?;
        self.pos += 1;
        let len = self.container_len()?;
        let mut items = Vec::new();
        self.ws()?;
        if self.peek() != Some(b']') {
            loop {
                items.push(self.item(depth)?);
                self.ws()?;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.ws()?;
                    }
                    Some(b']') => break,
                    _ => return Err(self.unexpected()),
                }
            }
        }
        self.pos += 1;
        Ok(Node::Array(self.finish_len(len, items.len(), at)?, items))
    }

    fn map(&mut self, depth: usize) -> Result<Node, DiagError> {
        let at = self.pos;
        let depth = self.enter(depth)?;
        self.pos += 1;
        let len = self.container_len()?;
        let mut entries = Vec::new();
        self.ws()?;
        if self.peek() != Some(b'}') {
            loop {
                let k = self.item(depth)?;
                self.ws()?;
                self.expect(b':')?;
                self.ws()?;
                let v = self.item(depth)?;
                entries.push((k, v));
                self.ws()?;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.ws()?;
                    }
                    Some(b'}') => break,
                    _ => return Err(self.unexpected()),
                }
            }
        }
        self.pos += 1;
        Ok(Node::Map(self.finish_len(len, entries.len(), at)?, entries))
    }

    /// `(_ chunk, chunk, ...)`.
    fn indefinite_string(&mut self) -> Result<Node, DiagError> {
        let at = self.pos;
        self.pos += 1;
        self.expect(b'_')?;
        self.ws()?;
        let mut kind: Option<bool> = None;
        let mut chunks = Vec::new();
        loop {
            let c_at = self.pos;
            let node = self.string_seq()?;
            let (is_text, body) = match node {
                Node::Text(b) => (true, b),
                Node::Bytes(b) => (false, b),
                _ => return Err(self.err_at(c_at, DiagErrorKind::InvalidChunk)),
            };
            if kind.is_some_and(|k| k != is_text) {
                return Err(self.err_at(c_at, DiagErrorKind::InvalidChunk));
            }
            kind = Some(is_text);
            match body {
                StrBody::Definite(w, b) => chunks.push((w, b)),
                StrBody::Indefinite(_) => {
                    return Err(self.err_at(c_at, DiagErrorKind::InvalidChunk));
                }
            }
            self.ws()?;
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws()?;
                }
                Some(b')') => break,
                _ => return Err(self.unexpected()),
            }
        }
        self.pos += 1;
        match kind {
            Some(true) => Ok(Node::Text(StrBody::Indefinite(chunks))),
            Some(false) => Ok(Node::Bytes(StrBody::Indefinite(chunks))),
            None => Err(self.err_at(at, DiagErrorKind::InvalidChunk)),
        }
    }

    /// Whether a string literal starts here (`"`, `'`, `h'`, `b64'`).
    fn at_string_literal(&self) -> Option<StrKind> {
        match self.peek()? {
            b'"' => Some(StrKind::Text),
            b'\'' => Some(StrKind::Bytes),
            b'h' if self.peek_at(1) == Some(b'\'') => Some(StrKind::Bytes),
            b'b' if self.s.get(self.pos..self.pos.saturating_add(4)) == Some(b"b64'") => {
                Some(StrKind::Bytes)
            }
            _ => None,
        }
    }

    /// One string literal (no indicator).
    fn string_lit(&mut self) -> Result<(StrKind, Vec<u8>), DiagError> {
        match self.peek() {
            Some(b'"') => Ok((StrKind::Text, self.quoted(b'"')?)),
            Some(b'\'') => Ok((StrKind::Bytes, self.quoted(b'\'')?)),
            Some(b'h') => {
                self.pos += 1;
                Ok((StrKind::Bytes, self.hex_body()?))
            }
            Some(b'b') => {
                self.pos += 3;
                Ok((StrKind::Bytes, self.b64_body()?))
            }
            _ => Err(self.unexpected()),
        }
    }

    /// Adjacent literals of one kind, concatenated, then an optional indicator:
    /// `_d` (length width) or `_` (empty indefinite string, `''_` / `""_`).
    fn string_seq(&mut self) -> Result<Node, DiagError> {
        let start = self.pos;
        let (kind, mut data) = self.string_lit()?;
        let is_text = matches!(kind, StrKind::Text);
        let mut single = true;
        loop {
            if self.peek() == Some(b'_') {
                let at = self.pos;
                return match self.peek_at(1) {
                    Some(b'0'..=b'9') => {
                        let d = self.width_indicator()?.unwrap_or(9);
                        let w = Width::from_indicator(d)
                            .filter(|w| w.fits(data.len() as u64))
                            .ok_or(self.err_at(at, DiagErrorKind::InvalidIndicator))?;
                        Ok(make_str(is_text, StrBody::Definite(w, data)))
                    }
                    _ if data.is_empty() && single => {
                        self.pos += 1;
                        Ok(make_str(is_text, StrBody::Indefinite(Vec::new())))
                    }
                    _ => Err(self.err_at(at, DiagErrorKind::InvalidIndicator)),
                };
            }
            let save = self.pos;
            self.ws()?;
            match self.at_string_literal() {
                Some(k) => {
                    if matches!(k, StrKind::Text) != is_text {
                        return Err(self.err(DiagErrorKind::MixedConcatenation));
                    }
                    let (_, more) = self.string_lit()?;
                    data.extend_from_slice(&more);
                    single = false;
                }
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        if is_text && std::str::from_utf8(&data).is_err() {
            return Err(self.err_at(start, DiagErrorKind::InvalidEscape));
        }
        let w = Width::shortest(data.len() as u64);
        Ok(make_str(is_text, StrBody::Definite(w, data)))
    }

    /// `"..."` or `'...'` with JSON escapes; returns the UTF-8 bytes.
    fn quoted(&mut self, q: u8) -> Result<Vec<u8>, DiagError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self
                .src
                .get(self.pos..)
                .ok_or(self.err(DiagErrorKind::UnexpectedEnd))?;
            let c = rest
                .chars()
                .next()
                .ok_or(self.err(DiagErrorKind::UnexpectedEnd))?;
            if c as u32 == u32::from(q) {
                self.pos += 1;
                return Ok(out.into_bytes());
            }
            if c == '\\' {
                let at = self.pos;
                self.pos += 1;
                let e = self.peek().ok_or(self.err(DiagErrorKind::UnexpectedEnd))?;
                self.pos += 1;
                match e {
                    b'"' => out.push('"'),
                    b'\'' => out.push('\''),
                    b'\\' => out.push('\\'),
                    b'/' => out.push('/'),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'u' => {
                        let hi = self.hex4(at)?;
                        let cp = if (0xd800..0xdc00).contains(&hi) {
                            if self.peek() != Some(b'\\') || self.peek_at(1) != Some(b'u') {
                                return Err(self.err_at(at, DiagErrorKind::InvalidEscape));
                            }
                            self.pos += 2;
                            let lo = self.hex4(at)?;
                            if !(0xdc00..0xe000).contains(&lo) {
                                return Err(self.err_at(at, DiagErrorKind::InvalidEscape));
                            }
                            0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                        } else {
                            hi
                        };
                        out.push(
                            char::from_u32(cp)
                                .ok_or(self.err_at(at, DiagErrorKind::InvalidEscape))?,
                        );
                    }
                    _ => return Err(self.err_at(at, DiagErrorKind::InvalidEscape)),
                }
                continue;
            }
            out.push(c);
            self.pos += c.len_utf8();
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, DiagError> {
        let digits = self
            .src
            .get(self.pos..self.pos.saturating_add(4))
            .ok_or(self.err_at(at, DiagErrorKind::InvalidEscape))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err_at(at, DiagErrorKind::InvalidEscape));
        }
        let v = u32::from_str_radix(digits, 16)
            .map_err(|_| self.err_at(at, DiagErrorKind::InvalidEscape))?;
        self.pos += 4;
        Ok(v)
    }

    /// The text between `'` and `'` (after the prefix), whitespace removed.
    fn app_body(&mut self) -> Result<(usize, String), DiagError> {
        let at = self.pos;
        self.expect(b'\'')?;
        let mut body = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err_at(at, DiagErrorKind::UnexpectedEnd)),
                Some(b'\'') => {
                    self.pos += 1;
                    return Ok((at, body));
                }
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.pos += 1,
                Some(c) if c.is_ascii() => {
                    body.push(c as char);
                    self.pos += 1;
                }
                Some(_) => return Err(self.unexpected()),
            }
        }
    }

    fn hex_body(&mut self) -> Result<Vec<u8>, DiagError> {
        let (at, body) = self.app_body()?;
        hex::decode(body).map_err(|_| self.err_at(at, DiagErrorKind::InvalidHex))
    }

    fn b64_body(&mut self) -> Result<Vec<u8>, DiagError> {
        let (at, body) = self.app_body()?;
        let norm: String = body
            .trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(norm)
            .map_err(|_| self.err_at(at, DiagErrorKind::InvalidBase64))
    }

    /// Keywords and prefixed literals.
    fn word(&mut self, depth: usize) -> Result<Node, DiagError> {
        if self.at_string_literal().is_some() {
            return self.string_seq();
        }
        let at = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let w = self.src.get(at..self.pos).unwrap_or_default();
        match w {
            "true" => Ok(Node::Simple(21)),
            "false" => Ok(Node::Simple(20)),
            "null" => Ok(Node::Simple(22)),
            "undefined" => Ok(Node::Simple(23)),
            "NaN" => self.special_float(f64::NAN),
            "Infinity" => self.special_float(f64::INFINITY),
            "simple" => {
                self.expect(b'(')?;
                self.ws()?;
                let n_at = self.pos;
                let n = match self.number(depth)? {
                    Node::Uint(n, w) if w == Width::shortest(n) => n,
                    _ => return Err(self.err_at(n_at, DiagErrorKind::InvalidNumber)),
                };
                self.ws()?;
                self.expect(b')')?;
                match u8::try_from(n) {
                    Ok(s) if !(24..32).contains(&s) => Ok(Node::Simple(s)),
                    _ => Err(self.err_at(n_at, DiagErrorKind::InvalidSimple(n))),
                }
            }
            "float" => {
                let (b_at, body) = self.app_body()?;
                let bytes =
                    hex::decode(body).map_err(|_| self.err_at(b_at, DiagErrorKind::InvalidHex))?;
                let f = match bytes.as_slice() {
                    [a, b] => FloatBits::F16(u16::from_be_bytes([*a, *b])),
                    [a, b, c, d] => FloatBits::F32(u32::from_be_bytes([*a, *b, *c, *d])),
                    b if b.len() == 8 => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        FloatBits::F64(u64::from_be_bytes(a))
                    }
                    _ => return Err(self.err_at(b_at, DiagErrorKind::InvalidHex)),
                };
                Ok(Node::Float(f))
            }
            other => Err(self.err_at(at, DiagErrorKind::UnknownKeyword(other.to_owned()))),
        }
    }

    /// NaN / ±Infinity with an optional width indicator.
    fn special_float(&mut self, x: f64) -> Result<Node, DiagError> {
        let at = self.pos;
        let f = match self.width_indicator()? {
            None => FloatBits::preferred(x),
            Some(1) if x.is_nan() => FloatBits::F16(NAN16),
            Some(2) if x.is_nan() => FloatBits::F32(NAN32),
            Some(3) if x.is_nan() => FloatBits::F64(NAN64),
            Some(d) => {
                float_with_width(x, d).ok_or(self.err_at(at, DiagErrorKind::InvalidIndicator))?
            }
        };
        Ok(Node::Float(f))
    }

    /// Integers, floats, `-Infinity`, and tags `n(item)`.
    fn number(&mut self, depth: usize) -> Result<Node, DiagError> {
        let start = self.pos;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.pos += 1;
            if self.s.get(self.pos..self.pos.saturating_add(8)) == Some(b"Infinity") {
                self.pos += 8;
                return self.special_float(f64::NEG_INFINITY);
            }
        }
        let radix = match (self.peek(), self.peek_at(1)) {
            (Some(b'0'), Some(b'x' | b'X')) => 16,
            (Some(b'0'), Some(b'o' | b'O')) => 8,
            (Some(b'0'), Some(b'b' | b'B')) => 2,
            _ => 10,
        };
        let mut is_float = false;
        let digits_start;
        if radix != 10 {
            self.pos += 2;
            digits_start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
        } else {
            digits_start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            if self.peek() == Some(b'.') {
                is_float = true;
                self.pos += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                is_float = true;
                self.pos += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
        }
        let digits = self.src.get(digits_start..self.pos).unwrap_or_default();
        if digits.is_empty() {
            return Err(self.err_at(start, DiagErrorKind::InvalidNumber));
        }
        let ind_at = self.pos;
        let ind = self.width_indicator()?;
        if is_float {
            let text = self.src.get(start..ind_at).unwrap_or_default();
            let x: f64 = text
                .parse()
                .map_err(|_| self.err_at(start, DiagErrorKind::InvalidNumber))?;
            let f = match ind {
                None => FloatBits::preferred(x),
                Some(d) => float_with_width(x, d)
                    .ok_or(self.err_at(ind_at, DiagErrorKind::FloatNotRepresentable))?,
            };
            if self.peek() == Some(b'(') {
                return Err(self.unexpected());
            }
            return Ok(Node::Float(f));
        }
        if !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(self.err_at(start, DiagErrorKind::InvalidNumber));
        }
        let mag = u128::from_str_radix(digits, radix)
            .map_err(|_| self.err_at(start, DiagErrorKind::IntegerOutOfRange))?;
        let (major_neg, arg) = if neg && mag > 0 {
            (
                true,
                u64::try_from(mag - 1)
                    .map_err(|_| self.err_at(start, DiagErrorKind::IntegerOutOfRange))?,
            )
        } else {
            (
                false,
                u64::try_from(mag)
                    .map_err(|_| self.err_at(start, DiagErrorKind::IntegerOutOfRange))?,
            )
        };
        let w = match ind {
            None => Width::shortest(arg),
            Some(d) => Width::from_indicator(d)
                .filter(|w| w.fits(arg))
                .ok_or(self.err_at(ind_at, DiagErrorKind::InvalidIndicator))?,
        };
        if self.peek() == Some(b'(') {
            if neg {
                return Err(self.unexpected());
            }
            let depth = self.enter(depth)?;
            self.pos += 1;
            self.ws()?;
            let inner = self.item(depth)?;
            self.ws()?;
            self.expect(b')')?;
            return Ok(Node::Tag(arg, w, Box::new(inner)));
        }
        Ok(if major_neg {
            Node::Nint(arg, w)
        } else {
            Node::Uint(arg, w)
        })
    }
}

fn make_str(text: bool, body: StrBody) -> Node {
    if text {
        Node::Text(body)
    } else {
        Node::Bytes(body)
    }
}

/// `x` at the width of indicator `d` (1 = f16, 2 = f32, 3 = f64) if exact.
fn float_with_width(x: f64, d: u8) -> Option<FloatBits> {
    match d {
        1 => f64_to_f16_exact(x).map(FloatBits::F16),
        2 => f64_to_f32_exact(x).map(FloatBits::F32),
        3 => Some(FloatBits::F64(x.to_bits())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(hex_in: &str, diag: &str) {
        let b = hex::decode(hex_in).unwrap();
        assert_eq!(to_diag(&b).unwrap(), diag, "{hex_in}");
        assert_eq!(hex::encode(from_diag(diag).unwrap()), hex_in, "{diag}");
    }

    #[test]
    fn lossless_examples() {
        rt("00", "0");
        rt("1818", "24");
        rt("180c", "12_0");
        rt("19000c", "12_1");
        rt("1a0000000c", "12_2");
        rt("1b000000000000000c", "12_3");
        rt("3bffffffffffffffff", "-18446744073709551616");
        rt("f93e00", "1.5_1");
        rt("fa3fc00000", "1.5_2");
        rt("fb3ff8000000000000", "1.5_3");
        rt("f98000", "-0.0_1");
        rt("f97e00", "NaN_1");
        rt("fa7fc00000", "NaN_2");
        rt("f97e01", "float'7e01'");
        rt("faff800000", "-Infinity_2");
        rt("fb7e37e43c8800759c", "1.0e+300_3");
        rt("f90001", "5.960464477539063e-8_1");
        rt("fa47c35000", "100000.0_2");
        rt("4401020304", "h'01020304'");
        rt("580101", "h'01'_0");
        rt("5f42010243030405ff", "(_ h'0102', h'030405')");
        rt("5fff", "''_");
        rt("7fff", "\"\"_");
        rt("7f657374726561646d696e67ff", "(_ \"strea\", \"ming\")");
        rt("62225c", "\"\\\"\\\\\"");
        rt("63e6b0b4", "\"水\"");
        rt("9fff", "[_ ]");
        rt("9f018202039f0405ffff", "[_ 1, [2, 3], [_ 4, 5]]");
        rt("980101", "[_0 1]");
        rt("bf6346756ef563416d7421ff", "{_ \"Fun\": true, \"Amt\": -2}");
        rt("a201020304", "{1: 2, 3: 4}");
        rt(
            "c074323031332d30332d32315432303a30343a30305a",
            "0(\"2013-03-21T20:04:00Z\")",
        );
        rt("d81800", "24(0)");
        rt("d8010c", "1_0(12)");
        rt("f0", "simple(16)");
        rt("f8ff", "simple(255)");
        rt("f7", "undefined");
    }

    #[test]
    fn input_extensions() {
        let h = |s: &str| hex::encode(from_diag(s).unwrap());
        assert_eq!(h("b64'AQID'"), "43010203");
        assert_eq!(h("b64'-_8'"), "42fbff");
        assert_eq!(h("'abc'"), "43616263");
        assert_eq!(h("h'01 02' h'03'"), "43010203");
        assert_eq!(h("\"a\" \"b\""), "626162");
        assert_eq!(h("[1, /comment/ 2 # rest\n, 3]"), "83010203");
        assert_eq!(h("1.5"), "f93e00");
        assert_eq!(h("NaN"), "f97e00");
        assert_eq!(h("-Infinity"), "f9fc00");
        assert_eq!(h("0x10"), "10");
        assert_eq!(h("-0"), "00");
        assert_eq!(h("1.0e+300"), "fb7e37e43c8800759c");
        assert_eq!(h("\"\\ud834\\udd1e\""), "64f09d849e");
    }

    #[test]
    fn parse_errors() {
        let e = |s: &str| from_diag(s).unwrap_err();
        assert_eq!(e("[1, 2").kind, DiagErrorKind::UnexpectedEnd);
        assert_eq!(e("1.1_1").kind, DiagErrorKind::FloatNotRepresentable);
        assert_eq!(
            e("256_0"),
            DiagError {
                position: 3,
                kind: DiagErrorKind::InvalidIndicator
            }
        );
        assert_eq!(
            e("18446744073709551616").kind,
            DiagErrorKind::IntegerOutOfRange
        );
        assert_eq!(e("simple(24)").kind, DiagErrorKind::InvalidSimple(24));
        assert_eq!(e("h'0'").kind, DiagErrorKind::InvalidHex);
        assert_eq!(e("\"a\" h'00'").kind, DiagErrorKind::MixedConcatenation);
        assert_eq!(
            e("1 2"),
            DiagError {
                position: 2,
                kind: DiagErrorKind::TrailingInput
            }
        );
        assert_eq!(e("(_ )").kind, DiagErrorKind::UnexpectedChar(')'));
        assert_eq!(e("foo").kind, DiagErrorKind::UnknownKeyword("foo".into()));
        let deep = "[".repeat(200);
        assert_eq!(e(&deep).kind, DiagErrorKind::DepthExceeded);
    }
}
