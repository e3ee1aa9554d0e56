//! Per-transaction audit trail (SPEC IV-B, SPEC X-C; PROFILE G-42).
//!
//! A linear SHA-256 hash chain (SPEC-IV-B-03, BIND-VI-E-I01): entry `n` carries the hash of
//! entry `n-1` in `prev_hash` (32 zero bytes for the genesis entry, `seq` 0), and
//! `hash = SHA-256(deterministic CBOR of the entry map without "hash")`. Export is an RFC 8742
//! CBOR sequence of entry maps. An optional RFC 6962 Merkle root over the entry hashes
//! summarises a trail ([`merkle_root`]).
//!
//! Transition entries (SPEC-IV-B-02) carry `from_state`, `to_state`, the triggering event name
//! ([`crate::state_machine::TxEvent::name`]) and the Agent DIDs; other entries record messages,
//! signature checks, settlement operations and errors (SPEC-X-C-02).

use crate::cbor::{self, DecodeError, EncodeError, Value};
use crate::crypto::{hash::Sha256Hasher, sha256};
use crate::errors::{Coded, ErrorCode, split_code};
use crate::state_machine::{self, TxEvent, TxState};
use crate::time::Timestamp;

/// `prev_hash` of the genesis entry (PROFILE G-42).
pub const GENESIS_PREV_HASH: [u8; 32] = [0; 32];

/// Event names of entries that are not state transitions (PROFILE G-42).
pub mod events {
    /// A message this Agent sent; `message_hash` set.
    pub const MESSAGE_SENT: &str = "message_sent";
    /// A message this Agent received; `message_hash` set.
    pub const MESSAGE_RECEIVED: &str = "message_received";
    /// A signature verification; `signature_check` set.
    pub const SIGNATURE_CHECKED: &str = "signature_checked";
    /// A Settlement Interface operation; `settlement_op` set.
    pub const SETTLEMENT_OPERATION: &str = "settlement_operation";
    /// An error of any severity; `error_code` set.
    pub const ERROR: &str = "error";
}

/// Result of one signature verification (SPEC-X-C-02).
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureCheck {
    /// MTP-UUID of the signed object, or SHA-256 of its deterministic CBOR when it has none.
    pub object: [u8; 32],
    pub result: bool,
    /// Unknown keys of the `signature_check` map, preserved (PROFILE G-26).
    pub extensions: Vec<(String, Value)>,
}

impl SignatureCheck {
    pub fn new(object: [u8; 32], result: bool) -> SignatureCheck {
        SignatureCheck {
            object,
            result,
            extensions: Vec::new(),
        }
    }
}

/// The content of an entry, before the trail assigns `seq`, `prev_hash` and `hash`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditRecord {
    pub event: String,
    pub from_state: Option<TxState>,
    pub to_state: Option<TxState>,
    /// DIDs of the Agents involved (SPEC-IV-B-02).
    pub agents: Vec<String>,
    /// SHA-256 of the exchanged message body (= the frame/envelope `hash`, PROFILE G-09/G-06).
    pub message_hash: Option<[u8; 32]>,
    pub signature_check: Option<SignatureCheck>,
    /// Settlement Interface operation name (`initiate`, `confirm`, `reverse`, `query`).
    pub settlement_op: Option<String>,
    /// `LSCC` error code (any well-formed code, PROFILE G-15).
    pub error_code: Option<u16>,
    /// Unknown top-level keys, preserved and hashed (PROFILE G-26).
    pub extensions: Vec<(String, Value)>,
}

/// One audit-trail entry (PROFILE G-42). Field names are the CBOR map keys.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub seq: u64,
    pub timestamp: Timestamp,
    /// The transaction id: the `terms_id` reserved at Initiated (PROFILE G-16), raw MTP-UUID bytes.
    pub transaction_id: [u8; 32],
    pub event: String,
    pub from_state: Option<TxState>,
    pub to_state: Option<TxState>,
    pub agents: Vec<String>,
    pub message_hash: Option<[u8; 32]>,
    pub signature_check: Option<SignatureCheck>,
    pub settlement_op: Option<String>,
    pub error_code: Option<u16>,
    pub extensions: Vec<(String, Value)>,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// Which link of the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkFault {
    /// `hash` is not SHA-256 of the entry without `hash`.
    HashMismatch,
    /// `prev_hash` is not the preceding entry's `hash`.
    PrevHashMismatch,
    /// The first entry's `prev_hash` is not 32 zero bytes.
    GenesisPrevHash,
    /// `seq` is not the entry's position (entries removed, inserted or reordered).
    SeqGap { expected: u64, found: u64 },
    /// The entry belongs to another transaction.
    TransactionMismatch,
    /// The entry cannot be encoded deterministically (duplicate keys), so it has no hash.
    Unencodable,
}

/// Audit-trail failures.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AuditError {
    /// The first broken link, by position `index` (SPEC-IV-B-03).
    #[error("audit chain broken at index {index} (seq {seq}): {kind:?}")]
    BrokenLink {
        seq: u64,
        index: usize,
        kind: LinkFault,
    },
    /// An exported item is not well-formed deterministic CBOR.
    #[error("audit export item {index}: {error}")]
    Decode { index: usize, error: DecodeError },
    /// An item decodes but is not an audit entry (PROFILE G-42 schema).
    #[error("audit entry {index}: {reason}")]
    Malformed { index: usize, reason: &'static str },
    /// A record cannot be encoded (duplicate or reserved extension key).
    #[error("audit entry cannot be encoded: {0}")]
    Encode(EncodeError),
    /// The recorded state sequence is not a run of the state machine (SPEC-IV-01).
    #[error("audit entry {index} (seq {seq}): invalid transition: {reason}")]
    InvalidTransition {
        seq: u64,
        index: usize,
        reason: &'static str,
    },
}

impl Coded for AuditError {
    /// Broken chain → 0108 (cross-layer SHA-256 integrity failure, PROFILE G-42); undecodable or
    /// malformed export → 0103; invalid state sequence → 0105.
    fn code(&self) -> ErrorCode {
        match self {
            AuditError::BrokenLink { .. } => ErrorCode::MessageIntegrityFailure,
            AuditError::Decode { .. } | AuditError::Malformed { .. } | AuditError::Encode(_) => {
                ErrorCode::SchemaViolation
            }
            AuditError::InvalidTransition { .. } => ErrorCode::UndefinedTransition,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            AuditError::BrokenLink { .. } => "SPEC-IV-B-03",
            AuditError::Decode { .. } | AuditError::Malformed { .. } | AuditError::Encode(_) => {
                "SPEC-X-C-01"
            }
            AuditError::InvalidTransition { .. } => "SPEC-IV-01",
        })
    }
}

/// Top-level keys of the entry map (PROFILE G-42); extensions may not use them.
const KNOWN_KEYS: [&str; 13] = [
    "seq",
    "timestamp",
    "transaction_id",
    "event",
    "from_state",
    "to_state",
    "agents",
    "message_hash",
    "signature_check",
    "settlement_op",
    "error_code",
    "prev_hash",
    "hash",
];

fn text(k: &str) -> Value {
    Value::Text(k.to_owned())
}

impl AuditEntry {
    /// The entry as a CBOR map; `with_hash = false` gives the hash input.
    pub fn to_value(&self, with_hash: bool) -> Value {
        let mut m: Vec<(Value, Value)> = vec![
            (text("seq"), Value::from(self.seq)),
            (
                text("timestamp"),
                Value::Tag(0, Box::new(Value::Text(self.timestamp.to_rfc3339()))),
            ),
            (
                text("transaction_id"),
                Value::Bytes(self.transaction_id.to_vec()),
            ),
            (text("event"), Value::Text(self.event.clone())),
        ];
        if let Some(s) = self.from_state {
            m.push((text("from_state"), text(s.name())));
        }
        if let Some(s) = self.to_state {
            m.push((text("to_state"), text(s.name())));
        }
        m.push((
            text("agents"),
            Value::Array(self.agents.iter().map(|a| text(a)).collect()),
        ));
        if let Some(h) = self.message_hash {
            m.push((text("message_hash"), Value::Bytes(h.to_vec())));
        }
        if let Some(c) = &self.signature_check {
            let mut sc = vec![
                (text("object"), Value::Bytes(c.object.to_vec())),
                (text("result"), Value::Bool(c.result)),
            ];
            sc.extend(c.extensions.iter().map(|(k, v)| (text(k), v.clone())));
            m.push((text("signature_check"), Value::Map(sc)));
        }
        if let Some(op) = &self.settlement_op {
            m.push((text("settlement_op"), text(op)));
        }
        if let Some(code) = self.error_code {
            m.push((text("error_code"), Value::from(u64::from(code))));
        }
        m.extend(self.extensions.iter().map(|(k, v)| (text(k), v.clone())));
        m.push((text("prev_hash"), Value::Bytes(self.prev_hash.to_vec())));
        if with_hash {
            m.push((text("hash"), Value::Bytes(self.hash.to_vec())));
        }
        Value::Map(m)
    }

    /// SHA-256 of the deterministic CBOR of the entry without `hash` (PROFILE G-42).
    pub fn compute_hash(&self) -> Result<[u8; 32], EncodeError> {
        Ok(sha256(&cbor::to_vec(&self.to_value(false))?))
    }

    /// Deterministic CBOR of the complete entry (one item of the export).
    pub fn to_cbor(&self) -> Result<Vec<u8>, EncodeError> {
        cbor::to_vec(&self.to_value(true))
    }

    /// The registry entry of `error_code`, when it is a known code.
    pub fn error(&self) -> Option<ErrorCode> {
        self.error_code.and_then(ErrorCode::from_u16)
    }

    /// `true` for state-transition entries (both states present).
    pub fn is_transition(&self) -> bool {
        self.from_state.is_some() && self.to_state.is_some()
    }

    /// Parses one entry map (PROFILE G-42 schema; unknown keys preserved, G-26). `index` is
    /// only used in errors.
    pub fn from_value(v: &Value, index: usize) -> Result<AuditEntry, AuditError> {
        let bad = |reason| AuditError::Malformed { index, reason };
        let map = v.as_map().ok_or(bad("entry is not a map"))?;
        let mut seq = None;
        let mut timestamp = None;
        let mut transaction_id = None;
        let mut event = None;
        let mut from_state = None;
        let mut to_state = None;
        let mut agents = None;
        let mut message_hash = None;
        let mut signature_check = None;
        let mut settlement_op = None;
        let mut error_code = None;
        let mut prev_hash = None;
        let mut hash = None;
        let mut extensions = Vec::new();
        let bytes32 = |v: &Value, reason| -> Result<[u8; 32], AuditError> {
            v.as_bytes()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or(bad(reason))
        };
        let state = |v: &Value, reason| v.as_text().and_then(TxState::from_name).ok_or(bad(reason));
        for (k, val) in map {
            let key = k.as_text().ok_or(bad("map key is not a text string"))?;
            match key {
                "seq" => seq = Some(val.as_u64().ok_or(bad("seq is not a uint"))?),
                "timestamp" => {
                    let t = match val {
                        Value::Tag(0, inner) => inner.as_text(),
                        _ => None,
                    }
                    .ok_or(bad("timestamp is not a tag-0 tdate"))?;
                    timestamp = Some(
                        Timestamp::parse(t)
                            .map_err(|_| bad("timestamp is not a canonical tdate"))?,
                    );
                }
                "transaction_id" => {
                    transaction_id = Some(bytes32(val, "transaction_id is not a 32-byte bstr")?)
                }
                "event" => {
                    let e = val.as_text().ok_or(bad("event is not a text string"))?;
                    if e.is_empty() {
                        return Err(bad("event is empty"));
                    }
                    event = Some(e.to_owned());
                }
                "from_state" => from_state = Some(state(val, "from_state is not a state name")?),
                "to_state" => to_state = Some(state(val, "to_state is not a state name")?),
                "agents" => {
                    let a = val.as_array().ok_or(bad("agents is not an array"))?;
                    agents = Some(
                        a.iter()
                            .map(|x| {
                                x.as_text()
                                    .map(str::to_owned)
                                    .ok_or(bad("agent is not a text string"))
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
                "message_hash" => {
                    message_hash = Some(bytes32(val, "message_hash is not a 32-byte bstr")?)
                }
                "signature_check" => {
                    let sc = val.as_map().ok_or(bad("signature_check is not a map"))?;
                    let (mut object, mut result, mut ext) = (None, None, Vec::new());
                    for (sk, sv) in sc {
                        match sk.as_text().ok_or(bad("map key is not a text string"))? {
                            "object" => {
                                object = Some(bytes32(
                                    sv,
                                    "signature_check.object is not a 32-byte bstr",
                                )?)
                            }
                            "result" => {
                                result = Some(
                                    sv.as_bool()
                                        .ok_or(bad("signature_check.result is not a bool"))?,
                                )
                            }
                            other => ext.push((other.to_owned(), sv.clone())),
                        }
                    }
                    signature_check = Some(SignatureCheck {
                        object: object.ok_or(bad("signature_check.object missing"))?,
                        result: result.ok_or(bad("signature_check.result missing"))?,
                        extensions: ext,
                    });
                }
                "settlement_op" => {
                    settlement_op = Some(
                        val.as_text()
                            .ok_or(bad("settlement_op is not a text string"))?
                            .to_owned(),
                    )
                }
                "error_code" => {
                    let c = val
                        .as_u64()
                        .and_then(|c| u16::try_from(c).ok())
                        .filter(|&c| split_code(c).is_some())
                        .ok_or(bad("error_code is not a well-formed LSCC code"))?;
                    error_code = Some(c);
                }
                "prev_hash" => prev_hash = Some(bytes32(val, "prev_hash is not a 32-byte bstr")?),
                "hash" => hash = Some(bytes32(val, "hash is not a 32-byte bstr")?),
                other => extensions.push((other.to_owned(), val.clone())),
            }
        }
        if from_state.is_some() != to_state.is_some() {
            return Err(bad("from_state and to_state must appear together"));
        }
        Ok(AuditEntry {
            seq: seq.ok_or(bad("seq missing"))?,
            timestamp: timestamp.ok_or(bad("timestamp missing"))?,
            transaction_id: transaction_id.ok_or(bad("transaction_id missing"))?,
            event: event.ok_or(bad("event missing"))?,
            from_state,
            to_state,
            agents: agents.ok_or(bad("agents missing"))?,
            message_hash,
            signature_check,
            settlement_op,
            error_code,
            extensions,
            prev_hash: prev_hash.ok_or(bad("prev_hash missing"))?,
            hash: hash.ok_or(bad("hash missing"))?,
        })
    }
}

/// The audit trail of one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditTrail {
    transaction_id: [u8; 32],
    entries: Vec<AuditEntry>,
}

impl AuditTrail {
    /// An empty trail for the transaction `transaction_id` (the reserved `terms_id`).
    pub fn new(transaction_id: [u8; 32]) -> AuditTrail {
        AuditTrail {
            transaction_id,
            entries: Vec::new(),
        }
    }

    /// Wraps entries after [`AuditTrail::verify`]; `None` id check for an empty slice.
    pub fn from_entries(
        transaction_id: [u8; 32],
        entries: Vec<AuditEntry>,
    ) -> Result<AuditTrail, AuditError> {
        AuditTrail::verify(&entries)?;
        if let Some(e) = entries
            .first()
            .filter(|e| e.transaction_id != transaction_id)
        {
            return Err(AuditError::BrokenLink {
                seq: e.seq,
                index: 0,
                kind: LinkFault::TransactionMismatch,
            });
        }
        Ok(AuditTrail {
            transaction_id,
            entries,
        })
    }

    pub fn transaction_id(&self) -> [u8; 32] {
        self.transaction_id
    }

    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }

    /// Appends a record: fills `seq`, `transaction_id`, `prev_hash` and `hash` (SPEC-IV-B-03).
    pub fn append(
        &mut self,
        record: AuditRecord,
        timestamp: Timestamp,
    ) -> Result<&AuditEntry, AuditError> {
        for (i, (k, _)) in record.extensions.iter().enumerate() {
            if KNOWN_KEYS.contains(&k.as_str())
                || record.extensions[..i].iter().any(|(p, _)| p == k)
            {
                return Err(AuditError::Encode(EncodeError::DuplicateKey));
            }
        }
        if let Some(sc) = &record.signature_check {
            for (i, (k, _)) in sc.extensions.iter().enumerate() {
                if k == "object" || k == "result" || sc.extensions[..i].iter().any(|(p, _)| p == k)
                {
                    return Err(AuditError::Encode(EncodeError::DuplicateKey));
                }
            }
        }
        let prev_hash = self.entries.last().map_or(GENESIS_PREV_HASH, |e| e.hash);
        let mut entry = AuditEntry {
            seq: self.entries.len() as u64,
            timestamp,
            transaction_id: self.transaction_id,
            event: record.event,
            from_state: record.from_state,
            to_state: record.to_state,
            agents: record.agents,
            message_hash: record.message_hash,
            signature_check: record.signature_check,
            settlement_op: record.settlement_op,
            error_code: record.error_code,
            extensions: record.extensions,
            prev_hash,
            hash: [0; 32],
        };
        entry.hash = entry.compute_hash().map_err(AuditError::Encode)?;
        let index = self.entries.len();
        self.entries.push(entry);
        Ok(&self.entries[index])
    }

    /// Logs a state transition with its triggering event and Agents (SPEC-IV-B-02). A
    /// `FatalError` event also records its code.
    pub fn record_transition(
        &mut self,
        from: TxState,
        to: TxState,
        event: &TxEvent,
        agents: &[String],
        timestamp: Timestamp,
    ) -> Result<&AuditEntry, AuditError> {
        let error_code = match event {
            TxEvent::FatalError { code } => Some(code.as_u16()),
            _ => None,
        };
        let record = AuditRecord {
            event: event.name(),
            from_state: Some(from),
            to_state: Some(to),
            agents: agents.to_vec(),
            error_code,
            ..AuditRecord::default()
        };
        self.append(record, timestamp)
    }

    /// Logs a message sent or received, by the SHA-256 of its body (SPEC-X-C-02).
    pub fn record_message(
        &mut self,
        sent: bool,
        message_hash: [u8; 32],
        agents: &[String],
        timestamp: Timestamp,
    ) -> Result<&AuditEntry, AuditError> {
        let event = if sent {
            events::MESSAGE_SENT
        } else {
            events::MESSAGE_RECEIVED
        };
        let record = AuditRecord {
            event: event.into(),
            agents: agents.to_vec(),
            message_hash: Some(message_hash),
            ..AuditRecord::default()
        };
        self.append(record, timestamp)
    }

    /// Logs a signature verification result (SPEC-X-C-02).
    pub fn record_signature_check(
        &mut self,
        object: [u8; 32],
        result: bool,
        agents: &[String],
        timestamp: Timestamp,
    ) -> Result<&AuditEntry, AuditError> {
        let record = AuditRecord {
            event: events::SIGNATURE_CHECKED.into(),
            agents: agents.to_vec(),
            signature_check: Some(SignatureCheck::new(object, result)),
            ..AuditRecord::default()
        };
        self.append(record, timestamp)
    }

    /// Logs a Settlement Interface operation (SPEC-X-C-02).
    pub fn record_settlement(
        &mut self,
        operation: &str,
        agents: &[String],
        timestamp: Timestamp,
    ) -> Result<&AuditEntry, AuditError> {
        let record = AuditRecord {
            event: events::SETTLEMENT_OPERATION.into(),
            agents: agents.to_vec(),
            settlement_op: Some(operation.to_owned()),
            ..AuditRecord::default()
        };
        self.append(record, timestamp)
    }

    /// Logs an error of any severity (SPEC-X-C-02, SPEC-VI-01).
    pub fn record_error(
        &mut self,
        code: ErrorCode,
        agents: &[String],
        timestamp: Timestamp,
    ) -> Result<&AuditEntry, AuditError> {
        let record = AuditRecord {
            event: events::ERROR.into(),
            agents: agents.to_vec(),
            error_code: Some(code.as_u16()),
            ..AuditRecord::default()
        };
        self.append(record, timestamp)
    }

    /// Verifies the chain and reports the FIRST broken link (SPEC-IV-B-03, SPEC-X-C-01).
    /// Per entry, in this order: transaction id, `seq`, `prev_hash` (genesis: zero), `hash`.
    pub fn verify(entries: &[AuditEntry]) -> Result<(), AuditError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut prev = GENESIS_PREV_HASH;
        for (index, e) in entries.iter().enumerate() {
            let broken = |kind| {
                Err(AuditError::BrokenLink {
                    seq: e.seq,
                    index,
                    kind,
                })
            };
            if e.transaction_id != first.transaction_id {
                return broken(LinkFault::TransactionMismatch);
            }
            if e.seq != index as u64 {
                return broken(LinkFault::SeqGap {
                    expected: index as u64,
                    found: e.seq,
                });
            }
            if e.prev_hash != prev {
                return broken(if index == 0 {
                    LinkFault::GenesisPrevHash
                } else {
                    LinkFault::PrevHashMismatch
                });
            }
            match e.compute_hash() {
                Ok(h) if h == e.hash => {}
                Ok(_) => return broken(LinkFault::HashMismatch),
                Err(_) => return broken(LinkFault::Unencodable),
            }
            prev = e.hash;
        }
        Ok(())
    }

    /// Replays the transition entries through the state machine (SPEC-IV-01, SPEC-IV-B-01):
    /// the first starts in Initiated, each starts where the previous ended, each names a
    /// defined event that maps `from_state` to `to_state`. Returns the final state.
    pub fn replay(entries: &[AuditEntry]) -> Result<TxState, AuditError> {
        let mut state = TxState::Initiated;
        for (index, e) in entries.iter().enumerate() {
            let (Some(from), Some(to)) = (e.from_state, e.to_state) else {
                continue;
            };
            let invalid = |reason| {
                Err(AuditError::InvalidTransition {
                    seq: e.seq,
                    index,
                    reason,
                })
            };
            if from != state {
                return invalid("from_state is not the current state");
            }
            let Some(event) = TxEvent::from_name(&e.event) else {
                return invalid("event is not a defined triggering event");
            };
            match state_machine::transition(from, &event) {
                Ok(t) if t == to => state = to,
                Ok(_) => return invalid("event leads to a different state"),
                Err(_) => return invalid("undefined transition"),
            }
        }
        Ok(state)
    }

    /// Export: RFC 8742 CBOR sequence, one entry map per item (PROFILE G-42).
    pub fn to_cbor_sequence(&self) -> Result<Vec<u8>, AuditError> {
        let mut out = Vec::new();
        for e in &self.entries {
            out.extend(e.to_cbor().map_err(AuditError::Encode)?);
        }
        Ok(out)
    }

    /// Export for human review (BIND IV-B; PROFILE G-28, G-42): the CBOR sequence in
    /// diagnostic notation, one entry per line, items separated by commas (RFC 8610 App. G
    /// sequence form).
    pub fn to_diag(&self) -> Result<String, AuditError> {
        let mut out = String::new();
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push_str(",\n");
            }
            out.push_str(&cbor::diag::value_to_diag(&e.to_value(true)));
        }
        if !out.is_empty() {
            out.push('\n');
        }
        Ok(out)
    }

    /// Import of an RFC 8742 CBOR sequence: every item strictly decoded (deterministic CBOR)
    /// and parsed as an entry. Does not verify the chain; call [`AuditTrail::verify`].
    pub fn from_cbor_sequence(bytes: &[u8]) -> Result<Vec<AuditEntry>, AuditError> {
        cbor::sequence_from_slice(bytes)
            .map_err(|(index, error)| AuditError::Decode { index, error })?
            .iter()
            .enumerate()
            .map(|(index, value)| AuditEntry::from_value(value, index))
            .collect()
    }

    /// RFC 6962 Merkle tree head over the entry hashes (BIND VI-E; PROFILE G-42, optional).
    pub fn merkle_root(&self) -> [u8; 32] {
        merkle_root(&self.entries.iter().map(|e| e.hash).collect::<Vec<_>>())
    }
}

/// RFC 6962 §2.1 Merkle Tree Hash with SHA-256: leaf = H(0x00 ‖ d), node = H(0x01 ‖ l ‖ r),
/// empty tree = H("").
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => sha256(&[]),
        [leaf] => {
            let mut h = Sha256Hasher::new();
            h.update(&[0u8]).update(leaf);
            h.finalize()
        }
        _ => {
            let mut k = 1usize;
            while k * 2 < leaves.len() {
                k *= 2;
            }
            let (l, r) = leaves.split_at(k);
            let mut h = Sha256Hasher::new();
            h.update(&[1u8])
                .update(&merkle_root(l))
                .update(&merkle_root(r));
            h.finalize()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;
    use crate::state_machine::{ReceiptOutcome, TxEvent as E};
    use sha2::{Digest, Sha256};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(1_780_000_000 + s).expect("in range")
    }

    const TX: [u8; 32] = {
        let mut t = [0x33u8; 32];
        t[0] = 0x13;
        t
    };

    fn agents() -> Vec<String> {
        vec!["did:mtp:requester".into(), "did:mtp:provider".into()]
    }

    /// A realistic trail: every kind of entry.
    #[test]
    fn diag_export_is_the_sequence_in_edn_and_parses_back() {
        let t = sample();
        let edn = t.to_diag().unwrap();
        assert_eq!(edn.lines().count(), t.entries().len());
        let bytes = t.to_cbor_sequence().unwrap();
        for (line, e) in edn.lines().zip(t.entries()) {
            let item = line.trim_end_matches(',');
            let v = cbor::diag::from_diag(item).unwrap();
            assert_eq!(v, e.to_cbor().unwrap());
        }
        assert!(!bytes.is_empty());
    }

    fn sample() -> AuditTrail {
        let mut t = AuditTrail::new(TX);
        let a = agents();
        let path = [
            (
                TxState::Initiated,
                TxState::Negotiating,
                E::NegotiationInitiated,
            ),
            (
                TxState::Negotiating,
                TxState::Committed,
                E::MandateFullySigned,
            ),
            (TxState::Committed, TxState::Settling, E::MandateActivated),
            (
                TxState::Settling,
                TxState::Verifying,
                E::SettlementConfirmed,
            ),
            (
                TxState::Verifying,
                TxState::Disputed,
                E::ReceiptIssued {
                    outcome: ReceiptOutcome::Disputed,
                },
            ),
        ];
        let mut n = 0;
        for (from, to, ev) in path {
            t.record_message(true, [n as u8; 32], &a, ts(n)).unwrap();
            n += 1;
            t.record_signature_check([0x40 + n as u8; 32], true, &a, ts(n))
                .unwrap();
            n += 1;
            t.record_transition(from, to, &ev, &a, ts(n)).unwrap();
            n += 1;
        }
        t.record_settlement("reverse", &a, ts(n)).unwrap();
        t.record_error(ErrorCode::SettlementReversalFailed, &a, ts(n + 1))
            .unwrap();
        t.record_transition(
            TxState::Disputed,
            TxState::Failed,
            &E::FatalError {
                code: ErrorCode::SettlementReversalFailed,
            },
            &a,
            ts(n + 2),
        )
        .unwrap();
        t
    }

    #[test]
    fn append_fills_chain_fields() {
        let t = sample();
        let e = t.entries();
        assert_eq!(e.len(), 18);
        assert_eq!(e[0].prev_hash, GENESIS_PREV_HASH);
        assert_eq!(e[0].seq, 0);
        for i in 1..e.len() {
            assert_eq!(e[i].seq, i as u64);
            assert_eq!(e[i].prev_hash, e[i - 1].hash);
            assert_eq!(e[i].transaction_id, TX);
        }
        assert_eq!(AuditTrail::verify(e), Ok(()));
        assert_eq!(AuditTrail::replay(e), Ok(TxState::Failed));
        assert_eq!(
            e.last().unwrap().error(),
            Some(ErrorCode::SettlementReversalFailed)
        );
        assert_eq!(e.last().unwrap().event, "fatal_error.5100");
        assert_eq!(AuditTrail::verify(&[]), Ok(()));
    }

    #[test]
    fn hash_is_sha256_of_entry_without_hash() {
        let t = sample();
        for e in t.entries() {
            let bytes = cbor::to_vec(&e.to_value(false)).unwrap();
            assert_eq!(e.hash, sha256(&bytes));
            assert!(e.to_value(false).get("hash").is_none());
            assert!(e.to_value(true).get("hash").is_some());
        }
    }

    #[test]
    fn genesis_rule() {
        let mut e = sample().entries().to_vec();
        e[0].prev_hash = [1; 32];
        e[0].hash = e[0].compute_hash().unwrap();
        let err = AuditTrail::verify(&e).unwrap_err();
        assert_eq!(
            err,
            AuditError::BrokenLink {
                seq: 0,
                index: 0,
                kind: LinkFault::GenesisPrevHash
            }
        );
        assert_eq!(err.code(), ErrorCode::MessageIntegrityFailure);
        assert_eq!(err.requirement(), Some("SPEC-IV-B-03"));
        // A trail that starts at seq 1 (genesis removed) is a gap at index 0.
        let e = sample().entries()[1..].to_vec();
        assert_eq!(
            AuditTrail::verify(&e).unwrap_err(),
            AuditError::BrokenLink {
                seq: 1,
                index: 0,
                kind: LinkFault::SeqGap {
                    expected: 0,
                    found: 1
                }
            }
        );
    }

    /// Every field of every entry, altered, is detected at that entry.
    #[test]
    fn tampering_any_field_is_detected_at_its_index() {
        let base = sample().entries().to_vec();
        type Mutation = fn(&mut AuditEntry);
        let mutations: &[(&str, Mutation, LinkFault)] = &[
            (
                "seq",
                |e| e.seq += 100,
                LinkFault::SeqGap {
                    expected: 0,
                    found: 0,
                },
            ),
            (
                "timestamp",
                |e| e.timestamp = e.timestamp.add_millis(1).unwrap(),
                LinkFault::HashMismatch,
            ),
            (
                "transaction_id",
                |e| e.transaction_id[31] ^= 1,
                LinkFault::TransactionMismatch,
            ),
            ("event", |e| e.event.push('x'), LinkFault::HashMismatch),
            (
                "from_state",
                |e| e.from_state = Some(TxState::Void),
                LinkFault::HashMismatch,
            ),
            ("to_state", |e| e.to_state = None, LinkFault::HashMismatch),
            ("agents", |e| e.agents.reverse(), LinkFault::HashMismatch),
            (
                "message_hash",
                |e| e.message_hash = Some([9; 32]),
                LinkFault::HashMismatch,
            ),
            (
                "signature_check",
                |e| e.signature_check = Some(SignatureCheck::new([7; 32], false)),
                LinkFault::HashMismatch,
            ),
            (
                "settlement_op",
                |e| e.settlement_op = Some("x".into()),
                LinkFault::HashMismatch,
            ),
            (
                "error_code",
                |e| e.error_code = Some(6100),
                LinkFault::HashMismatch,
            ),
            (
                "extensions",
                |e| e.extensions.push(("x_note".into(), Value::Null)),
                LinkFault::HashMismatch,
            ),
            (
                "prev_hash",
                |e| e.prev_hash[0] ^= 0x80,
                LinkFault::PrevHashMismatch,
            ),
            ("hash", |e| e.hash[5] ^= 1, LinkFault::HashMismatch),
        ];
        for (index, original) in base.iter().enumerate() {
            for (name, mutate, kind) in mutations {
                let mut e = base.clone();
                mutate(&mut e[index]);
                if e[index] == *original {
                    continue; // e.g. agents.reverse() of a palindrome
                }
                let err = AuditTrail::verify(&e).unwrap_err();
                let expected_kind = match kind {
                    // Entry 0 defines the id, so its own hash is what breaks.
                    LinkFault::TransactionMismatch if index == 0 => LinkFault::HashMismatch,
                    LinkFault::SeqGap { .. } => LinkFault::SeqGap {
                        expected: index as u64,
                        found: index as u64 + 100,
                    },
                    LinkFault::PrevHashMismatch if index == 0 => LinkFault::GenesisPrevHash,
                    k => k.clone(),
                };
                assert_eq!(
                    err,
                    AuditError::BrokenLink {
                        seq: e[index].seq,
                        index,
                        kind: expected_kind
                    },
                    "field {name} of entry {index}"
                );
            }
        }
    }

    #[test]
    fn rehashed_tampering_breaks_the_next_link() {
        let base = sample().entries().to_vec();
        for index in 0..base.len() - 1 {
            let mut e = base.clone();
            e[index].event = "forged".into();
            e[index].hash = e[index].compute_hash().unwrap();
            assert_eq!(
                AuditTrail::verify(&e).unwrap_err(),
                AuditError::BrokenLink {
                    seq: index as u64 + 1,
                    index: index + 1,
                    kind: LinkFault::PrevHashMismatch
                }
            );
        }
        // Tampering with the last entry and re-hashing it is undetectable by the chain alone:
        // that is what the exported Merkle root / last hash is for.
        let mut e = base.clone();
        let last = e.len() - 1;
        e[last].event = "forged".into();
        e[last].hash = e[last].compute_hash().unwrap();
        assert_eq!(AuditTrail::verify(&e), Ok(()));
        assert_ne!(
            merkle_root(&e.iter().map(|x| x.hash).collect::<Vec<_>>()),
            merkle_root(&base.iter().map(|x| x.hash).collect::<Vec<_>>())
        );
    }

    #[test]
    fn removal_and_reordering_are_detected() {
        let base = sample().entries().to_vec();
        for index in 0..base.len() {
            let mut e = base.clone();
            e.remove(index);
            if index == base.len() - 1 {
                assert_eq!(
                    AuditTrail::verify(&e),
                    Ok(()),
                    "truncation is visible only against the root"
                );
                continue;
            }
            assert_eq!(
                AuditTrail::verify(&e).unwrap_err(),
                AuditError::BrokenLink {
                    seq: index as u64 + 1,
                    index,
                    kind: LinkFault::SeqGap {
                        expected: index as u64,
                        found: index as u64 + 1
                    }
                },
                "removed {index}"
            );
        }
        for index in 0..base.len() - 1 {
            let mut e = base.clone();
            e.swap(index, index + 1);
            let err = AuditTrail::verify(&e).unwrap_err();
            assert!(
                matches!(err, AuditError::BrokenLink { index: i, kind: LinkFault::SeqGap { .. }, .. } if i == index),
                "swap {index}: {err:?}"
            );
        }
    }

    #[test]
    fn cbor_sequence_round_trip_and_byte_flips() {
        let t = sample();
        let bytes = t.to_cbor_sequence().unwrap();
        let back = AuditTrail::from_cbor_sequence(&bytes).unwrap();
        assert_eq!(back, t.entries());
        assert_eq!(AuditTrail::from_entries(TX, back).unwrap(), t);
        // Item boundaries are the entry encodings.
        let items = cbor::sequence_from_slice(&bytes).unwrap();
        assert_eq!(items.len(), t.entries().len());
        for (item, e) in items.iter().zip(t.entries()) {
            assert_eq!(cbor::to_vec(item).unwrap(), e.to_cbor().unwrap());
        }
        // Flipping any bit of the export is detected: undecodable, malformed, or broken chain.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            match AuditTrail::from_cbor_sequence(&b) {
                Err(_) => {}
                Ok(entries) => assert!(
                    AuditTrail::verify(&entries).is_err(),
                    "flip at byte {i} undetected"
                ),
            }
        }
        assert_eq!(AuditTrail::from_cbor_sequence(&[]), Ok(vec![]));
    }

    #[test]
    fn replay_rejects_invalid_state_sequences() {
        let mut t = AuditTrail::new(TX);
        let a = agents();
        t.record_transition(
            TxState::Initiated,
            TxState::Negotiating,
            &E::NegotiationInitiated,
            &a,
            ts(0),
        )
        .unwrap();
        t.record_transition(
            TxState::Negotiating,
            TxState::Settling,
            &E::MandateActivated,
            &a,
            ts(1),
        )
        .unwrap();
        let err = AuditTrail::replay(t.entries()).unwrap_err();
        assert!(matches!(
            err,
            AuditError::InvalidTransition { index: 1, .. }
        ));
        assert_eq!(err.code(), ErrorCode::UndefinedTransition);
        let mut t = AuditTrail::new(TX);
        t.record_transition(
            TxState::Committed,
            TxState::Settling,
            &E::MandateActivated,
            &a,
            ts(0),
        )
        .unwrap();
        assert!(
            AuditTrail::replay(t.entries()).is_err(),
            "must start in Initiated"
        );
    }

    #[test]
    fn entry_schema_parsing() {
        let e = sample().entries()[2].clone();
        assert!(e.is_transition());
        assert_eq!(AuditEntry::from_value(&e.to_value(true), 0), Ok(e.clone()));
        let strip = |key: &str| {
            let Value::Map(m) = e.to_value(true) else {
                unreachable!()
            };
            Value::Map(
                m.into_iter()
                    .filter(|(k, _)| k.as_text() != Some(key))
                    .collect(),
            )
        };
        for key in [
            "seq",
            "timestamp",
            "transaction_id",
            "event",
            "agents",
            "prev_hash",
            "hash",
        ] {
            assert!(matches!(
                AuditEntry::from_value(&strip(key), 3),
                Err(AuditError::Malformed { index: 3, .. })
            ));
        }
        assert!(
            AuditEntry::from_value(&strip("to_state"), 0).is_err(),
            "states come in pairs"
        );
        let with = |key: &str, v: Value| {
            let Value::Map(mut m) = e.to_value(true) else {
                unreachable!()
            };
            m.retain(|(k, _)| k.as_text() != Some(key));
            m.push((Value::Text(key.into()), v));
            Value::Map(m)
        };
        let bad = [
            with("timestamp", Value::Text(e.timestamp.to_rfc3339())),
            with(
                "timestamp",
                Value::Tag(0, Box::new(Value::Text("2026-01-01T00:00:00.000Z".into()))),
            ),
            with("transaction_id", Value::Bytes(vec![0; 31])),
            with("from_state", Value::Text("Committed".into())),
            with("error_code", Value::Integer(1500)),
            with("seq", Value::Integer(-1)),
        ];
        for v in bad {
            assert!(AuditEntry::from_value(&v, 0).is_err(), "{v:?}");
        }
        // Unknown keys are preserved (PROFILE G-26).
        let ext = AuditEntry::from_value(&with("x_vendor", Value::Integer(7)), 0).unwrap();
        assert_eq!(
            ext.extensions,
            vec![("x_vendor".to_owned(), Value::Integer(7))]
        );
        // Unknown code values that are well formed are kept verbatim.
        let c = AuditEntry::from_value(&with("error_code", Value::Integer(2199)), 0).unwrap();
        assert_eq!((c.error_code, c.error()), (Some(2199), None));
    }

    #[test]
    fn extension_keys_cannot_shadow_schema_keys() {
        let mut t = AuditTrail::new(TX);
        let rec = AuditRecord {
            event: "x".into(),
            extensions: vec![("hash".into(), Value::Null)],
            ..AuditRecord::default()
        };
        assert!(matches!(t.append(rec, ts(0)), Err(AuditError::Encode(_))));
        assert!(t.entries().is_empty());
    }

    #[test]
    fn merkle_root_rfc6962() {
        // RFC 6962 empty-tree hash = SHA-256("").
        assert_eq!(
            hex::encode(merkle_root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l: Vec<[u8; 32]> = (0..3u8).map(|i| [i; 32]).collect();
        let leaf = |d: &[u8; 32]| -> [u8; 32] {
            Sha256::new()
                .chain_update([0u8])
                .chain_update(d)
                .finalize()
                .into()
        };
        let node = |a: [u8; 32], b: [u8; 32]| -> [u8; 32] {
            Sha256::new()
                .chain_update([1u8])
                .chain_update(a)
                .chain_update(b)
                .finalize()
                .into()
        };
        assert_eq!(merkle_root(&l[..1]), leaf(&l[0]));
        assert_eq!(
            merkle_root(&l),
            node(node(leaf(&l[0]), leaf(&l[1])), leaf(&l[2]))
        );
    }
}
