//! The MTP Value Taxonomy (SPEC V, BIND VIII; PROFILE G-07, G-43, G-53).
//!
//! - [`Classifier`]: `segment *("." segment)`, `segment = 1*[a-z0-9_]` after ASCII
//!   lowercasing, 1–8 segments, ≤ 256 characters, first segment one of the nine
//!   categories (PROFILE G-07). Comparison is on the ASCII-lowercased form
//!   (BIND-VIII-01); the wire spelling is kept (it is signed) and [`Classifier::is_canonical`]
//!   says whether it was already lowercase (producers MUST emit lowercase: a warning, not
//!   an error).
//! - [`check_quality`]: the mandatory quality dimensions of each category, as keys of
//!   `terms.quality` with the types of PROFILE G-43 (extra keys always accepted).

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::cbor::Value;
use crate::errors::{Coded, ErrorCode};

/// Longest classifier (PROFILE G-07).
pub const MAX_CLASSIFIER_LEN: usize = 256;
/// Most segments in a classifier (PROFILE G-07).
pub const MAX_SEGMENTS: usize = 8;

/// The nine normative top-level categories (SPEC V, SPEC-V-01, BIND-VIII-I02).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    PhysicalGoods,
    DigitalGoods,
    Services,
    Compute,
    Inference,
    Information,
    Communication,
    Logistics,
    Compliance,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::PhysicalGoods,
        Category::DigitalGoods,
        Category::Services,
        Category::Compute,
        Category::Inference,
        Category::Information,
        Category::Communication,
        Category::Logistics,
        Category::Compliance,
    ];

    /// The wire name (`physical_goods`, …).
    pub fn name(self) -> &'static str {
        match self {
            Category::PhysicalGoods => "physical_goods",
            Category::DigitalGoods => "digital_goods",
            Category::Services => "services",
            Category::Compute => "compute",
            Category::Inference => "inference",
            Category::Information => "information",
            Category::Communication => "communication",
            Category::Logistics => "logistics",
            Category::Compliance => "compliance",
        }
    }

    /// Exact (lowercase) name lookup.
    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The requirement listing this category's mandatory quality dimensions.
    pub fn quality_requirement(self) -> &'static str {
        match self {
            Category::PhysicalGoods => "BIND-VIII-A-01",
            Category::Inference => "BIND-VIII-B-01",
            Category::Compute => "BIND-VIII-C-01",
            Category::DigitalGoods => "BIND-VIII-D-01",
            Category::Services => "BIND-VIII-D-02",
            Category::Information => "BIND-VIII-D-03",
            Category::Communication => "BIND-VIII-D-04",
            Category::Logistics => "BIND-VIII-D-05",
            Category::Compliance => "BIND-VIII-D-06",
        }
    }

    /// Mandatory quality dimensions (BIND VIII A–D, typed per PROFILE G-43).
    pub fn mandatory_dimensions(self) -> &'static [Dimension] {
        use DimensionKind as K;
        const fn d(name: &'static str, kind: DimensionKind) -> Dimension {
            Dimension { name, kind }
        }
        const PHYSICAL: &[Dimension] = &[
            d("condition", K::Enum(&["new", "refurbished", "used"])),
            d(
                "dimensions",
                K::Object(&[
                    d("length", K::NonNegativeNumber),
                    d("width", K::NonNegativeNumber),
                    d("height", K::NonNegativeNumber),
                    d("unit", K::Text),
                ]),
            ),
            d(
                "weight",
                K::Object(&[d("value", K::NonNegativeNumber), d("unit", K::Text)]),
            ),
            // Member names are a profile choice (BIND VIII-A names no keys; `return_window`
            // follows the SPEC II-A example).
            d(
                "return_policy",
                K::Object(&[
                    d("return_window", K::Duration),
                    d("restocking_fee_percent", K::Percent),
                ]),
            ),
            d("shipping_class", K::Text),
        ];
        const INFERENCE: &[Dimension] = &[
            d("accuracy_threshold", K::Fraction),
            d("max_latency_ms", K::Uint),
            d("output_format", K::Mime),
            d("model_version", K::Text),
        ];
        const COMPUTE: &[Dimension] = &[
            d("compute_type", K::Enum(&["cpu", "gpu", "tpu", "fpga"])),
            d("compute_units", K::Uint),
            d("duration", K::Duration),
            d("availability_guarantee", K::Fraction),
            d("memory_gb", K::Uint),
        ];
        const DIGITAL: &[Dimension] = &[
            d("file_format", K::Mime),
            d("file_size_bytes", K::Uint),
            d("license_type", K::Text),
            d("drm_status", K::Bool),
        ];
        const SERVICES: &[Dimension] = &[
            d("service_type", K::Text),
            d("delivery_timeline", K::Duration),
            d("revision_count", K::Uint),
            d("acceptance_criteria", K::TextOrTextList),
        ];
        const INFORMATION: &[Dimension] = &[
            d("accuracy_attestation_method", K::Text),
            d("freshness_guarantee", K::Duration),
            d("format", K::Mime),
        ];
        const COMMUNICATION: &[Dimension] = &[
            d("channel_type", K::Text),
            d("reliability_guarantee", K::Fraction),
            d("max_latency_ms", K::Uint),
            d("encryption_required", K::Bool),
        ];
        const LOGISTICS: &[Dimension] = &[
            d("origin", K::Text),
            d("destination", K::Text),
            d("service_level", K::Text),
            d("insurance_value", K::PriceSpec),
            d("tracking_method", K::Text),
        ];
        const COMPLIANCE: &[Dimension] = &[
            d("regulation_reference", K::Text),
            d("jurisdiction", K::Jurisdiction),
            d("assessment_methodology", K::Text),
            d("certification_validity_period", K::Duration),
        ];
        match self {
            Category::PhysicalGoods => PHYSICAL,
            Category::Inference => INFERENCE,
            Category::Compute => COMPUTE,
            Category::DigitalGoods => DIGITAL,
            Category::Services => SERVICES,
            Category::Information => INFORMATION,
            Category::Communication => COMMUNICATION,
            Category::Logistics => LOGISTICS,
            Category::Compliance => COMPLIANCE,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A quality dimension (or a member of an object dimension) and its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dimension {
    pub name: &'static str,
    pub kind: DimensionKind,
}

/// Value types of quality dimensions (PROFILE G-43, G-53).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DimensionKind {
    /// One of the listed text values.
    Enum(&'static [&'static str]),
    /// Unsigned integer.
    Uint,
    /// Number (integer or float) in [0, 1], inclusive.
    Fraction,
    /// Number in [0, 100], inclusive.
    Percent,
    /// Finite number ≥ 0.
    NonNegativeNumber,
    /// ISO 8601 duration, see [`is_iso8601_duration`].
    Duration,
    /// RFC 6838 media type, see [`is_mime_type`].
    Mime,
    /// Non-empty text.
    Text,
    /// Non-empty text or a non-empty array of non-empty texts.
    TextOrTextList,
    Bool,
    /// `{amount: number, unit: tstr}` (PROFILE G-03).
    PriceSpec,
    /// ISO 3166-1 alpha-2, optionally `-` ISO 3166-2 subdivision, see [`is_jurisdiction`].
    Jurisdiction,
    /// A map with these mandatory members (extra members accepted).
    Object(&'static [Dimension]),
}

impl DimensionKind {
    /// Short description for error messages.
    pub fn describe(&self) -> &'static str {
        match self {
            DimensionKind::Enum(_) => "one of the enumerated values",
            DimensionKind::Uint => "an unsigned integer",
            DimensionKind::Fraction => "a float in [0.0, 1.0]",
            DimensionKind::Percent => "a number in [0, 100]",
            DimensionKind::NonNegativeNumber => "a non-negative number",
            DimensionKind::Duration => "an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
            DimensionKind::Mime => "a MIME type (type/subtype[;params])",
            DimensionKind::Text => "a non-empty text string",
            DimensionKind::TextOrTextList => "a non-empty text or array of texts",
            DimensionKind::Bool => "a boolean",
            DimensionKind::PriceSpec => "a price-spec {amount: number, unit: tstr}",
            DimensionKind::Jurisdiction => "an ISO 3166-1 alpha-2 code (optionally -subdivision)",
            DimensionKind::Object(_) => "a map",
        }
    }
}

/// Why a classifier is refused (BIND-VIII-I01, BIND-VIII-I02, SPEC-V-01).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaxonomyError {
    #[error("classifier is empty")]
    Empty,
    #[error("classifier is {len} characters long (at most 256)")]
    TooLong { len: usize },
    #[error("classifier has {count} segments (1-8 allowed)")]
    TooManySegments { count: usize },
    #[error("classifier segment {index} is empty")]
    EmptySegment { index: usize },
    #[error("classifier character {ch:?} at offset {position} is not in [a-z0-9_.]")]
    BadCharacter { position: usize, ch: char },
    /// First segment outside the nine categories (SPEC-V-01).
    #[error("{name:?} is not a top-level MTP category")]
    UnknownCategory { name: String },
}

impl Coded for TaxonomyError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SchemaViolation
    }
    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            TaxonomyError::UnknownCategory { .. } => "SPEC-V-01",
            _ => "BIND-VIII-I01",
        })
    }
}

/// A Value Type classifier (PROFILE G-07). Equality, hashing and containment use the
/// ASCII-lowercased form (BIND-VIII-01); [`Classifier::as_str`] is the wire spelling.
#[derive(Clone, Debug)]
pub struct Classifier {
    wire: String,
    normalized: String,
    category: Category,
}

impl Classifier {
    pub fn parse(s: &str) -> Result<Classifier, TaxonomyError> {
        if s.is_empty() {
            return Err(TaxonomyError::Empty);
        }
        let chars = s.chars().count();
        if chars > MAX_CLASSIFIER_LEN {
            return Err(TaxonomyError::TooLong { len: chars });
        }
        for (position, ch) in s.char_indices() {
            if !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.') {
                return Err(TaxonomyError::BadCharacter { position, ch });
            }
        }
        let normalized = s.to_ascii_lowercase();
        let count = normalized.split('.').count();
        if count > MAX_SEGMENTS {
            return Err(TaxonomyError::TooManySegments { count });
        }
        if let Some(index) = normalized.split('.').position(str::is_empty) {
            return Err(TaxonomyError::EmptySegment { index });
        }
        let top = normalized.split('.').next().unwrap_or_default();
        let category = Category::from_name(top).ok_or_else(|| TaxonomyError::UnknownCategory {
            name: top.to_owned(),
        })?;
        Ok(Classifier {
            wire: s.to_owned(),
            normalized,
            category,
        })
    }

    /// The classifier of a bare category.
    pub fn of_category(c: Category) -> Classifier {
        Classifier {
            wire: c.name().to_owned(),
            normalized: c.name().to_owned(),
            category: c,
        }
    }

    /// The wire spelling (as received / to be signed).
    pub fn as_str(&self) -> &str {
        &self.wire
    }

    /// The ASCII-lowercased form used for comparison.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// `true` when the wire form was already lowercase (PROFILE G-07: otherwise a
    /// validation warning).
    pub fn is_canonical(&self) -> bool {
        self.wire == self.normalized
    }

    pub fn category(&self) -> Category {
        self.category
    }

    /// Lowercased segments.
    pub fn segments(&self) -> Vec<&str> {
        self.normalized.split('.').collect()
    }

    /// C within S iff C == S or C starts with S + "." (PROFILE G-07).
    pub fn is_within(&self, scope: &Classifier) -> bool {
        self.normalized == scope.normalized
            || (self.normalized.len() > scope.normalized.len()
                && self.normalized.starts_with(&scope.normalized)
                && self.normalized.as_bytes().get(scope.normalized.len()) == Some(&b'.'))
    }
}

impl PartialEq for Classifier {
    fn eq(&self, other: &Classifier) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Classifier {}

impl Hash for Classifier {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

impl fmt::Display for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.wire)
    }
}

impl std::str::FromStr for Classifier {
    type Err = TaxonomyError;
    fn from_str(s: &str) -> Result<Classifier, TaxonomyError> {
        Classifier::parse(s)
    }
}

/// A quality-dimension violation (SPEC-V-02; BIND VIII A–D; PROFILE G-43).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QualityError {
    #[error("terms.quality must be a map, got {found}")]
    NotAMap {
        category: Category,
        found: &'static str,
    },
    #[error("{category} quality dimension {dimension:?} is missing")]
    Missing {
        category: Category,
        dimension: String,
    },
    #[error("{category} quality dimension {dimension:?} must be {expected}, got {found}")]
    WrongType {
        category: Category,
        dimension: String,
        expected: &'static str,
        found: String,
    },
}

impl QualityError {
    /// Dotted path of the dimension inside `quality` (`""` for [`QualityError::NotAMap`]).
    pub fn dimension(&self) -> &str {
        match self {
            QualityError::NotAMap { .. } => "",
            QualityError::Missing { dimension, .. } | QualityError::WrongType { dimension, .. } => {
                dimension
            }
        }
    }

    pub fn category(&self) -> Category {
        match self {
            QualityError::NotAMap { category, .. }
            | QualityError::Missing { category, .. }
            | QualityError::WrongType { category, .. } => *category,
        }
    }

    /// The requirement id (BIND-VIII-A-01 … BIND-VIII-D-06).
    pub fn requirement(&self) -> &'static str {
        self.category().quality_requirement()
    }
}

impl Coded for QualityError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SchemaViolation
    }
    fn requirement(&self) -> Option<&'static str> {
        Some(self.category().quality_requirement())
    }
}

fn finite_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(_) | Value::Float(_) => v.as_f64().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn non_empty_text(v: &Value) -> bool {
    v.as_text().is_some_and(|s| !s.is_empty())
}

fn describe_found(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("{:?}", s.chars().take(64).collect::<String>()),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.kind().to_owned(),
    }
}

/// Checks one value against a kind, pushing errors under `path`.
fn check_kind(
    category: Category,
    path: &str,
    kind: &DimensionKind,
    v: &Value,
    errs: &mut Vec<QualityError>,
) {
    let ok = match kind {
        DimensionKind::Enum(values) => v.as_text().is_some_and(|s| values.contains(&s)),
        DimensionKind::Uint => matches!(v, Value::Integer(i) if *i >= 0),
        // BIND VIII-B/C: "a float between 0.0 and 1.0" — a CBOR float, so the JSON
        // round trip (PROFILE G-27) restores the same bytes.
        DimensionKind::Fraction => {
            matches!(v, Value::Float(f) if f.is_finite() && (0.0..=1.0).contains(f))
        }
        DimensionKind::Percent => finite_number(v).is_some_and(|f| (0.0..=100.0).contains(&f)),
        DimensionKind::NonNegativeNumber => finite_number(v).is_some_and(|f| f >= 0.0),
        DimensionKind::Duration => v.as_text().is_some_and(is_iso8601_duration),
        DimensionKind::Mime => v.as_text().is_some_and(is_mime_type),
        DimensionKind::Text => non_empty_text(v),
        DimensionKind::TextOrTextList => {
            non_empty_text(v)
                || v.as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(non_empty_text))
        }
        DimensionKind::Bool => matches!(v, Value::Bool(_)),
        DimensionKind::PriceSpec => {
            v.get("amount")
                .and_then(finite_number)
                .is_some_and(|f| f >= 0.0)
                && v.get("unit").is_some_and(non_empty_text)
        }
        DimensionKind::Jurisdiction => v.as_text().is_some_and(is_jurisdiction),
        DimensionKind::Object(fields) => {
            if v.as_map().is_some() {
                check_fields(category, path, fields, v, errs);
                true
            } else {
                false
            }
        }
    };
    if !ok {
        errs.push(QualityError::WrongType {
            category,
            dimension: path.to_owned(),
            expected: kind.describe(),
            found: describe_found(v),
        });
    }
}

fn check_fields(
    category: Category,
    prefix: &str,
    fields: &[Dimension],
    map: &Value,
    errs: &mut Vec<QualityError>,
) {
    for f in fields {
        let path = if prefix.is_empty() {
            f.name.to_owned()
        } else {
            format!("{prefix}.{}", f.name)
        };
        match map.get(f.name) {
            None => errs.push(QualityError::Missing {
                category,
                dimension: path,
            }),
            Some(v) => check_kind(category, &path, &f.kind, v, errs),
        }
    }
}

/// Checks that `quality` (the `terms.quality` map) carries every mandatory dimension of
/// `category` with the right type (SPEC-V-02; BIND VIII A–D; PROFILE G-43). Extra keys are
/// always accepted. Returns all violations.
pub fn check_quality(category: Category, quality: &Value) -> Result<(), Vec<QualityError>> {
    if quality.as_map().is_none() {
        return Err(vec![QualityError::NotAMap {
            category,
            found: quality.kind(),
        }]);
    }
    let mut errs = Vec::new();
    check_fields(
        category,
        "",
        category.mandatory_dimensions(),
        quality,
        &mut errs,
    );
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// ISO 8601 duration, PROFILE G-53 subset: `P[nY][nM][nD][T[nH][nM][nS]]` with at least
/// one component (and at least one after `T` when present), or `PnW`; non-negative
/// integer components, no sign, no fractions.
pub fn is_iso8601_duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('P') else {
        return false;
    };
    if rest.is_empty() {
        return false;
    }
    if let Some(weeks) = rest.strip_suffix('W') {
        return !weeks.is_empty() && weeks.bytes().all(|c| c.is_ascii_digit());
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    fn components(part: &str, designators: &[u8]) -> Option<usize> {
        let b = part.as_bytes();
        let mut i = 0;
        let mut next = 0; // index into designators: enforces order and uniqueness
        let mut count = 0;
        while i < b.len() {
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
            let d = *b.get(i)?;
            let pos = designators.iter().position(|&x| x == d)?;
            if pos < next {
                return None;
            }
            next = pos + 1;
            count += 1;
            i += 1;
        }
        Some(count)
    }
    let Some(date_count) = components(date, b"YMD") else {
        return false;
    };
    match time {
        None => date_count > 0,
        Some(t) => components(t, b"HMS").is_some_and(|n| n > 0),
    }
}

/// RFC 6838 `restricted-name`: 1–127 chars, first alphanumeric.
fn is_restricted_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 127
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
}

/// RFC 9110 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// RFC 9110 `quoted-string` (no obs-text).
fn is_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return false;
    };
    let b = inner.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            match b.get(i + 1) {
                Some(&n) if n == b'\t' || (0x20..0x7f).contains(&n) => i += 2,
                _ => return false,
            }
        } else if c == b'"' || !(c == b'\t' || (0x20..0x7f).contains(&c)) {
            return false;
        } else {
            i += 1;
        }
    }
    true
}

/// MIME type per RFC 6838 `type "/" subtype` with optional RFC 9110 parameters
/// (`; name=value`), PROFILE G-53. Case-insensitive (any case accepted).
pub fn is_mime_type(s: &str) -> bool {
    let mut parts = s.split(';');
    let essence = parts.next().unwrap_or_default();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    if !is_restricted_name(ty) || !is_restricted_name(sub) {
        return false;
    }
    parts.all(|p| {
        let p = p.trim_matches([' ', '\t']);
        match p.split_once('=') {
            Some((name, value)) => is_token(name) && (is_token(value) || is_quoted_string(value)),
            None => false,
        }
    })
}

/// ISO 3166-1 alpha-2 (uppercase) optionally followed by `-` and a 1–3 character
/// ISO 3166-2 subdivision code: `[A-Z]{2}(-[A-Z0-9]{1,3})?` (PROFILE G-24, G-46).
pub fn is_jurisdiction(s: &str) -> bool {
    let b = s.as_bytes();
    let country = b
        .get(..2)
        .is_some_and(|c| c.iter().all(u8::is_ascii_uppercase));
    match b.get(2..) {
        Some([]) => country,
        Some([b'-', sub @ ..]) => {
            country
                && (1..=3).contains(&sub.len())
                && sub
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert_eq!(Category::ALL.len(), 9);
        for c in Category::ALL {
            assert_eq!(Category::from_name(c.name()), Some(c));
            assert!(!c.mandatory_dimensions().is_empty());
        }
        assert_eq!(Category::from_name("Physical_Goods"), None);
        assert_eq!(Category::from_name("energy"), None);
    }

    #[test]
    fn classifier_grammar() {
        let c = Classifier::parse("inference.text_generation").unwrap();
        assert_eq!(c.category(), Category::Inference);
        assert_eq!(c.segments(), ["inference", "text_generation"]);
        assert!(c.is_canonical());
        assert_eq!(c.as_str(), "inference.text_generation");
        let u = Classifier::parse("Inference.Text_Generation").unwrap();
        assert!(!u.is_canonical());
        assert_eq!(u, c);
        assert_eq!(u.as_str(), "Inference.Text_Generation");
        assert_eq!(u.normalized(), "inference.text_generation");
        assert!(Classifier::parse("compliance").is_ok());
        assert!(Classifier::parse("a.b").is_err());
        assert!(Classifier::parse(&format!("compute{}", ".x".repeat(7))).is_ok());

        let cases: &[(&str, TaxonomyError)] = &[
            ("", TaxonomyError::Empty),
            (
                "energy.solar",
                TaxonomyError::UnknownCategory {
                    name: "energy".into(),
                },
            ),
            ("compute..gpu", TaxonomyError::EmptySegment { index: 1 }),
            (".compute", TaxonomyError::EmptySegment { index: 0 }),
            ("compute.", TaxonomyError::EmptySegment { index: 1 }),
            (
                "compute.gpu-hours",
                TaxonomyError::BadCharacter {
                    position: 11,
                    ch: '-',
                },
            ),
            (
                "compute gpu",
                TaxonomyError::BadCharacter {
                    position: 7,
                    ch: ' ',
                },
            ),
            (
                "computé",
                TaxonomyError::BadCharacter {
                    position: 6,
                    ch: 'é',
                },
            ),
        ];
        for (s, e) in cases {
            let got = Classifier::parse(s).unwrap_err();
            assert_eq!(&got, e, "{s}");
            assert_eq!(got.code(), ErrorCode::SchemaViolation);
        }
        assert_eq!(
            Classifier::parse(&format!("compute{}", ".x".repeat(8))),
            Err(TaxonomyError::TooManySegments { count: 9 })
        );
        assert_eq!(
            Classifier::parse(&format!("compute.{}", "x".repeat(250))),
            Err(TaxonomyError::TooLong { len: 258 })
        );
        assert_eq!(
            Classifier::parse("energy").unwrap_err().requirement(),
            Some("SPEC-V-01")
        );
    }

    #[test]
    fn containment() {
        let p = |s| Classifier::parse(s).unwrap();
        assert!(p("inference.text_generation").is_within(&p("inference")));
        assert!(p("inference").is_within(&p("inference")));
        assert!(p("Inference.Text_Generation").is_within(&p("inference.text_generation")));
        assert!(!p("inference").is_within(&p("inference.text_generation")));
        assert!(!p("inference.text_generation2").is_within(&p("inference.text_generation")));
        assert!(!p("information").is_within(&p("inference")));
        assert!(p("compute.gpu.h100").is_within(&Classifier::of_category(Category::Compute)));
    }

    #[test]
    fn durations() {
        for ok in [
            "P1D",
            "P30D",
            "PT1S",
            "P1Y2M3DT4H5M6S",
            "P2W",
            "PT36H",
            "P0D",
            "P1M",
            "PT1M",
            "P1YT1S",
        ] {
            assert!(is_iso8601_duration(ok), "{ok}");
        }
        for bad in [
            "",
            "P",
            "PT",
            "P1DT",
            "1D",
            "p1d",
            "P1.5D",
            "P-1D",
            "P1D2Y",
            "P1D1D",
            "PT1H1H",
            "P1W2D",
            "PW",
            "P1H",
            "PT1D",
            "P1DT1H1M1S1",
            "P 1D",
            "P1dT",
        ] {
            assert!(!is_iso8601_duration(bad), "{bad}");
        }
    }

    #[test]
    fn mime_types() {
        for ok in [
            "application/json",
            "text/plain; charset=utf-8",
            "text/plain;charset=\"utf-8\"",
            "image/svg+xml",
            "application/vnd.api+json",
            "Text/HTML",
            "audio/x-wav",
        ] {
            assert!(is_mime_type(ok), "{ok}");
        }
        for bad in [
            "",
            "json",
            "application/",
            "/json",
            "application/json;",
            "a/b; c",
            "a/b;c=",
            "a/b c",
            "-a/b",
            "a/b/c",
        ] {
            assert!(!is_mime_type(bad), "{bad}");
        }
    }

    #[test]
    fn jurisdictions() {
        for ok in ["US", "DE", "US-CA", "GB-ENG", "FR-75"] {
            assert!(is_jurisdiction(ok), "{ok}");
        }
        for bad in ["", "U", "us", "USA", "US-", "US-CAL1", "US_CA", "US-ca"] {
            assert!(!is_jurisdiction(bad), "{bad}");
        }
    }

    fn valid_quality(c: Category) -> Value {
        let obj = |entries: Vec<(&str, Value)>| Value::map(entries);
        let entries: Vec<(&str, Value)> = match c {
            Category::PhysicalGoods => vec![
                ("condition", "new".into()),
                (
                    "dimensions",
                    obj(vec![
                        ("length", Value::Float(30.5)),
                        ("width", 20u64.into()),
                        ("height", 10u64.into()),
                        ("unit", "cm".into()),
                    ]),
                ),
                (
                    "weight",
                    obj(vec![("value", Value::Float(1.25)), ("unit", "kg".into())]),
                ),
                (
                    "return_policy",
                    obj(vec![
                        ("return_window", "P30D".into()),
                        ("restocking_fee_percent", 15u64.into()),
                    ]),
                ),
                ("shipping_class", "ground".into()),
            ],
            Category::Inference => vec![
                ("accuracy_threshold", Value::Float(0.92)),
                ("max_latency_ms", 3000u64.into()),
                ("output_format", "application/json".into()),
                ("model_version", "m-2026-01".into()),
            ],
            Category::Compute => vec![
                ("compute_type", "gpu".into()),
                ("compute_units", 3600u64.into()),
                ("duration", "PT1H".into()),
                ("availability_guarantee", Value::Float(1.0)),
                ("memory_gb", 80u64.into()),
            ],
            Category::DigitalGoods => vec![
                ("file_format", "application/pdf".into()),
                ("file_size_bytes", 1024u64.into()),
                ("license_type", "perpetual".into()),
                ("drm_status", false.into()),
            ],
            Category::Services => vec![
                ("service_type", "translation".into()),
                ("delivery_timeline", "P5D".into()),
                ("revision_count", 2u64.into()),
                (
                    "acceptance_criteria",
                    Value::Array(vec!["fluent".into(), "complete".into()]),
                ),
            ],
            Category::Information => vec![
                ("accuracy_attestation_method", "source_citation".into()),
                ("freshness_guarantee", "PT15M".into()),
                ("format", "text/csv".into()),
            ],
            Category::Communication => vec![
                ("channel_type", "sms".into()),
                ("reliability_guarantee", Value::Float(0.999)),
                ("max_latency_ms", 500u64.into()),
                ("encryption_required", true.into()),
            ],
            Category::Logistics => vec![
                ("origin", "DEHAM".into()),
                ("destination", "USNYC".into()),
                ("service_level", "express".into()),
                (
                    "insurance_value",
                    obj(vec![("amount", 1000u64.into()), ("unit", "EUR".into())]),
                ),
                ("tracking_method", "gps".into()),
            ],
            Category::Compliance => vec![
                ("regulation_reference", "GDPR Art. 30".into()),
                ("jurisdiction", "DE".into()),
                ("assessment_methodology", "ISO 19011".into()),
                ("certification_validity_period", "P1Y".into()),
            ],
        };
        obj(entries)
    }

    fn remove(v: &Value, key: &str) -> Value {
        Value::Map(
            v.as_map()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.as_text() != Some(key))
                .cloned()
                .collect(),
        )
    }

    fn replace(v: &Value, key: &str, new: Value) -> Value {
        Value::Map(
            v.as_map()
                .unwrap()
                .iter()
                .map(|(k, old)| {
                    (
                        k.clone(),
                        if k.as_text() == Some(key) {
                            new.clone()
                        } else {
                            old.clone()
                        },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn every_category_valid_and_missing_each_dimension() {
        for c in Category::ALL {
            let q = valid_quality(c);
            assert_eq!(check_quality(c, &q), Ok(()), "{c}");
            // Extra keys are accepted.
            let mut extra = q.as_map().unwrap().to_vec();
            extra.push((Value::text("x_custom"), Value::Null));
            assert_eq!(check_quality(c, &Value::Map(extra)), Ok(()));
            for d in c.mandatory_dimensions() {
                let errs = check_quality(c, &remove(&q, d.name)).unwrap_err();
                assert_eq!(
                    errs,
                    vec![QualityError::Missing {
                        category: c,
                        dimension: d.name.into()
                    }],
                    "{c}.{}",
                    d.name
                );
                assert_eq!(errs[0].requirement(), c.quality_requirement());
                assert_eq!(Coded::requirement(&errs[0]), Some(c.quality_requirement()));
                assert_eq!(errs[0].code(), ErrorCode::SchemaViolation);
                // Wrong type: a byte string fits no dimension kind.
                let errs =
                    check_quality(c, &replace(&q, d.name, Value::bytes(vec![1]))).unwrap_err();
                assert_eq!(errs.len(), 1, "{c}.{}", d.name);
                assert!(
                    matches!(&errs[0], QualityError::WrongType { dimension, .. } if dimension == d.name)
                );
            }
            // All violations are reported at once.
            let all = check_quality(c, &Value::Map(vec![])).unwrap_err();
            assert_eq!(all.len(), c.mandatory_dimensions().len());
        }
        assert!(matches!(
            check_quality(Category::Compute, &Value::Array(vec![])).unwrap_err()[..],
            [QualityError::NotAMap { found: "array", .. }]
        ));
    }

    #[test]
    fn typed_dimension_edge_cases() {
        let c = Category::Inference;
        let q = valid_quality(c);
        let wrong = |key: &str, v: Value| check_quality(c, &replace(&q, key, v)).is_err();
        // Fractions are CBOR floats (BIND VIII-B "a float"): integers are refused.
        assert!(wrong("accuracy_threshold", 0u64.into()));
        assert!(wrong("accuracy_threshold", 1u64.into()));
        assert!(!wrong("accuracy_threshold", Value::Float(0.0)));
        assert!(!wrong("accuracy_threshold", Value::Float(1.0)));
        assert!(wrong("accuracy_threshold", Value::Float(1.0000001)));
        assert!(wrong("accuracy_threshold", Value::Float(-0.1)));
        assert!(wrong("accuracy_threshold", Value::Float(f64::NAN)));
        assert!(wrong("accuracy_threshold", "0.9".into()));
        assert!(wrong("max_latency_ms", Value::Integer(-1)));
        assert!(wrong("max_latency_ms", Value::Float(3000.0)));
        assert!(wrong("output_format", "json".into()));
        assert!(wrong("model_version", "".into()));

        let p = Category::PhysicalGoods;
        let q = valid_quality(p);
        let errs = check_quality(p, &replace(&q, "condition", "broken".into())).unwrap_err();
        assert!(
            matches!(&errs[..], [QualityError::WrongType { dimension, .. }] if dimension == "condition")
        );
        let errs = check_quality(
            p,
            &replace(
                &q,
                "return_policy",
                Value::map([
                    ("return_window", Value::from("30 days")),
                    ("restocking_fee_percent", Value::from(101u64)),
                ]),
            ),
        )
        .unwrap_err();
        let dims: Vec<&str> = errs.iter().map(|e| e.dimension()).collect();
        assert_eq!(
            dims,
            [
                "return_policy.return_window",
                "return_policy.restocking_fee_percent"
            ]
        );
        let errs = check_quality(
            p,
            &replace(&q, "weight", Value::map([("unit", Value::from("kg"))])),
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec![QualityError::Missing {
                category: p,
                dimension: "weight.value".into()
            }]
        );
        assert!(check_quality(p, &replace(&q, "dimensions", "30x20x10".into())).is_err());

        let l = Category::Logistics;
        let q = valid_quality(l);
        assert!(
            check_quality(
                l,
                &replace(
                    &q,
                    "insurance_value",
                    Value::map([("amount", Value::from(5u64))])
                )
            )
            .is_err()
        );
        assert!(
            check_quality(
                l,
                &replace(
                    &q,
                    "insurance_value",
                    Value::map([("amount", Value::from(-5i64)), ("unit", Value::from("USD"))])
                )
            )
            .is_err()
        );
        let s = Category::Services;
        let q = valid_quality(s);
        assert!(check_quality(s, &replace(&q, "acceptance_criteria", "ok".into())).is_ok());
        assert!(
            check_quality(s, &replace(&q, "acceptance_criteria", Value::Array(vec![]))).is_err()
        );
        assert!(
            check_quality(
                s,
                &replace(&q, "acceptance_criteria", Value::Array(vec![1u64.into()]))
            )
            .is_err()
        );
        let k = Category::Compliance;
        assert!(
            check_quality(k, &replace(&valid_quality(k), "jurisdiction", "de".into())).is_err()
        );
        let m = Category::Compute;
        assert!(
            check_quality(m, &replace(&valid_quality(m), "compute_type", "GPU".into())).is_err()
        );
        assert!(
            check_quality(
                m,
                &replace(
                    &valid_quality(m),
                    "availability_guarantee",
                    Value::Float(99.9)
                )
            )
            .is_err()
        );
        let d = Category::DigitalGoods;
        assert!(check_quality(d, &replace(&valid_quality(d), "drm_status", "no".into())).is_err());
    }
}
