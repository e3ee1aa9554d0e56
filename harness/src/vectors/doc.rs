//! One vector and its files: `<id>.json` (always), `<id>.cbor` and `<id>.diag` (when the
//! vector has bytes under test).
//!
//! The `codec` member of a vector JSON tells [`super::iut_check`] how to put the vector to
//! an IUT through the test-control `codec_*` actions (`protocol/wire/control.cddl`):
//!
//! ```json
//! "codec": {
//!   "type": "offer",                      // codec-type
//!   "operations": ["encode", "parse"],    // what applies to this vector
//!   "valid": true,                        // encode/parse: accepted (false: refused with `code`)
//!   "code": 101,                          // expected error code when refused
//!   "text": "...",                        // encode: send this text instead of the .cbor item
//!   "verify": { "ok": true, "code": 1100, // verify: accepted, or refused with `code`
//!               "public_key": {"alg": "ML-DSA-65", "key": "<hex>"},   // key to verify with
//!               "peers": ["did/provider"] }                          // or documents to add_peer
//! }
//! ```

use serde_json::{Map, Value as Json, json};

use mtp_protocol::cbor::{self, diag};

use super::{At, VectorError, VectorFile, ensure};

/// Byte strings up to this length are repeated as hex in the JSON; longer ones are only
/// in the `.cbor` file (the JSON keeps their length and SHA-256).
pub const INLINE_MAX: usize = 1024;

/// One vector under construction.
#[derive(Clone, Debug)]
pub struct VectorDoc {
    pub id: String,
    pub requirements: Vec<&'static str>,
    pub description: String,
    pub inputs: Map<String, Json>,
    pub expected: Map<String, Json>,
    pub codec: Option<Json>,
    /// Bytes under test (`<id>.cbor`).
    pub cbor: Option<Vec<u8>>,
    /// Diagnostic notation when it is not `diag::to_diag(cbor)` (CBOR sequences).
    pub diag: Option<String>,
}

impl VectorDoc {
    pub fn new(id: impl Into<String>, requirements: &[&'static str], description: &str) -> Self {
        VectorDoc {
            id: id.into(),
            requirements: requirements.to_vec(),
            description: description.to_owned(),
            inputs: Map::new(),
            expected: Map::new(),
            codec: None,
            cbor: None,
            diag: None,
        }
    }

    pub fn input(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.inputs.insert(key.to_owned(), value.into());
        self
    }

    /// Records an expected output of the vector.
    pub fn expected(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.expected.insert(key.to_owned(), value.into());
        self
    }

    pub fn codec(mut self, codec: Json) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Attaches the bytes under test; `expected.cbor` (hex, only up to [`INLINE_MAX`]
    /// bytes), `expected.cbor_length` and `expected.sha256` are added.
    pub fn bytes(mut self, bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE_MAX {
            self.expected
                .insert("cbor".into(), Json::String(hex::encode(&bytes)));
        }
        self.expected
            .insert("cbor_length".into(), Json::from(bytes.len()));
        self.expected.insert(
            "sha256".into(),
            Json::String(hex::encode(mtp_protocol::crypto::sha256(&bytes))),
        );
        self.cbor = Some(bytes);
        self
    }

    /// Attaches a CBOR sequence (RFC 8742) with its diagnostic notation (items separated
    /// by `,` and a newline, RFC 8610 Appendix G).
    pub fn sequence(mut self, items: &[Vec<u8>]) -> Result<Self, VectorError> {
        let mut diag_text = String::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                diag_text.push_str(",\n");
            }
            diag_text.push_str(&diag::to_diag(item).at(&self.id)?);
        }
        self.diag = Some(diag_text);
        let all: Vec<u8> = items.concat();
        self = self.bytes(all);
        Ok(self)
    }

    /// The vector's JSON document.
    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("id".into(), Json::String(self.id.clone()));
        m.insert("requirements".into(), json!(self.requirements));
        m.insert("description".into(), Json::String(self.description.clone()));
        m.insert("inputs".into(), Json::Object(self.inputs.clone()));
        m.insert("expected".into(), Json::Object(self.expected.clone()));
        if let Some(c) = &self.codec {
            m.insert("codec".into(), c.clone());
        }
        Json::Object(m)
    }

    /// The vector's files. Checks that the diagnostic notation parses back to the bytes
    /// (BIND-IV-B-01; PROFILE G-28).
    pub fn files(&self) -> Result<Vec<VectorFile>, VectorError> {
        let mut out = vec![VectorFile::json(
            format!("{}.json", self.id),
            &self.to_json(),
        )?];
        if let Some(bytes) = &self.cbor {
            let text = match &self.diag {
                Some(d) => d.clone(),
                None => {
                    let d = diag::to_diag(bytes).at(&self.id)?;
                    let back = diag::from_diag(&d)
                        .map_err(|e| super::input_error(&self.id, e.to_string()))?;
                    ensure(&self.id, &back == bytes, || {
                        "diagnostic notation does not round-trip".into()
                    })?;
                    d
                }
            };
            out.push(VectorFile::binary(
                format!("{}.cbor", self.id),
                bytes.clone(),
            ));
            out.push(VectorFile::text(format!("{}.diag", self.id), &text));
        }
        Ok(out)
    }
}

/// Files of many vectors.
pub fn files_of(docs: &[VectorDoc]) -> Result<Vec<VectorFile>, VectorError> {
    let mut out = Vec::new();
    for d in docs {
        out.extend(d.files()?);
    }
    Ok(out)
}

/// `inputs` members common to every vector of the shared world.
pub fn seed_header() -> Map<String, Json> {
    let mut m = Map::new();
    m.insert(
        "master_seed".into(),
        Json::String(hex::encode(super::MASTER)),
    );
    m.insert(
        "seed_derivation".into(),
        Json::String(
            "HKDF-SHA-256(ikm = master_seed, salt = empty, info = \"MTP-seed-v1/\" || label, \
             L = 32; 64 for ML-KEM seeds d || z)"
                .into(),
        ),
    );
    m
}

/// A CBOR value as generic JSON (RFC 8949 §6.1), for objects without a schema-directed
/// conversion.
pub fn generic_json(vector: &str, v: &cbor::Value) -> Result<Json, VectorError> {
    cbor::json::to_json(v).map_err(|e| super::input_error(vector, e.to_string()))
}
