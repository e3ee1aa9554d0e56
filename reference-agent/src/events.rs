//! What the agent observed and decided, numbered in order since the last reset: the stream
//! behind the test-control `Observe` RPC (docs/iut-contract.md, `control-event`) and the
//! agent's structured log.

use std::sync::Mutex;

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::state_machine::TxState;
use mtp_protocol::time::Timestamp;
use tokio::sync::broadcast;

/// `control-event.kind` (protocol/wire/control.cddl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Transition,
    ErrorRaised,
    ErrorReceived,
    NotificationSent,
    NotificationReceived,
    Warning,
    MessageSent,
    MessageReceived,
    HandshakeRefused,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Transition => "transition",
            EventKind::ErrorRaised => "error_raised",
            EventKind::ErrorReceived => "error_received",
            EventKind::NotificationSent => "notification_sent",
            EventKind::NotificationReceived => "notification_received",
            EventKind::Warning => "warning",
            EventKind::MessageSent => "message_sent",
            EventKind::MessageReceived => "message_received",
            EventKind::HandshakeRefused => "handshake_refused",
        }
    }
}

/// One observed event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub timestamp: Timestamp,
    pub transaction_id: Option<[u8; 32]>,
    pub from_state: Option<TxState>,
    pub to_state: Option<TxState>,
    pub code: Option<u16>,
    pub peer: Option<String>,
    pub frame_type: Option<String>,
    pub hash: Option<[u8; 32]>,
    pub correlation_id: Option<String>,
    /// Free text for logs and `detail` (never judged).
    pub detail: Option<String>,
}

impl Event {
    pub fn new(kind: EventKind, timestamp: Timestamp) -> Event {
        Event {
            kind,
            timestamp,
            transaction_id: None,
            from_state: None,
            to_state: None,
            code: None,
            peer: None,
            frame_type: None,
            hash: None,
            correlation_id: None,
            detail: None,
        }
    }

    /// `control-event` as a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m: Vec<(&str, Value)> = vec![
            ("kind", Value::text(self.kind.name())),
            ("timestamp", Value::text(self.timestamp.to_rfc3339())),
        ];
        if let Some(t) = self.transaction_id {
            m.push(("transaction_id", Value::Bytes(t.to_vec())));
        }
        if let Some(s) = self.from_state {
            m.push(("from_state", Value::text(s.name())));
        }
        if let Some(s) = self.to_state {
            m.push(("to_state", Value::text(s.name())));
        }
        if let Some(c) = self.code {
            m.push(("code", Value::from(u64::from(c))));
        }
        if let Some(p) = &self.peer {
            m.push(("peer", Value::text(p.clone())));
        }
        if let Some(f) = &self.frame_type {
            m.push(("frame_type", Value::text(f.clone())));
        }
        if let Some(h) = self.hash {
            m.push(("hash", Value::Bytes(h.to_vec())));
        }
        if let Some(c) = &self.correlation_id {
            m.push(("correlation_id", Value::text(c.clone())));
        }
        if let Some(d) = &self.detail {
            m.push(("detail", Value::text(d.clone())));
        }
        Value::map(m)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        // A map of text keys and plain values always encodes.
        cbor::to_vec(&self.to_value()).unwrap_or_default()
    }
}

/// An event with its sequence number (from 1).
pub type Numbered = (u64, Event);

/// The numbered event log with live subscribers.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Vec<Event>>,
    live: broadcast::Sender<(u64, Event)>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new()
    }
}

impl EventLog {
    pub fn new() -> EventLog {
        EventLog {
            inner: Mutex::new(Vec::new()),
            live: broadcast::channel(4096).0,
        }
    }

    /// Append; returns the event's sequence number (from 1).
    pub fn push(&self, event: Event) -> u64 {
        log_event(&event);
        let mut v = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        v.push(event.clone());
        let seq = v.len() as u64;
        let _ = self.live.send((seq, event));
        seq
    }

    /// Events with sequence > `after`, and a receiver for later ones (no gap, no duplicate:
    /// the caller skips live events with sequence ≤ the last one returned).
    pub fn since(&self, after: u64) -> (Vec<Numbered>, broadcast::Receiver<Numbered>) {
        let v = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.live.subscribe();
        let past = v
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u64 + 1, e.clone()))
            .filter(|(s, _)| *s > after)
            .collect();
        (past, rx)
    }

    pub fn snapshot(&self) -> Vec<Event> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forget everything (test-control `reset`).
    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

fn log_event(e: &Event) {
    let tx = e.transaction_id.map(hex::encode);
    match e.kind {
        EventKind::ErrorRaised | EventKind::HandshakeRefused => tracing::warn!(
            kind = e.kind.name(),
            code = e.code,
            transaction = tx,
            peer = e.peer,
            detail = e.detail,
            "event"
        ),
        EventKind::Warning => tracing::warn!(
            kind = e.kind.name(),
            code = e.code,
            transaction = tx,
            detail = e.detail,
            "warning"
        ),
        _ => tracing::info!(
            kind = e.kind.name(),
            transaction = tx,
            from = e.from_state.map(|s| s.name()),
            to = e.to_state.map(|s| s.name()),
            code = e.code,
            frame = e.frame_type,
            "event"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_and_catch_up_without_gaps() {
        let log = EventLog::new();
        let t = Timestamp::from_unix_secs(1_800_000_000).unwrap();
        log.push(Event::new(EventKind::Warning, t));
        log.push(Event::new(EventKind::MessageSent, t));
        let (past, mut rx) = log.since(1);
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].0, 2);
        log.push(Event::new(EventKind::ErrorRaised, t));
        let (seq, e) = rx.try_recv().unwrap();
        assert_eq!((seq, e.kind), (3, EventKind::ErrorRaised));
        let v = cbor::from_slice(&e.to_cbor()).unwrap();
        assert!(matches!(v, Value::Map(_)));
    }
}
