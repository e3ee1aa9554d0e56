//! JSON-LD 1.1 expansion with bundled contexts and RDFC-1.0 canonicalisation to N-Quads
//! (BIND-III-A-01; PROFILE G-34). Nothing is fetched at run time: every context the suite
//! accepts is in `contexts/` and any other context URL is refused.
//!
//! Pipeline: `serde_json::Value` → JSON-LD expansion (crate `json-ld`, no base IRI, a loader
//! over the bundled contexts only) → safe-mode check → deserialisation to an RDF dataset
//! (JSON-LD 1.1 §8.2, `rdfDirection` unset, no generalised RDF) → RDFC-1.0 with SHA-256
//! (crate `rdf-canon`, default call limit) → canonical N-Quads.
//!
//! Safe mode (PROFILE G-34): the document is refused when expansion would silently drop
//! data, i.e. when
//! - a member name is not defined by any context (no `@vocab` in the VC 2.0 context, so
//!   plain expansion drops it) → [`JsonLdError::UndefinedTerm`];
//! - an `@id`, `@type` or `@type: @id` / `@vocab` value does not expand to an absolute IRI
//!   or blank node identifier (a relative reference has no base, so the quad would vanish)
//!   → [`JsonLdError::UndefinedTerm`];
//! - a property is a blank node identifier (`_:p`; no generalised RDF, the quad would
//!   vanish) → [`JsonLdError::UndefinedTerm`];
//! - a member name looks like a keyword (`@foo`) but is none (JSON-LD ignores it), a
//!   language tag is not well-formed (the literal would be dropped), or the document uses
//!   a construct whose data does not reach the RDF dataset or that could redefine terms:
//!   an inline (object) `@context` (only bundled context URLs are accepted, so a context
//!   cannot map a member to `null` or to a keyword alias), `@index`, `@direction` (dropped
//!   when `rdfDirection` is unset) or `@reverse` → [`JsonLdError::Invalid`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use json_ld::expansion::{self, Action, Policy};
use json_ld::rdf_types::{self, LiteralType};
use json_ld::{
    Id, IriBuf, JsonLdProcessor, LoadError, Loader, Object, RdfQuads, RemoteDocument, ValidId,
};
use serde_json::Value;

/// Context URLs the suite resolves from its bundled copies.
pub const CREDENTIALS_V2: &str = "https://www.w3.org/ns/credentials/v2";
pub const STATUS_LIST_2021_V1: &str = "https://w3id.org/vc/status-list/2021/v1";
pub const DID_V1: &str = "https://www.w3.org/ns/did/v1";
pub const MULTIKEY_V1: &str = "https://w3id.org/security/multikey/v1";
pub const MTP_V1: &str = "https://suite.invalid/mtp/v1";

/// The bundled contexts, by URL (PROFILE G-34; provenance in `contexts/README.md`).
pub const BUNDLED_CONTEXTS: [(&str, &str); 5] = [
    (
        CREDENTIALS_V2,
        include_str!("contexts/credentials-v2.jsonld"),
    ),
    (
        STATUS_LIST_2021_V1,
        include_str!("contexts/status-list-2021-v1.jsonld"),
    ),
    (DID_V1, include_str!("contexts/did-v1.jsonld")),
    (MULTIKEY_V1, include_str!("contexts/multikey-v1.jsonld")),
    (MTP_V1, include_str!("contexts/mtp-v1.jsonld")),
];

/// Deepest JSON nesting accepted before expansion (bounds recursion on untrusted input).
pub const MAX_DEPTH: usize = 64;

/// Why a document could not be canonicalised. Callers map these to 1101 (an attestation
/// that is not a valid JSON-LD credential) — see `credential::CredentialError`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonLdError {
    /// A `@context` URL that is not bundled (nothing is fetched, PROFILE G-34).
    #[error("unknown JSON-LD context {0}")]
    UnknownContext(String),
    /// Expansion dropped a term no context defines ("safe mode": an undefined term would be
    /// unsigned, so it is refused).
    #[error("term {0:?} is not defined by any context")]
    UndefinedTerm(String),
    /// Any other JSON-LD expansion / RDF conversion failure.
    #[error("JSON-LD processing failed: {0}")]
    Invalid(String),
    /// RDFC-1.0 failed (e.g. the poison-graph call limit).
    #[error("RDFC-1.0 canonicalisation failed: {0}")]
    Canonicalization(String),
}

/// The bundled document for a context URL, if any.
pub fn bundled_context(url: &str) -> Option<&'static str> {
    BUNDLED_CONTEXTS
        .iter()
        .find(|(u, _)| *u == url)
        .map(|(_, doc)| *doc)
}

/// The bundled contexts parsed once (PROFILE G-34: parsed on first use, then shared).
fn parsed_contexts() -> &'static BTreeMap<String, RemoteDocument> {
    static PARSED: OnceLock<BTreeMap<String, RemoteDocument>> = OnceLock::new();
    PARSED.get_or_init(|| {
        BUNDLED_CONTEXTS
            .iter()
            .filter_map(|(url, text)| {
                // The bundled files are fixed at build time and tested to parse; a file that
                // did not parse would simply be unknown (refused), never a panic.
                let iri = IriBuf::new((*url).to_owned()).ok()?;
                let json: Value = serde_json::from_str(text).ok()?;
                let doc = json_ld::syntax::to_value(json).ok()?;
                Some(((*url).to_owned(), RemoteDocument::new(Some(iri), None, doc)))
            })
            .collect()
    })
}

/// Serves the bundled contexts and records the first URL it could not serve.
#[derive(Default)]
struct BundledLoader {
    unknown: RefCell<Option<String>>,
}

/// The loader's error for a context that is not bundled.
#[derive(Debug, thiserror::Error)]
#[error("context is not bundled")]
struct NotBundled;

impl Loader for BundledLoader {
    async fn load(&self, url: &json_ld::Iri) -> Result<RemoteDocument<IriBuf>, LoadError> {
        match parsed_contexts().get(url.as_str()) {
            Some(doc) => Ok(doc.clone()),
            None => {
                self.unknown
                    .borrow_mut()
                    .get_or_insert_with(|| url.as_str().to_owned());
                Err(LoadError::new(url.to_owned(), NotBundled))
            }
        }
    }
}

/// Expansion policy of safe mode: a member name that no context defines is an error
/// (instead of being dropped); invalid IRIs are kept so the walk below can name them.
const SAFE_POLICY: Policy = Policy {
    invalid: Action::Keep,
    vocab: Action::Keep,
    allow_undefined: false,
};

/// JSON-LD keywords (JSON-LD 1.1 §1.7); any other `@…` member name is refused.
const KEYWORDS: [&str; 24] = [
    "@base",
    "@container",
    "@context",
    "@direction",
    "@graph",
    "@id",
    "@import",
    "@included",
    "@index",
    "@json",
    "@language",
    "@list",
    "@nest",
    "@none",
    "@prefix",
    "@propagate",
    "@protected",
    "@reverse",
    "@set",
    "@type",
    "@value",
    "@version",
    "@vocab",
    "@default",
];

/// Keywords whose data would not reach the RDF dataset (`@index`, `@direction`) or that
/// this profile does not need (`@reverse`); refused in documents.
const REFUSED_KEYWORDS: [&str; 3] = ["@index", "@direction", "@reverse"];

/// Structural pre-checks on the JSON: nesting depth, keyword-like member names (which
/// JSON-LD expansion ignores silently), inline contexts and the refused keywords. `@json`
/// literal values are not distinguished here, so a `@json` value must not use `@…` member
/// names either (none of the MTP `@json` terms do).
fn precheck(v: &Value, depth: usize) -> Result<(), JsonLdError> {
    if depth > MAX_DEPTH {
        return Err(JsonLdError::Invalid(format!(
            "JSON nested deeper than {MAX_DEPTH}"
        )));
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k.starts_with('@') && !KEYWORDS.contains(&k.as_str()) {
                    return Err(JsonLdError::Invalid(format!(
                        "member {k:?} looks like a keyword but is none"
                    )));
                }
                if REFUSED_KEYWORDS.contains(&k.as_str()) {
                    return Err(JsonLdError::Invalid(format!(
                        "{k} is not accepted in signed documents"
                    )));
                }
                if k == "@context" {
                    let entries = match child {
                        Value::Array(a) => a.as_slice(),
                        other => std::slice::from_ref(other),
                    };
                    if !entries.iter().all(Value::is_string) {
                        return Err(JsonLdError::Invalid(
                            "inline @context definitions are not accepted; use bundled context URLs"
                                .into(),
                        ));
                    }
                    continue;
                }
                precheck(child, depth + 1)?;
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(|c| precheck(c, depth + 1)),
        _ => Ok(()),
    }
}

/// Safe-mode walk over the expanded document: every identifier (node `@id`, property,
/// type, `@id`-typed value) must be a valid IRI or blank node, every language tag
/// well-formed.
fn check_expanded(doc: &json_ld::ExpandedDocument) -> Result<(), JsonLdError> {
    for fragment in doc.traverse() {
        if let Some(Id::Invalid(name)) = fragment.as_id() {
            return Err(JsonLdError::UndefinedTerm(name.clone()));
        }
        if let json_ld::object::FragmentRef::NodeFragment(
            json_ld::object::node::FragmentRef::Key(json_ld::object::node::EntryKeyRef::Property(
                Id::Valid(ValidId::Blank(b)),
            )),
        ) = &fragment
        {
            return Err(JsonLdError::UndefinedTerm(b.to_string()));
        }
        let object = match &fragment {
            json_ld::object::FragmentRef::Object(o) => Some(*o),
            json_ld::object::FragmentRef::IndexedObject(o) => Some(o.inner()),
            _ => None,
        };
        if let Some(Object::Value(json_ld::Value::LangString(s))) = object
            && let Some(lang) = s.language()
            && lang.as_well_formed().is_none()
        {
            return Err(JsonLdError::Invalid(format!(
                "language tag {:?} is not well-formed",
                lang.as_str()
            )));
        }
    }
    Ok(())
}

fn expand_error(e: json_ld::ExpandError, loader: &BundledLoader) -> JsonLdError {
    if let Some(url) = loader.unknown.borrow_mut().take() {
        return JsonLdError::UnknownContext(url);
    }
    match e {
        json_ld::ExpandError::Expansion(expansion::Error::KeyExpansionFailed(name)) => {
            JsonLdError::UndefinedTerm(name)
        }
        other => JsonLdError::Invalid(other.to_string()),
    }
}

fn named_node(iri: &json_ld::Iri) -> Result<oxrdf::NamedNode, JsonLdError> {
    oxrdf::NamedNode::new(iri.as_str())
        .map_err(|e| JsonLdError::Invalid(format!("IRI {:?}: {e}", iri.as_str())))
}

fn blank_node(b: &json_ld::BlankId) -> Result<oxrdf::BlankNode, JsonLdError> {
    oxrdf::BlankNode::new(b.suffix())
        .map_err(|e| JsonLdError::Invalid(format!("blank node {:?}: {e}", b.as_str())))
}

fn subject(id: &ValidId) -> Result<oxrdf::Subject, JsonLdError> {
    Ok(match id {
        ValidId::Iri(i) => named_node(i)?.into(),
        ValidId::Blank(b) => blank_node(b)?.into(),
    })
}

fn predicate(id: &ValidId) -> Result<oxrdf::NamedNode, JsonLdError> {
    match id {
        ValidId::Iri(i) => named_node(i),
        ValidId::Blank(b) => Err(JsonLdError::Invalid(format!(
            "blank node {:?} used as a property",
            b.as_str()
        ))),
    }
}

fn term(o: &rdf_types::Object<ValidId, rdf_types::Literal>) -> Result<oxrdf::Term, JsonLdError> {
    Ok(match o {
        rdf_types::Term::Id(ValidId::Iri(i)) => named_node(i)?.into(),
        rdf_types::Term::Id(ValidId::Blank(b)) => blank_node(b)?.into(),
        rdf_types::Term::Literal(l) => match &l.type_ {
            LiteralType::Any(ty) => {
                oxrdf::Literal::new_typed_literal(l.value.clone(), named_node(ty)?).into()
            }
            LiteralType::LangString(tag) => {
                oxrdf::Literal::new_language_tagged_literal(l.value.clone(), tag.as_str())
                    .map_err(|e| JsonLdError::Invalid(format!("language tag: {e}")))?
                    .into()
            }
        },
    })
}

/// Expansion (with safe mode) and deserialisation to an RDF dataset.
async fn to_dataset(document: &Value) -> Result<oxrdf::Dataset, JsonLdError> {
    precheck(document, 0)?;
    let json = json_ld::syntax::to_value(document)
        .map_err(|e| JsonLdError::Invalid(format!("JSON conversion: {e}")))?;
    let remote: RemoteDocument = RemoteDocument::new(None, None, json);
    let loader = BundledLoader::default();
    let options = json_ld::Options {
        expansion_policy: SAFE_POLICY,
        ..json_ld::Options::default()
    };
    let mut expanded = remote
        .expand_full(
            rdf_types::vocabulary::no_vocabulary_mut(),
            &loader,
            options,
            (),
        )
        .await
        .map_err(|e| expand_error(e, &loader))?;
    check_expanded(&expanded)?;
    let mut generator = rdf_types::generator::Blank::new_with_prefix("b".into());
    expanded.relabel_and_canonicalize(&mut generator);
    let mut dataset = oxrdf::Dataset::new();
    for rdf_types::Quad(s, p, o, g) in expanded.rdf_quads(&mut generator, None) {
        let graph: oxrdf::GraphName = match g {
            None => oxrdf::GraphName::DefaultGraph,
            Some(ValidId::Iri(i)) => named_node(i)?.into(),
            Some(ValidId::Blank(b)) => blank_node(b)?.into(),
        };
        dataset.insert(&oxrdf::Quad::new(
            subject(&s)?,
            predicate(&p)?,
            term(&o)?,
            graph,
        ));
    }
    Ok(dataset)
}

/// The RDF dataset of a JSON-LD document, as (non-canonical) N-Quads in the processor's
/// order; for diagnostics and tests.
pub fn to_nquads(document: &Value) -> Result<String, JsonLdError> {
    let dataset = pollster::block_on(to_dataset(document))?;
    Ok(dataset.iter().map(|q| format!("{q} .\n")).collect())
}

/// RDFC-1.0 canonical N-Quads of a JSON-LD document (expand with bundled contexts → RDF
/// dataset → RDFC-1.0 → N-Quads, each line ending in `\n`).
pub fn canonicalize(document: &Value) -> Result<String, JsonLdError> {
    // The loader is in-memory, so the future never waits.
    let dataset = pollster::block_on(to_dataset(document))?;
    rdf_canon::canonicalize(&dataset).map_err(|e| JsonLdError::Canonicalization(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_bundled_context_parses() {
        assert_eq!(parsed_contexts().len(), BUNDLED_CONTEXTS.len());
        assert!(bundled_context(CREDENTIALS_V2).is_some());
        assert!(bundled_context("https://example.com/ctx").is_none());
    }

    #[test]
    fn simple_document() {
        let doc = json!({
            "@context": [CREDENTIALS_V2],
            "id": "urn:uuid:1",
            "type": ["VerifiableCredential"],
            "issuer": "did:example:issuer",
            "credentialSubject": {"id": "did:example:s", "name": "Alice"}
        });
        let nq = canonicalize(&doc).unwrap();
        assert!(nq.ends_with('\n'));
        assert!(nq.contains(
            "<urn:uuid:1> <https://www.w3.org/2018/credentials#issuer> <did:example:issuer> .\n"
        ));
    }

    #[test]
    fn refusals() {
        let undefined = json!({
            "@context": [CREDENTIALS_V2],
            "type": ["VerifiableCredential"],
            "undefinedClaim": 1
        });
        assert_eq!(
            canonicalize(&undefined),
            Err(JsonLdError::UndefinedTerm("undefinedClaim".into()))
        );
        let undefined_type = json!({
            "@context": [CREDENTIALS_V2],
            "type": ["VerifiableCredential", "NoSuchType"]
        });
        assert_eq!(
            canonicalize(&undefined_type),
            Err(JsonLdError::UndefinedTerm("NoSuchType".into()))
        );
        let relative_id = json!({
            "@context": [CREDENTIALS_V2],
            "id": "relative",
            "type": ["VerifiableCredential"]
        });
        assert_eq!(
            canonicalize(&relative_id),
            Err(JsonLdError::UndefinedTerm("relative".into()))
        );
        let unknown = json!({"@context": ["https://example.com/ctx"], "a": 1});
        assert_eq!(
            canonicalize(&unknown),
            Err(JsonLdError::UnknownContext(
                "https://example.com/ctx".into()
            ))
        );
        let base = json!({
            "@context": [CREDENTIALS_V2],
            "id": "urn:uuid:1",
            "type": ["VerifiableCredential"],
            "name": "n"
        });
        assert!(canonicalize(&base).is_ok());
        let with = |k: &str, v: Value| {
            let mut d = base.clone();
            d.as_object_mut().unwrap().insert(k.into(), v);
            canonicalize(&d)
        };
        for (k, v) in [
            ("@foo", json!(1)),
            ("@index", json!("i")),
            ("@reverse", json!({})),
            ("@context", json!([CREDENTIALS_V2, {"extra": null}])),
            ("@context", json!({"name": null})),
        ] {
            assert!(matches!(with(k, v), Err(JsonLdError::Invalid(_))), "{k}");
        }
        assert!(matches!(
            with("name", json!({"@value": "x", "@direction": "rtl"})),
            Err(JsonLdError::Invalid(_))
        ));
        assert!(matches!(
            with("name", json!({"@value": "x", "@language": "not a tag!"})),
            Err(JsonLdError::Invalid(_))
        ));
        assert_eq!(
            with("_:p", json!("x")),
            Err(JsonLdError::UndefinedTerm("_:p".into()))
        );
        let mut deep = json!("leaf");
        for _ in 0..(MAX_DEPTH + 1) {
            deep = json!([deep]);
        }
        assert!(matches!(with("name", deep), Err(JsonLdError::Invalid(_))));
    }
}
