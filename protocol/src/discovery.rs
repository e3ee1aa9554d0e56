//! Discovery Layer objects and rules (SPEC III-B; PROFILE G-30, G-31, G-50): the Capability
//! Manifest, the standard index query interface, the signed Offer revocation notice, and
//! pure Request-to-Offer matching, result merging and staleness functions.

use std::cmp::Ordering;

use crate::cbor::Value;
use crate::errors::{Coded, ErrorCode};
use crate::identity::Did;
use crate::primitives::common::{
    CborObject, Errors, Map, MapBuilder, MapReader, ObjectError, SCHEMA_REQ, Signature,
    ValidationError, check_encodable, index_path, join_path, read_array, read_bytes,
    read_classifier, read_did, read_jurisdictions, read_open_map, read_signature_field, read_tdate,
    read_text, read_text_array, read_uint, read_uuid, tdate_value, text_array_value, uuid_value,
};
use crate::primitives::json::{Hint, Kind, compose_hints};
use crate::primitives::{Offer, Request};
use crate::taxonomy::Classifier;
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};
use crate::verification::{Decimal, money_cmp};

/// Manifest schema (SPEC-III-B-1-02; PROFILE G-30).
pub const MANIFEST_REQ: &str = "SPEC-III-B-1-02";
/// Manifest freshness timestamp (SPEC-III-B-1-05).
pub const FRESHNESS_REQ: &str = "SPEC-III-B-1-05";
/// Standard query interface (SPEC-III-B-2-04; PROFILE G-31).
pub const QUERY_REQ: &str = "SPEC-III-B-2-04";
/// Extensions declared in manifests (SPEC-XI-09; PROFILE G-50).
pub const EXTENSION_REQ: &str = "SPEC-XI-09";
/// Revocation notices (SPEC-III-B-3-02; PROFILE G-31).
pub const REVOCATION_REQ: &str = "SPEC-III-B-3-02";

/// `true` for a Semantic Versioning 2.0.0 string (`1.0.0`, `2.1.0-rc.1+build.5`).
pub fn is_semver(s: &str) -> bool {
    let (core_pre, build) = match s.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match core_pre.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core_pre, None),
    };
    let numeric = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let ident =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|id| ident(id) && (!id.bytes().all(|b| b.is_ascii_digit()) || numeric(id)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

/// `(major, minor, patch)` of a semver string.
fn semver_core(s: &str) -> Option<(u64, u64, u64)> {
    if !is_semver(s) {
        return None;
    }
    let core = s.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// `true` for an Extension Identifier `lemay.ext.<name>` (PROFILE G-50).
pub fn is_extension_id(s: &str) -> bool {
    s.strip_prefix("lemay.ext.").is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
    })
}

// ---------------------------------------------------------------------------------------
// Capability Manifest (PROFILE G-30)
// ---------------------------------------------------------------------------------------

/// `{ id: tstr, version: tstr }`: a declared or required extension (SPEC XI; PROFILE G-50).
#[derive(Clone, Debug, PartialEq)]
pub struct ExtensionRef {
    pub id: String,
    pub version: String,
    pub unknown: Map,
}

impl ExtensionRef {
    pub fn new(id: impl Into<String>, version: impl Into<String>) -> ExtensionRef {
        ExtensionRef {
            id: id.into(),
            version: version.into(),
            unknown: Map::new(),
        }
    }

    pub fn from_value(
        v: &Value,
        path: &str,
        req: &'static str,
    ) -> Result<ExtensionRef, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let id = errs.take(r.required("id", req).and_then(|v| {
            let p = join_path(path, "id");
            let s = read_text(v, &p, req)?;
            if is_extension_id(s) {
                Ok(s)
            } else {
                Err(ValidationError::invalid(
                    p,
                    req,
                    format!("{s:?} is not an extension id lemay.ext.<name> (PROFILE G-50)"),
                ))
            }
        }));
        let version = errs.take(r.required("version", req).and_then(|v| {
            let p = join_path(path, "version");
            let s = read_text(v, &p, req)?;
            if is_semver(s) {
                Ok(s)
            } else {
                Err(ValidationError::invalid(
                    p,
                    req,
                    format!("{s:?} is not a semantic version"),
                ))
            }
        }));
        let unknown = r.unknown();
        match (id, version) {
            (Some(id), Some(version)) if errs.is_empty() => Ok(ExtensionRef {
                id: id.to_owned(),
                version: version.to_owned(),
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("id", Value::text(self.id.as_str()))
            .put("version", Value::text(self.version.as_str()))
            .extend_unknown(&self.unknown)
            .build()
    }

    /// `supported` satisfies this requirement: same id, same major version, and a
    /// version at least as high (semver precedence of the `major.minor.patch` core).
    pub fn satisfied_by(&self, supported: &ExtensionRef) -> bool {
        match (semver_core(&self.version), semver_core(&supported.version)) {
            (Some(req), Some(sup)) => self.id == supported.id && req.0 == sup.0 && sup >= req,
            _ => false,
        }
    }
}

fn read_extension_list(
    v: &Value,
    path: &str,
    req: &'static str,
) -> Result<Vec<ExtensionRef>, Vec<ValidationError>> {
    let items = read_array(v, path, req).map_err(|e| vec![e])?;
    let mut errs = Errors::new();
    let out: Vec<ExtensionRef> = items
        .iter()
        .enumerate()
        .filter_map(|(i, x)| errs.take_all(ExtensionRef::from_value(x, &index_path(path, i), req)))
        .collect();
    errs.finish().map(|_| out)
}

fn extension_list_value(xs: &[ExtensionRef]) -> Value {
    Value::Array(xs.iter().map(ExtensionRef::to_value).collect())
}

/// `capacity: { ? max_concurrent: uint, ? availability: tstr }` (PROFILE G-30).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Capacity {
    pub max_concurrent: Option<u64>,
    pub availability: Option<String>,
    pub unknown: Map,
}

impl Capacity {
    fn from_value(v: &Value, path: &str) -> Result<Capacity, Vec<ValidationError>> {
        let req = MANIFEST_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let max_concurrent = r
            .optional("max_concurrent")
            .and_then(|v| errs.take(read_uint(v, &join_path(path, "max_concurrent"), req)));
        let availability = r
            .optional("availability")
            .and_then(|v| errs.take(read_text(v, &join_path(path, "availability"), req)))
            .map(str::to_owned);
        let unknown = r.unknown();
        errs.finish().map(|_| Capacity {
            max_concurrent,
            availability,
            unknown,
        })
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put_opt(
                "max_concurrent",
                self.max_concurrent.map(|n| Value::Integer(n.into())),
            )
            .put_opt(
                "availability",
                self.availability.as_deref().map(Value::text),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `jurisdictions: { ? available: [* jurisdiction], ? prohibited: [* jurisdiction] }`
/// (PROFILE G-30, G-46).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Jurisdictions {
    pub available: Option<Vec<String>>,
    pub prohibited: Option<Vec<String>>,
    pub unknown: Map,
}

impl Jurisdictions {
    fn from_value(v: &Value, path: &str) -> Result<Jurisdictions, Vec<ValidationError>> {
        let req = MANIFEST_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let available = r
            .optional("available")
            .and_then(|v| errs.take_all(read_jurisdictions(v, &join_path(path, "available"), req)));
        let prohibited = r.optional("prohibited").and_then(|v| {
            errs.take_all(read_jurisdictions(v, &join_path(path, "prohibited"), req))
        });
        let unknown = r.unknown();
        errs.finish().map(|_| Jurisdictions {
            available,
            prohibited,
            unknown,
        })
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put_opt("available", self.available.as_deref().map(text_array_value))
            .put_opt(
                "prohibited",
                self.prohibited.as_deref().map(text_array_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// Capability Manifest (SPEC III-B-1; PROFILE G-30, G-49, G-50). Signed by the publishing
/// Agent (SPEC-III-B-1-03); a failed check is 2100 Manifest Signature Invalid, and such a
/// manifest must not be indexed or returned (SPEC-III-B-1-04).
#[derive(Clone, Debug, PartialEq)]
pub struct CapabilityManifest {
    pub manifest_id: MtpUuid,
    pub agent_id: Did,
    /// Manifest *schema* version, semver (PROFILE G-30).
    pub manifest_version: String,
    /// Per-agent, monotonically increasing.
    pub revision: u64,
    pub value_types: Vec<Classifier>,
    pub offers: Vec<MtpUuid>,
    pub capacity: Capacity,
    pub jurisdictions: Jurisdictions,
    /// Quality guarantees and SLA commitments, `{ * tstr => any }`.
    pub quality: Map,
    pub payment_rails: Vec<String>,
    pub extensions: Option<Vec<ExtensionRef>>,
    pub protocol_versions: Option<Vec<String>>,
    pub freshness: Timestamp,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl CborObject for CapabilityManifest {
    const NAME: &'static str = "mtp-manifest";

    fn json_hints() -> &'static [Hint] {
        &[
            Hint {
                path: "manifest_id",
                kind: Kind::Uuid,
            },
            Hint {
                path: "offers[]",
                kind: Kind::Uuid,
            },
            Hint {
                path: "freshness",
                kind: Kind::Tdate,
            },
            Hint {
                path: "signature.value",
                kind: Kind::Bytes,
            },
        ]
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("manifest_id", uuid_value(&self.manifest_id))
            .put("agent_id", Value::text(self.agent_id.as_str()))
            .put(
                "manifest_version",
                Value::text(self.manifest_version.as_str()),
            )
            .put("revision", Value::Integer(self.revision.into()))
            .put(
                "value_types",
                Value::Array(
                    self.value_types
                        .iter()
                        .map(|c| Value::text(c.as_str()))
                        .collect(),
                ),
            )
            .put(
                "offers",
                Value::Array(self.offers.iter().map(uuid_value).collect()),
            )
            .put("capacity", self.capacity.to_value())
            .put("jurisdictions", self.jurisdictions.to_value())
            .put("quality", Value::Map(self.quality.clone()))
            .put("payment_rails", text_array_value(&self.payment_rails))
            .put_opt(
                "extensions",
                self.extensions.as_deref().map(extension_list_value),
            )
            .put_opt(
                "protocol_versions",
                self.protocol_versions.as_deref().map(text_array_value),
            )
            .put("freshness", tdate_value(self.freshness))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let req = MANIFEST_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        let manifest_id = errs
            .take(r.required("manifest_id", req))
            .and_then(|v| errs.take(read_uuid(v, "manifest_id", ObjectType::Manifest, req)));
        let agent_id = errs
            .take(r.required("agent_id", req))
            .and_then(|v| errs.take(read_did(v, "agent_id", req)));
        let manifest_version = errs
            .take(r.required("manifest_version", req))
            .and_then(|v| {
                let s = errs.take(read_text(v, "manifest_version", req))?;
                if !is_semver(s) {
                    errs.push(ValidationError::invalid(
                        "manifest_version",
                        req,
                        format!("{s:?} is not a semantic version"),
                    ));
                }
                Some(s.to_owned())
            });
        let revision = errs
            .take(r.required("revision", req))
            .and_then(|v| errs.take(read_uint(v, "revision", req)));
        let value_types = errs.take(r.required("value_types", req)).and_then(|v| {
            let items = errs.take(read_array(v, "value_types", req))?;
            if items.is_empty() {
                errs.push(ValidationError::out_of_range(
                    "value_types",
                    req,
                    "at least one value type required",
                ));
            }
            Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        errs.take(read_classifier(c, &index_path("value_types", i), req))
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let offers = errs.take(r.required("offers", req)).and_then(|v| {
            let items = errs.take(read_array(v, "offers", req))?;
            Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| {
                        errs.take(read_uuid(
                            o,
                            &index_path("offers", i),
                            ObjectType::Offer,
                            req,
                        ))
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let capacity = errs
            .take(r.required("capacity", req))
            .and_then(|v| errs.take_all(Capacity::from_value(v, "capacity")));
        let jurisdictions = errs
            .take(r.required("jurisdictions", req))
            .and_then(|v| errs.take_all(Jurisdictions::from_value(v, "jurisdictions")));
        let quality = errs
            .take(r.required("quality", req))
            .and_then(|v| errs.take(read_open_map(v, "quality", req)));
        let payment_rails = errs.take(r.required("payment_rails", req)).and_then(|v| {
            let rails = errs.take_all(read_text_array(v, "payment_rails", req))?;
            if rails.is_empty() {
                errs.push(ValidationError::out_of_range(
                    "payment_rails",
                    req,
                    "at least one payment rail required",
                ));
            }
            Some(rails)
        });
        let extensions = r
            .optional("extensions")
            .and_then(|v| errs.take_all(read_extension_list(v, "extensions", EXTENSION_REQ)));
        let protocol_versions = r.optional("protocol_versions").and_then(|v| {
            let vs = errs.take_all(read_text_array(v, "protocol_versions", "SPEC-XII-03"))?;
            if vs.is_empty() {
                errs.push(ValidationError::out_of_range(
                    "protocol_versions",
                    "SPEC-XII-03",
                    "at least one version when present",
                ));
            }
            for (i, s) in vs.iter().enumerate() {
                if !is_semver(s) {
                    errs.push(ValidationError::invalid(
                        index_path("protocol_versions", i),
                        "SPEC-XII-03",
                        format!("{s:?} is not Major.Minor.Patch"),
                    ));
                }
            }
            Some(vs)
        });
        let freshness = errs
            .take(r.required("freshness", FRESHNESS_REQ))
            .and_then(|v| errs.take(read_tdate(v, "freshness", FRESHNESS_REQ)));
        let signature = read_signature_field(&mut r, "SPEC-III-B-1-03", &mut errs);
        let unknown = r.unknown();
        match (
            manifest_id,
            agent_id,
            manifest_version,
            revision,
            value_types,
            offers,
            capacity,
            jurisdictions,
            quality,
            payment_rails,
            freshness,
            signature,
        ) {
            (
                Some(manifest_id),
                Some(agent_id),
                Some(manifest_version),
                Some(revision),
                Some(value_types),
                Some(offers),
                Some(capacity),
                Some(jurisdictions),
                Some(quality),
                Some(payment_rails),
                Some(freshness),
                Some(signature),
            ) if errs.is_empty() => {
                check_encodable(v)?;
                Ok(CapabilityManifest {
                    manifest_id,
                    agent_id,
                    manifest_version,
                    revision,
                    value_types,
                    offers,
                    capacity,
                    jurisdictions,
                    quality,
                    payment_rails,
                    extensions,
                    protocol_versions,
                    freshness,
                    signature: Some(signature),
                    unknown,
                })
            }
            _ => Err(errs.into_object_error()),
        }
    }
}

// 2100 Manifest Signature Invalid (BIND XI; SPEC-III-B-1-04).
crate::impl_single_signed!(CapabilityManifest => ErrorCode::ManifestSignatureInvalid);

/// How fresh a manifest is (SPEC-III-B-1-06; PROFILE G-08).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Freshness {
    Fresh,
    /// At or past [`crate::profile::MANIFEST_STALENESS_WARNING_PERMILLE`] of the threshold:
    /// warning 2300.
    ApproachingStale,
    /// Older than the threshold: indexes deprioritise it.
    Stale,
}

impl Freshness {
    /// Warning 2300 for `ApproachingStale`.
    pub fn warning(self) -> Option<ErrorCode> {
        (self == Freshness::ApproachingStale).then_some(ErrorCode::ManifestApproachingStaleness)
    }
}

/// Age of `freshness` at `now` against `threshold_s` (default
/// [`crate::profile::MANIFEST_STALENESS_S`]). A freshness in the future counts as fresh.
pub fn staleness_at(freshness: Timestamp, now: Timestamp, threshold_s: u64) -> Freshness {
    let age = now.nanos_since(freshness);
    let threshold = i128::from(threshold_s) * 1_000_000_000;
    let warn = threshold * i128::from(crate::profile::MANIFEST_STALENESS_WARNING_PERMILLE) / 1000;
    if age > threshold {
        Freshness::Stale
    } else if age >= warn {
        Freshness::ApproachingStale
    } else {
        Freshness::Fresh
    }
}

/// [`staleness_at`] of a manifest's `freshness` (SPEC-III-B-1-06).
pub fn staleness(manifest: &CapabilityManifest, now: Timestamp, threshold_s: u64) -> Freshness {
    staleness_at(manifest.freshness, now, threshold_s)
}

// ---------------------------------------------------------------------------------------
// Index query interface (PROFILE G-31)
// ---------------------------------------------------------------------------------------

/// `Index/Query` request (SPEC-III-B-2-04; PROFILE G-31).
#[derive(Clone, Debug, PartialEq)]
pub struct IndexQuery {
    pub value_type: Classifier,
    pub constraints: Option<Map>,
    pub counterparty: Option<Map>,
    pub limit: Option<u64>,
    pub cursor: Option<Vec<u8>>,
    pub unknown: Map,
}

impl CborObject for IndexQuery {
    const NAME: &'static str = "index-query";

    fn json_hints() -> &'static [Hint] {
        &[Hint {
            path: "cursor",
            kind: Kind::Bytes,
        }]
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("value_type", Value::text(self.value_type.as_str()))
            .put_opt("constraints", self.constraints.clone().map(Value::Map))
            .put_opt("counterparty", self.counterparty.clone().map(Value::Map))
            .put_opt("limit", self.limit.map(|n| Value::Integer(n.into())))
            .put_opt("cursor", self.cursor.clone().map(Value::Bytes))
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let req = QUERY_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        let value_type = errs
            .take(r.required("value_type", req))
            .and_then(|v| errs.take(read_classifier(v, "value_type", req)));
        let constraints = r
            .optional("constraints")
            .and_then(|v| errs.take(read_open_map(v, "constraints", req)));
        let counterparty = r
            .optional("counterparty")
            .and_then(|v| errs.take(read_open_map(v, "counterparty", req)));
        let limit = r
            .optional("limit")
            .and_then(|v| errs.take(read_uint(v, "limit", req)));
        let cursor = r
            .optional("cursor")
            .and_then(|v| errs.take(read_bytes(v, "cursor", req)))
            .map(<[u8]>::to_vec);
        let unknown = r.unknown();
        match value_type {
            Some(value_type) if errs.is_empty() => {
                check_encodable(v)?;
                Ok(IndexQuery {
                    value_type,
                    constraints,
                    counterparty,
                    limit,
                    cursor,
                    unknown,
                })
            }
            _ => Err(errs.into_object_error()),
        }
    }
}

/// One query result: `{ offer: mtp-offer, manifest_id: mtp-uuid, freshness: tdate }`.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexResult {
    pub offer: Offer,
    pub manifest_id: MtpUuid,
    pub freshness: Timestamp,
    pub unknown: Map,
}

impl IndexResult {
    fn from_value(v: &Value, path: &str) -> Result<IndexResult, Vec<ValidationError>> {
        let req = QUERY_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let offer = errs.take(r.required("offer", req)).and_then(|v| {
            errs.take_all(
                Offer::from_value(v)
                    .map_err(|e| e.nested_under(&join_path(path, "offer"), SCHEMA_REQ)),
            )
        });
        let manifest_id = errs.take(r.required("manifest_id", req).and_then(|v| {
            read_uuid(
                v,
                &join_path(path, "manifest_id"),
                ObjectType::Manifest,
                req,
            )
        }));
        let freshness = errs.take(
            r.required("freshness", req)
                .and_then(|v| read_tdate(v, &join_path(path, "freshness"), req)),
        );
        let unknown = r.unknown();
        match (offer, manifest_id, freshness) {
            (Some(offer), Some(manifest_id), Some(freshness)) if errs.is_empty() => {
                Ok(IndexResult {
                    offer,
                    manifest_id,
                    freshness,
                    unknown,
                })
            }
            _ => Err(errs.into_vec()),
        }
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("offer", self.offer.to_value())
            .put("manifest_id", uuid_value(&self.manifest_id))
            .put("freshness", tdate_value(self.freshness))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `Index/Query` response: `{ results: [* result], ? cursor: bstr }`, sorted by freshness,
/// stale ones last (PROFILE G-31).
#[derive(Clone, Debug, PartialEq)]
pub struct IndexQueryResponse {
    pub results: Vec<IndexResult>,
    pub cursor: Option<Vec<u8>>,
    pub unknown: Map,
}

impl CborObject for IndexQueryResponse {
    const NAME: &'static str = "index-query-response";

    fn json_hints() -> &'static [Hint] {
        static H: std::sync::OnceLock<Vec<Hint>> = std::sync::OnceLock::new();
        H.get_or_init(|| {
            compose_hints(
                &[
                    Hint {
                        path: "results[].manifest_id",
                        kind: Kind::Uuid,
                    },
                    Hint {
                        path: "results[].freshness",
                        kind: Kind::Tdate,
                    },
                    Hint {
                        path: "cursor",
                        kind: Kind::Bytes,
                    },
                ],
                &[("results[].offer", Offer::json_hints())],
            )
        })
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(
                "results",
                Value::Array(self.results.iter().map(IndexResult::to_value).collect()),
            )
            .put_opt("cursor", self.cursor.clone().map(Value::Bytes))
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let req = QUERY_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        let results = errs.take(r.required("results", req)).and_then(|v| {
            let items = errs.take(read_array(v, "results", req))?;
            Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, x)| {
                        errs.take_all(IndexResult::from_value(x, &index_path("results", i)))
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let cursor = r
            .optional("cursor")
            .and_then(|v| errs.take(read_bytes(v, "cursor", req)))
            .map(<[u8]>::to_vec);
        let unknown = r.unknown();
        match results {
            Some(results) if errs.is_empty() => {
                check_encodable(v)?;
                Ok(IndexQueryResponse {
                    results,
                    cursor,
                    unknown,
                })
            }
            _ => Err(errs.into_object_error()),
        }
    }
}

/// Two results named the same `offer_id` with different bytes (PROFILE G-29, G-31): both
/// are dropped and 0100 MTP-UUID Reuse Detected is raised.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("offer ids bound to different bytes in merged results: {conflicts:?}")]
pub struct MergeError {
    /// The reused offer ids.
    pub conflicts: Vec<MtpUuid>,
    /// The merge of everything else (still usable).
    pub merged: Vec<IndexResult>,
}

impl Coded for MergeError {
    fn code(&self) -> ErrorCode {
        ErrorCode::UuidReuse
    }
    fn requirement(&self) -> Option<&'static str> {
        Some("SPEC-III-B-2-03")
    }
}

/// Merges results from several indexes (SPEC-III-B-2-03; PROFILE G-31): union,
/// de-duplicated by `offer_id` (byte-identical Offers collapse to the freshest entry),
/// sorted by freshness, newest first (ties keep input order). An `offer_id` bound to
/// different Offer bytes drops every entry under that id → [`MergeError`] (0100).
pub fn merge_results(responses: Vec<IndexQueryResponse>) -> Result<Vec<IndexResult>, MergeError> {
    let mut merged: Vec<(IndexResult, Vec<u8>)> = Vec::new();
    let mut conflicts: Vec<MtpUuid> = Vec::new();
    for result in responses.into_iter().flat_map(|r| r.results) {
        let id = result.offer.offer_id;
        if conflicts.contains(&id) {
            continue;
        }
        let bytes = cbor_bytes(&result.offer.to_value());
        match merged.iter().position(|(r, _)| r.offer.offer_id == id) {
            None => merged.push((result, bytes)),
            Some(i) => {
                let same = merged.get(i).is_some_and(|(_, b)| *b == bytes);
                if same {
                    if let Some(slot) = merged.get_mut(i)
                        && result.freshness > slot.0.freshness
                    {
                        slot.0 = result;
                    }
                } else {
                    merged.remove(i);
                    conflicts.push(id);
                }
            }
        }
    }
    let mut out: Vec<IndexResult> = merged.into_iter().map(|(r, _)| r).collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.freshness));
    if conflicts.is_empty() {
        Ok(out)
    } else {
        Err(MergeError {
            conflicts,
            merged: out,
        })
    }
}

/// Deterministic bytes for comparison; a value without an encoding compares by its debug form.
fn cbor_bytes(v: &Value) -> Vec<u8> {
    crate::cbor::to_vec(v).unwrap_or_else(|_| format!("{v:?}").into_bytes())
}

// ---------------------------------------------------------------------------------------
// Offer revocation notice (PROFILE G-31)
// ---------------------------------------------------------------------------------------

/// Signed Offer revocation notice `{ type: "offer_revocation", offer_id, agent_id,
/// revoked_at, signature }`, signed by the offering Agent (SPEC III-B-3; PROFILE G-31).
#[derive(Clone, Debug, PartialEq)]
pub struct OfferRevocation {
    pub offer_id: MtpUuid,
    pub agent_id: Did,
    pub revoked_at: Timestamp,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl OfferRevocation {
    /// The notice revokes `offer`: same id and issued by the offering Agent.
    pub fn applies_to(&self, offer: &Offer) -> bool {
        self.offer_id == offer.offer_id && self.agent_id == offer.agent_id
    }

    /// Whether an index must have removed the Offer by `now`: one propagation cycle after
    /// `received_at` (SPEC-III-B-3-02; PROFILE G-08).
    pub fn removal_due(received_at: Timestamp, now: Timestamp) -> bool {
        now.nanos_since(received_at)
            >= i128::from(crate::profile::PROPAGATION_CYCLE_S) * 1_000_000_000
    }
}

impl CborObject for OfferRevocation {
    const NAME: &'static str = "offer-revocation";

    fn json_hints() -> &'static [Hint] {
        &[
            Hint {
                path: "offer_id",
                kind: Kind::Uuid,
            },
            Hint {
                path: "revoked_at",
                kind: Kind::Tdate,
            },
            Hint {
                path: "signature.value",
                kind: Kind::Bytes,
            },
        ]
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text("offer_revocation"))
            .put("offer_id", uuid_value(&self.offer_id))
            .put("agent_id", Value::text(self.agent_id.as_str()))
            .put("revoked_at", tdate_value(self.revoked_at))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let req = REVOCATION_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        if let Some(t) = errs
            .take(r.required("type", req))
            .and_then(|t| errs.take(read_text(t, "type", req)))
            && t != "offer_revocation"
        {
            errs.push(ValidationError::invalid(
                "type",
                req,
                format!("{t:?}, expected \"offer_revocation\""),
            ));
        }
        let offer_id = errs
            .take(r.required("offer_id", req))
            .and_then(|v| errs.take(read_uuid(v, "offer_id", ObjectType::Offer, req)));
        let agent_id = errs
            .take(r.required("agent_id", req))
            .and_then(|v| errs.take(read_did(v, "agent_id", req)));
        let revoked_at = errs
            .take(r.required("revoked_at", req))
            .and_then(|v| errs.take(read_tdate(v, "revoked_at", req)));
        let signature = read_signature_field(&mut r, req, &mut errs);
        let unknown = r.unknown();
        match (offer_id, agent_id, revoked_at, signature) {
            (Some(offer_id), Some(agent_id), Some(revoked_at), Some(sig)) if errs.is_empty() => {
                check_encodable(v)?;
                Ok(OfferRevocation {
                    offer_id,
                    agent_id,
                    revoked_at,
                    signature: Some(sig),
                    unknown,
                })
            }
            _ => Err(errs.into_object_error()),
        }
    }
}

crate::impl_single_signed!(OfferRevocation);

// ---------------------------------------------------------------------------------------
// Request-to-Offer matching (PROFILE G-31, G-46, G-50)
// ---------------------------------------------------------------------------------------

/// Why an Offer does not match a Request (SPEC-III-B-01; PROFILE G-31). Only
/// [`MatchRefusal::ExtensionUnsupported`] is an error condition (2103, SPEC-XI-10); the
/// others are ordinary non-matches.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MatchRefusal {
    #[error("offer value type {offer} is not within the requested {request}")]
    ValueType { offer: String, request: String },
    #[error("offer validity window does not contain {now}")]
    OutsideValidity { now: Timestamp },
    #[error("offer price unit {offer} differs from the budget unit {budget} (no FX)")]
    UnitMismatch { offer: String, budget: String },
    #[error("offer price {price} exceeds the budget ceiling {budget}")]
    OverBudget { price: String, budget: String },
    #[error("offer latency {offer} ms exceeds the requested {request} ms")]
    Latency { offer: u64, request: u64 },
    #[error("offer accuracy {offer} is below the requested {request}")]
    Accuracy { offer: f64, request: f32 },
    #[error("no requested jurisdiction is available under the offer's constraints")]
    Jurisdiction,
    #[error("offer capacity is 0")]
    NoCapacity,
    #[error("required extension {id} {version} is not supported")]
    ExtensionUnsupported { id: String, version: String },
    #[error("malformed required_extensions in the {0}")]
    MalformedRequiredExtensions(&'static str),
}

impl MatchRefusal {
    /// The error code to notify, if the refusal is an error condition (PROFILE G-50).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            MatchRefusal::ExtensionUnsupported { .. }
            | MatchRefusal::MalformedRequiredExtensions(_) => {
                Some(ErrorCode::RequiredExtensionUnsupported)
            }
            _ => None,
        }
    }

    /// The requirement behind the refusal.
    pub fn requirement(&self) -> &'static str {
        match self {
            MatchRefusal::ExtensionUnsupported { .. }
            | MatchRefusal::MalformedRequiredExtensions(_) => "SPEC-XI-10",
            _ => "SPEC-III-B-01",
        }
    }
}

/// `required_extensions: [{id, version}]` carried as an unknown key of an Offer or Request
/// (PROFILE G-50); `None` when absent.
pub fn required_extensions(
    unknown: &Map,
) -> Option<Result<Vec<ExtensionRef>, Vec<ValidationError>>> {
    let v = unknown
        .iter()
        .find(|(k, _)| k.as_text() == Some("required_extensions"))
        .map(|(_, v)| v)?;
    Some(read_extension_list(v, "required_extensions", "SPEC-XI-10"))
}

/// `a` and `b` overlap: equal, or one is a subdivision of the other (`US` / `US-CA`).
fn jurisdictions_overlap(a: &str, b: &str) -> bool {
    a == b || within_jurisdiction(a, b) || within_jurisdiction(b, a)
}

/// `inner` lies inside `outer` (`US-CA` inside `US`).
fn within_jurisdiction(inner: &str, outer: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Jurisdiction rule (PROFILE G-31, G-46): the offer's `geographic_constraints` is an
/// allow-list (absent = worldwide), `metadata.prohibited_jurisdictions` a deny-list; the
/// Request's `constraints.jurisdiction` (absent = anywhere) must contain one jurisdiction
/// that the offer allows and does not prohibit.
fn jurisdiction_ok(offer: &Offer, request: &Request) -> bool {
    let allowed = offer.geographic_constraints.as_deref();
    let prohibited: Vec<&str> = offer
        .metadata
        .as_ref()
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.as_text() == Some("prohibited_jurisdictions"))
        })
        .and_then(|(_, v)| v.as_array())
        .map(|items| items.iter().filter_map(Value::as_text).collect())
        .unwrap_or_default();
    match request.constraints.jurisdiction.as_deref() {
        None => allowed.is_none_or(|a| !a.is_empty()),
        Some(wanted) => wanted.iter().any(|r| {
            allowed.is_none_or(|a| a.iter().any(|x| jurisdictions_overlap(x, r)))
                && !prohibited.iter().any(|p| within_jurisdiction(r, p))
        }),
    }
}

/// The offer's promised latency: `terms_template.delivery.max_latency_ms`, else
/// `terms_template.quality.max_latency_ms`.
fn offer_latency(offer: &Offer) -> Option<u64> {
    offer.terms_template.delivery.max_latency_ms.or_else(|| {
        offer
            .terms_template
            .quality
            .iter()
            .find(|(k, _)| k.as_text() == Some("max_latency_ms"))
            .and_then(|(_, v)| v.as_u64())
    })
}

/// The offer's promised accuracy: `terms_template.quality.accuracy_threshold`.
fn offer_accuracy(offer: &Offer) -> Option<f64> {
    offer
        .terms_template
        .quality
        .iter()
        .find(|(k, _)| k.as_text() == Some("accuracy_threshold"))
        .and_then(|(_, v)| v.as_f64())
}

/// Request-to-Offer matching (SPEC-III-B-01; PROFILE G-31, G-46, G-50). Match iff:
/// the Offer's classifier is within the Request's (G-07); its validity window contains
/// `now` (± clock skew); its price ≤ `budget_ceiling` in the same unit (no FX; decimal
/// comparison at the unit's precision, G-03); latency and accuracy satisfy the Request's
/// constraints when both sides state them; jurisdictions intersect; capacity > 0; every
/// extension the Offer or the Request requires is in `supported_extensions` (else 2103,
/// SPEC-XI-10). Revocation is the caller's check (SPEC-III-B-3-03).
pub fn matches(
    offer: &Offer,
    request: &Request,
    now: Timestamp,
    supported_extensions: &[ExtensionRef],
) -> Result<(), MatchRefusal> {
    if !offer.value_type.is_within(&request.value_type) {
        return Err(MatchRefusal::ValueType {
            offer: offer.value_type.as_str().to_owned(),
            request: request.value_type.as_str().to_owned(),
        });
    }
    if !offer.validity_window.contains(now) {
        return Err(MatchRefusal::OutsideValidity { now });
    }
    let c = &request.constraints;
    if let Some(budget) = &c.budget_ceiling {
        let price = &offer.terms_template.price;
        if price.unit != budget.unit {
            return Err(MatchRefusal::UnitMismatch {
                offer: price.unit.as_str().to_owned(),
                budget: budget.unit.as_str().to_owned(),
            });
        }
        let show = |n: &crate::primitives::common::Number| {
            Decimal::from_number(n)
                .map(|d| d.to_string())
                .unwrap_or_else(|_| format!("{n:?}"))
        };
        match money_cmp(price, budget) {
            Some(Ordering::Less | Ordering::Equal) => {}
            _ => {
                return Err(MatchRefusal::OverBudget {
                    price: show(&price.amount),
                    budget: show(&budget.amount),
                });
            }
        }
    }
    if let (Some(want), Some(have)) = (c.max_latency_ms, offer_latency(offer))
        && have > want
    {
        return Err(MatchRefusal::Latency {
            offer: have,
            request: want,
        });
    }
    if let (Some(want), Some(have)) = (c.accuracy_threshold, offer_accuracy(offer))
        && have < f64::from(want)
    {
        return Err(MatchRefusal::Accuracy {
            offer: have,
            request: want,
        });
    }
    if !jurisdiction_ok(offer, request) {
        return Err(MatchRefusal::Jurisdiction);
    }
    if offer.capacity == Some(0) {
        return Err(MatchRefusal::NoCapacity);
    }
    for (side, unknown) in [("offer", &offer.unknown), ("request", &request.unknown)] {
        match required_extensions(unknown) {
            None => {}
            Some(Err(_)) => return Err(MatchRefusal::MalformedRequiredExtensions(side)),
            Some(Ok(required)) => {
                if let Some(missing) = required
                    .iter()
                    .find(|r| !supported_extensions.iter().any(|s| r.satisfied_by(s)))
                {
                    return Err(MatchRefusal::ExtensionUnsupported {
                        id: missing.id.clone(),
                        version: missing.version.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_and_extension_ids() {
        for ok in [
            "1.0.0",
            "0.1.2",
            "10.20.30",
            "1.0.0-rc.1",
            "1.0.0-alpha+build.5",
            "1.0.0+x",
        ] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "1.0", "01.0.0", "1.0.0-", "1.0.0-01", "v1.0.0", "1.0.0.0", "", "1..0", "1.0.0+",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
        assert!(is_extension_id("lemay.ext.data_access"));
        assert!(!is_extension_id("lemay.ext."));
        assert!(!is_extension_id("other.ext.x"));
        let req = ExtensionRef::new("lemay.ext.x", "1.2.0");
        assert!(req.satisfied_by(&ExtensionRef::new("lemay.ext.x", "1.2.0")));
        assert!(req.satisfied_by(&ExtensionRef::new("lemay.ext.x", "1.3.1")));
        assert!(!req.satisfied_by(&ExtensionRef::new("lemay.ext.x", "1.1.9")));
        assert!(!req.satisfied_by(&ExtensionRef::new("lemay.ext.x", "2.0.0")));
        assert!(!req.satisfied_by(&ExtensionRef::new("lemay.ext.y", "1.2.0")));
    }

    #[test]
    fn jurisdiction_overlap() {
        assert!(jurisdictions_overlap("US", "US-CA"));
        assert!(jurisdictions_overlap("US-CA", "US"));
        assert!(!jurisdictions_overlap("US-CA", "US-NY"));
        assert!(!jurisdictions_overlap("USA", "US"));
        assert!(within_jurisdiction("US-CA", "US"));
        assert!(!within_jurisdiction("US", "US-CA"));
    }

    #[test]
    fn staleness_thresholds() {
        let f = Timestamp::from_unix_secs(1_000_000).unwrap();
        let at = |s: i64| f.add_secs(s).unwrap();
        assert_eq!(staleness_at(f, at(-10), 1000), Freshness::Fresh);
        assert_eq!(staleness_at(f, at(799), 1000), Freshness::Fresh);
        assert_eq!(staleness_at(f, at(800), 1000), Freshness::ApproachingStale);
        assert_eq!(staleness_at(f, at(1000), 1000), Freshness::ApproachingStale);
        assert_eq!(staleness_at(f, at(1001), 1000), Freshness::Stale);
        assert_eq!(
            Freshness::ApproachingStale.warning(),
            Some(ErrorCode::ManifestApproachingStaleness)
        );
        assert_eq!(Freshness::Stale.warning(), None);
    }
}
