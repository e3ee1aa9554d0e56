//! Message templates: YAML values that become CBOR, with `${name}` substitution of captured
//! values, and value paths (`body.terms.price.amount`, `offers[0]`) for capture and tampering.
//!
//! Scalar typing (plain scalars only; quoted scalars are always text):
//! `null`/`~`/empty → null, `true`/`false` → bool, `12`, `-3`, `0x1f` → integer,
//! `1.5`, `1e3`, `.inf`, `-.inf`, `.nan` → float, anything else → text. A scalar that is exactly
//! `${name}` becomes the captured value itself (any CBOR type); `${name}` inside a longer
//! text is interpolated (the value must be text or an integer); `$${` writes a literal `${`.
//! Single-key maps with a `$` key are directives: `{$hex: "00ff"}` / `{$base64: "AP8="}` →
//! byte string, `{$diag: "1(1700000000)"}` → any CBOR item written in diagnostic notation.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use mtp_protocol::cbor::{self, INT_MAX, INT_MIN, Value, diag};

use super::yaml::{Diag, Node, NodeKind};

/// A piece of text with `${name}` holes.
#[derive(Clone, Debug, PartialEq)]
pub struct TextTemplate(pub Vec<TextPart>);

#[derive(Clone, Debug, PartialEq)]
pub enum TextPart {
    Lit(String),
    Var(String),
}

/// A YAML value on its way to CBOR.
#[derive(Clone, Debug, PartialEq)]
pub enum Template {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(TextTemplate),
    Bytes(Vec<u8>),
    /// A CBOR item given in diagnostic notation.
    Literal(Value),
    /// Exactly `${name}`: the captured value, whatever its type.
    Var(String),
    Array(Vec<Template>),
    /// Keys are text or integer templates.
    Map(Vec<(Template, Template)>),
}

/// Captured and predefined values, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Variables(BTreeMap<String, Value>);

impl Variables {
    pub fn new() -> Variables {
        Variables::default()
    }
    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        self.0.insert(name.into(), value);
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// A template refers to a value nobody captured, or interpolates one that is not text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("`${{{0}}}` has no value (nothing captured it, and the executor does not provide it)")]
    Unbound(String),
    #[error("`${{{0}}}` cannot be interpolated into text: it is {1}")]
    NotText(String, String),
}

pub fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl TextTemplate {
    pub fn literal(s: impl Into<String>) -> TextTemplate {
        TextTemplate(vec![TextPart::Lit(s.into())])
    }

    /// Splits `${name}` holes out of `s`; `$${` is a literal `${`.
    pub fn parse(s: &str) -> Result<TextTemplate, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(r) = after.strip_prefix("$${") {
                lit.push_str("${");
                rest = r;
            } else if let Some(r) = after.strip_prefix("${") {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
                let name = &r[..end];
                if !is_var_name(name) {
                    return Err(format!(
                        "`${{{name}}}`: a variable name is letters, digits, `_` and `.`, starting with a letter"
                    ));
                }
                if !lit.is_empty() {
                    parts.push(TextPart::Lit(std::mem::take(&mut lit)));
                }
                parts.push(TextPart::Var(name.to_owned()));
                rest = &r[end + 1..];
            } else {
                lit.push('$');
                rest = &after[1..];
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() || parts.is_empty() {
            parts.push(TextPart::Lit(lit));
        }
        Ok(TextTemplate(parts))
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            TextPart::Var(v) => Some(v.as_str()),
            TextPart::Lit(_) => None,
        })
    }

    pub fn resolve(&self, vars: &Variables) -> Result<String, ResolveError> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                TextPart::Lit(s) => out.push_str(s),
                TextPart::Var(name) => {
                    let v = vars
                        .get(name)
                        .ok_or_else(|| ResolveError::Unbound(name.clone()))?;
                    match v {
                        Value::Text(t) => out.push_str(t),
                        Value::Integer(i) => out.push_str(&i.to_string()),
                        other => {
                            return Err(ResolveError::NotText(
                                name.clone(),
                                diag::value_to_diag(other),
                            ));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Exactly one variable and nothing else.
    fn single_var(&self) -> Option<&str> {
        match self.0.as_slice() {
            [TextPart::Var(v)] => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for TextTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                TextPart::Lit(s) => f.write_str(&s.replace("${", "$${"))?,
                TextPart::Var(v) => write!(f, "${{{v}}}")?,
            }
        }
        Ok(())
    }
}

fn plain_scalar(text: &str) -> Option<Template> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Template::Null),
        "true" | "True" | "TRUE" => return Some(Template::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Template::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Some(Template::Float(f64::INFINITY)),
        "-.inf" | "-.Inf" | "-.INF" => return Some(Template::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Template::Float(f64::NAN)),
        _ => {}
    }
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if let Some(hex) = digits.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return i128::from_str_radix(hex, 16)
            .ok()
            .map(|v| Template::Int(if neg { -v } else { v }));
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits
            .parse::<i128>()
            .ok()
            .map(|v| Template::Int(if neg { -v } else { v }));
    }
    let looks_float = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && digits.as_bytes()[0].is_ascii_digit()
        || digits.starts_with('.') && digits.len() > 1 && digits.as_bytes()[1].is_ascii_digit();
    if looks_float && let Ok(f) = text.parse::<f64>() {
        return Some(Template::Float(f));
    }
    None
}

impl Template {
    /// Converts a YAML node. Errors carry the node's position.
    pub fn from_node(node: &Node) -> Result<Template, Diag> {
        match &node.kind {
            NodeKind::Scalar { text, plain } => {
                if *plain {
                    if let Some(t) = plain_scalar(text) {
                        if let Template::Int(i) = t
                            && !(INT_MIN..=INT_MAX).contains(&i)
                        {
                            return Err(Diag::at(node, "integer outside the CBOR range"));
                        }
                        return Ok(t);
                    }
                    if text
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
                        && text.bytes().any(|b| b.is_ascii_digit())
                        && text.len() > 1
                        && text[1..].bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(Diag::at(node, "integer outside the CBOR range"));
                    }
                }
                let tt = TextTemplate::parse(text).map_err(|m| Diag::at(node, m))?;
                Ok(match tt.single_var() {
                    Some(v) => Template::Var(v.to_owned()),
                    None => Template::Text(tt),
                })
            }
            NodeKind::Seq(items) => items
                .iter()
                .map(Template::from_node)
                .collect::<Result<_, _>>()
                .map(Template::Array),
            NodeKind::Map(entries) => {
                if let [(k, v)] = entries.as_slice()
                    && k.text.starts_with('$')
                    && !k.text.starts_with("$$")
                {
                    return directive(&k.text, v, node);
                }
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let key = if k.text.starts_with("$$") {
                        Template::Text(TextTemplate::literal(&k.text[1..]))
                    } else if k.text.starts_with('$') && !k.text.starts_with("${") {
                        return Err(Diag::new(
                            k.line,
                            k.col,
                            format!(
                                "`{}`: a `$` directive must be the only key of its map (write `$${}` for a literal key)",
                                k.text,
                                &k.text[1..]
                            ),
                        ));
                    } else if k.plain
                        && !k.text.is_empty()
                        && k.text.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                        && k.text[1..].bytes().all(|b| b.is_ascii_digit())
                    {
                        match k.text.parse::<i128>() {
                            Ok(i) if (INT_MIN..=INT_MAX).contains(&i) => Template::Int(i),
                            _ => {
                                return Err(Diag::new(
                                    k.line,
                                    k.col,
                                    "integer key outside the CBOR range",
                                ));
                            }
                        }
                    } else {
                        let tt = TextTemplate::parse(&k.text)
                            .map_err(|m| Diag::new(k.line, k.col, m))?;
                        Template::Text(tt)
                    };
                    out.push((key, Template::from_node(v)?));
                }
                Ok(Template::Map(out))
            }
        }
    }

    /// Every variable the template refers to.
    pub fn vars(&self, out: &mut Vec<String>) {
        match self {
            Template::Text(t) => out.extend(t.vars().map(str::to_owned)),
            Template::Var(v) => out.push(v.clone()),
            Template::Array(items) => items.iter().for_each(|t| t.vars(out)),
            Template::Map(entries) => entries.iter().for_each(|(k, v)| {
                k.vars(out);
                v.vars(out);
            }),
            _ => {}
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self, Template::Map(_))
    }

    pub fn empty_map() -> Template {
        Template::Map(Vec::new())
    }

    /// The CBOR value, with every variable substituted.
    pub fn resolve(&self, vars: &Variables) -> Result<Value, ResolveError> {
        Ok(match self {
            Template::Null => Value::Null,
            Template::Bool(b) => Value::Bool(*b),
            Template::Int(i) => Value::Integer(*i),
            Template::Float(f) => Value::Float(*f),
            Template::Text(t) => Value::Text(t.resolve(vars)?),
            Template::Bytes(b) => Value::Bytes(b.clone()),
            Template::Literal(v) => v.clone(),
            Template::Var(name) => vars
                .get(name)
                .cloned()
                .ok_or_else(|| ResolveError::Unbound(name.clone()))?,
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.resolve(vars))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.resolve(vars)?, v.resolve(vars)?)))
                    .collect::<Result<_, ResolveError>>()?,
            ),
        })
    }
}

fn directive(key: &str, v: &Node, map: &Node) -> Result<Template, Diag> {
    let text = || v.str(key);
    match key {
        "$hex" | "$bytes" => {
            let s: String = text()?.chars().filter(|c| !c.is_whitespace()).collect();
            hex::decode(&s)
                .map(Template::Bytes)
                .map_err(|e| Diag::at(v, format!("{key}: not hex: {e}")))
        }
        "$base64" => base64::engine::general_purpose::STANDARD
            .decode(text()?.trim())
            .map(Template::Bytes)
            .map_err(|e| Diag::at(v, format!("$base64: {e}"))),
        "$diag" => {
            let bytes = diag::from_diag(text()?)
                .map_err(|e| Diag::at(v, format!("$diag: not CBOR diagnostic notation: {e}")))?;
            cbor::from_slice_lenient(&bytes)
                .map(Template::Literal)
                .map_err(|e| Diag::at(v, format!("$diag: {e}")))
        }
        _ => Err(Diag::at(
            map,
            format!(
                "unknown template directive `{key}` (known: $hex, $base64, $diag; write `$${}` for a literal key)",
                &key[1..]
            ),
        )),
    }
}

/// One step of a [`ValuePath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A path into a CBOR value: `body.terms.price`, `offers[0].offer_id`, `items[2]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValuePath(pub Vec<PathSeg>);

impl ValuePath {
    pub fn parse(s: &str) -> Result<ValuePath, String> {
        let mut segs = Vec::new();
        if s.trim().is_empty() {
            return Err("empty path".into());
        }
        for part in s.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() && (segs.is_empty() || rest.is_empty()) {
                return Err(format!("`{s}`: empty path segment"));
            }
            if !key.is_empty() {
                if key.contains([']', ' ', '$', '{', '}']) {
                    return Err(format!("`{s}`: bad key `{key}`"));
                }
                segs.push(PathSeg::Key(key.to_owned()));
            }
            while !rest.is_empty() {
                let Some(r) = rest.strip_prefix('[') else {
                    return Err(format!("`{s}`: expected `[index]`"));
                };
                let Some(end) = r.find(']') else {
                    return Err(format!("`{s}`: unclosed `[`"));
                };
                let idx: usize = r[..end]
                    .parse()
                    .map_err(|_| format!("`{s}`: `{}` is not an index", &r[..end]))?;
                segs.push(PathSeg::Index(idx));
                rest = &r[end + 1..];
            }
        }
        Ok(ValuePath(segs))
    }

    /// The first segment when it is a key (used for capture roots).
    pub fn root(&self) -> Option<&str> {
        match self.0.first() {
            Some(PathSeg::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// The path without its first segment.
    pub fn tail(&self) -> ValuePath {
        ValuePath(self.0.iter().skip(1).cloned().collect())
    }

    /// Looks the path up in `v` (text keys of maps, indices of arrays).
    pub fn lookup<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        let mut cur = v;
        for seg in &self.0 {
            cur = match (seg, cur) {
                (PathSeg::Key(k), Value::Map(entries)) => entries
                    .iter()
                    .find(|(ek, _)| ek.as_text() == Some(k.as_str()))
                    .map(|(_, ev)| ev)?,
                (PathSeg::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => f.write_str(k)?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Whether `observed` contains `expected`: maps match when every expected key is present
/// with a matching value (extra keys allowed); arrays match element-wise with equal length;
/// everything else must be equal (floats by bits, so NaN matches NaN).
pub fn subset_match(expected: &Value, observed: &Value) -> bool {
    match (expected, observed) {
        (Value::Map(e), Value::Map(o)) => e.iter().all(|(ek, ev)| {
            o.iter()
                .find(|(ok, _)| ok == ek)
                .is_some_and(|(_, ov)| subset_match(ev, ov))
        }),
        (Value::Array(e), Value::Array(o)) => {
            e.len() == o.len() && e.iter().zip(o).all(|(a, b)| subset_match(a, b))
        }
        (Value::Tag(t1, e), Value::Tag(t2, o)) => t1 == t2 && subset_match(e, o),
        (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits() || a == b,
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::yaml::parse;

    fn t(yaml: &str) -> Template {
        let n = parse(yaml).unwrap();
        Template::from_node(&n).unwrap()
    }

    #[test]
    fn scalars_are_typed() {
        let v = t("a: 5\nb: \"5\"\nc: 1.5\nd: true\ne: ~\nf: 0x10\ng: -7\nh: hello\ni: 0100\n")
            .resolve(&Variables::new())
            .unwrap();
        let get = |k: &str| ValuePath::parse(k).unwrap().lookup(&v).cloned().unwrap();
        assert_eq!(get("a"), Value::Integer(5));
        assert_eq!(get("b"), Value::text("5"));
        assert_eq!(get("c"), Value::Float(1.5));
        assert_eq!(get("d"), Value::Bool(true));
        assert_eq!(get("e"), Value::Null);
        assert_eq!(get("f"), Value::Integer(16));
        assert_eq!(get("g"), Value::Integer(-7));
        assert_eq!(get("h"), Value::text("hello"));
        assert_eq!(get("i"), Value::Integer(100));
    }

    #[test]
    fn substitution_and_directives() {
        let tpl = t(
            "id: ${offer_id}\nmsg: \"offer ${offer_id} at ${n}\"\nraw: {$hex: 00ff}\nd: {$diag: \"[1, h'02']\"}\nlit: $${x}\n",
        );
        let mut vars = Variables::new();
        vars.set("offer_id", Value::text("abc"));
        vars.set("n", Value::Integer(3));
        let v = tpl.resolve(&vars).unwrap();
        let get = |k: &str| ValuePath::parse(k).unwrap().lookup(&v).cloned().unwrap();
        assert_eq!(get("id"), Value::text("abc"));
        assert_eq!(get("msg"), Value::text("offer abc at 3"));
        assert_eq!(get("raw"), Value::bytes(vec![0, 0xff]));
        assert_eq!(
            get("d"),
            Value::Array(vec![Value::Integer(1), Value::bytes(vec![2])])
        );
        assert_eq!(get("lit"), Value::text("${x}"));
        let mut names = Vec::new();
        tpl.vars(&mut names);
        assert_eq!(names, ["offer_id", "offer_id", "n"]);
        assert_eq!(
            t("a: ${missing}").resolve(&Variables::new()),
            Err(ResolveError::Unbound("missing".into()))
        );
    }

    #[test]
    fn bad_templates_are_positioned_errors() {
        let n = parse("a: 1\nb: {$nope: 1}\n").unwrap();
        assert_eq!(Template::from_node(&n).unwrap_err().line, 2);
        let n = parse("a:\n  b: \"${unclosed\"\n").unwrap();
        assert_eq!(Template::from_node(&n).unwrap_err().line, 2);
        let n = parse("a: 99999999999999999999999999999\n").unwrap();
        assert!(Template::from_node(&n).is_err());
    }

    #[test]
    fn paths() {
        let p = ValuePath::parse("body.offers[1].id").unwrap();
        assert_eq!(p.to_string(), "body.offers[1].id");
        assert_eq!(p.root(), Some("body"));
        for bad in ["", "a..b", "a[x]", "a[1", "[0]"] {
            assert!(ValuePath::parse(bad).is_err(), "{bad}");
        }
        let v = Value::map([(
            "body",
            Value::map([(
                "offers",
                Value::Array(vec![
                    Value::map([("id", Value::Integer(1))]),
                    Value::map([("id", Value::Integer(2))]),
                ]),
            )]),
        )]);
        assert_eq!(p.lookup(&v), Some(&Value::Integer(2)));
    }

    #[test]
    fn subset() {
        let obs = Value::map([("a", Value::Integer(1)), ("b", Value::text("x"))]);
        assert!(subset_match(&Value::map([("a", Value::Integer(1))]), &obs));
        assert!(!subset_match(&Value::map([("a", Value::Integer(2))]), &obs));
        assert!(!subset_match(&Value::map([("c", Value::Null)]), &obs));
    }
}
