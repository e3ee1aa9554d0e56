//! A small YAML tree with source positions, built on `yaml-rust2`'s event parser, for the
//! scenario and IUT-description loaders: every node knows its line and column, so every
//! semantic error can say `file:line: message`. Scalars keep whether they were plain (so
//! `"5"` stays text while `5` is an integer) and the loader — not YAML 1.1 — decides what a
//! scalar means. Tags are refused, duplicate keys and complex keys are errors, anchors and
//! aliases work (with a node budget against alias bombs).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to (aliases included).
const MAX_NODES: usize = 1_000_000;

/// A position-carrying message (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diag {
    pub fn new(line: usize, col: usize, message: impl Into<String>) -> Diag {
        Diag {
            line,
            col,
            message: message.into(),
        }
    }

    pub fn at(node: &Node, message: impl Into<String>) -> Diag {
        Diag::new(node.line, node.col, message)
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.message)
    }
}

/// A mapping key (always a scalar).
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub text: String,
    pub plain: bool,
    pub line: usize,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// `plain` is false for quoted and block scalars.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub line: usize,
    pub col: usize,
    pub kind: NodeKind,
}

impl Node {
    /// A plain empty scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true } if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a map",
        }
    }

    /// The text of a scalar (any style); `what` names the field in the error.
    pub fn str(&self, what: &str) -> Result<&str, Diag> {
        match &self.kind {
            NodeKind::Scalar { text, .. } if !self.is_null() => Ok(text),
            _ => Err(Diag::at(
                self,
                format!("{what} must be a string, found {}", self.kind_name()),
            )),
        }
    }

    /// A non-empty string.
    pub fn non_empty_str(&self, what: &str) -> Result<&str, Diag> {
        let s = self.str(what)?;
        if s.trim().is_empty() {
            return Err(Diag::at(self, format!("{what} must not be empty")));
        }
        Ok(s)
    }

    pub fn seq(&self, what: &str) -> Result<&[Node], Diag> {
        match &self.kind {
            NodeKind::Seq(items) => Ok(items),
            _ => Err(Diag::at(
                self,
                format!("{what} must be a list, found {}", self.kind_name()),
            )),
        }
    }

    /// A list, or a single scalar taken as a one-element list.
    pub fn seq_or_one(&self, what: &str) -> Result<Vec<&Node>, Diag> {
        match &self.kind {
            NodeKind::Seq(items) => Ok(items.iter().collect()),
            NodeKind::Scalar { .. } if !self.is_null() => Ok(vec![self]),
            _ => Err(Diag::at(
                self,
                format!("{what} must be a list, found {}", self.kind_name()),
            )),
        }
    }

    /// A list of non-empty strings.
    pub fn str_list(&self, what: &str) -> Result<Vec<(String, &Node)>, Diag> {
        self.seq_or_one(what)?
            .into_iter()
            .map(|n| n.non_empty_str(what).map(|s| (s.to_owned(), n)))
            .collect()
    }

    pub fn map(&self, what: &str) -> Result<MapReader<'_>, Diag> {
        match &self.kind {
            NodeKind::Map(entries) => Ok(MapReader {
                node: self,
                entries,
                used: vec![false; entries.len()],
                what: what.to_owned(),
            }),
            _ => Err(Diag::at(
                self,
                format!("{what} must be a map, found {}", self.kind_name()),
            )),
        }
    }

    pub fn bool(&self, what: &str) -> Result<bool, Diag> {
        match &self.kind {
            NodeKind::Scalar { text, plain: true } if text == "true" => Ok(true),
            NodeKind::Scalar { text, plain: true } if text == "false" => Ok(false),
            _ => Err(Diag::at(self, format!("{what} must be true or false"))),
        }
    }

    /// A non-negative decimal integer (leading zeros allowed; quoted digits accepted).
    pub fn u64(&self, what: &str) -> Result<u64, Diag> {
        let s = self.str(what)?;
        let t = s.strip_prefix('+').unwrap_or(s);
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return Err(Diag::at(
                self,
                format!("{what} must be a non-negative integer, found `{s}`"),
            ));
        }
        t.replace('_', "")
            .parse::<u64>()
            .map_err(|_| Diag::at(self, format!("{what} is out of range: `{s}`")))
    }

    /// A duration: `250ms`, `2s`, `1.5s`, `3m`, or a plain integer meaning milliseconds.
    pub fn duration(&self, what: &str) -> Result<std::time::Duration, Diag> {
        let s = self.str(what)?;
        parse_duration(s).ok_or_else(|| {
            Diag::at(
                self,
                format!("{what} must be a duration such as `500ms`, `2s` or `1m`, found `{s}`"),
            )
        })
    }
}

/// `250ms`, `2s`, `1.5s`, `3m`, `1h`, or an integer number of milliseconds. At most one day.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (num, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (s, 1.0)
    };
    let num = num.trim();
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || num.matches('.').count() > 1
        || num.starts_with('.')
        || num.ends_with('.')
    {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    let ms = v * unit_ms;
    if !ms.is_finite() || !(0.0..=86_400_000.0).contains(&ms) {
        return None;
    }
    Some(std::time::Duration::from_micros(
        (ms * 1000.0).round() as u64
    ))
}

/// Formats a duration the way scenario files write it.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Reads the entries of a map, remembering which keys were used so that
/// [`MapReader::finish`] can report unknown ones.
pub struct MapReader<'a> {
    pub node: &'a Node,
    entries: &'a [(Key, Node)],
    used: Vec<bool>,
    what: String,
}

impl<'a> MapReader<'a> {
    /// The value of `key`, marking it used.
    pub fn get(&mut self, key: &str) -> Option<&'a Node> {
        let i = self.entries.iter().position(|(k, _)| k.text == key)?;
        self.used[i] = true;
        Some(&self.entries[i].1)
    }

    /// The value of `key`, treating an explicit `null` as absent.
    pub fn opt(&mut self, key: &str) -> Option<&'a Node> {
        self.get(key).filter(|n| !n.is_null())
    }

    pub fn required(&mut self, key: &str) -> Result<&'a Node, Diag> {
        match self.get(key) {
            Some(n) if !n.is_null() => Ok(n),
            Some(n) => Err(Diag::at(
                n,
                format!("`{key}` in {} must not be empty", self.what),
            )),
            None => Err(Diag::at(
                self.node,
                format!("missing field `{key}` in {}", self.what),
            )),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.text == key)
    }

    /// All entries, marking every one used.
    pub fn all(&mut self) -> &'a [(Key, Node)] {
        self.used.iter_mut().for_each(|u| *u = true);
        self.entries
    }

    pub fn keys(&self) -> impl Iterator<Item = &'a Key> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Errors for every key not read, naming the accepted ones.
    pub fn finish(self, accepted: &[&str]) -> Result<(), Diag> {
        for (i, (k, _)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                let hint = if accepted.is_empty() {
                    String::new()
                } else {
                    format!(" (expected one of: {})", accepted.join(", "))
                };
                return Err(Diag::new(
                    k.line,
                    k.col,
                    format!("unknown field `{}` in {}{hint}", k.text, self.what),
                ));
            }
        }
        Ok(())
    }
}

/// Parses one YAML document into a [`Node`]. An empty document is an empty map.
pub fn parse(text: &str) -> Result<Node, Diag> {
    // The parser is third-party code; a panic on some input must not take the run down.
    let outcome = std::panic::catch_unwind(|| {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        let scan = parser.load(&mut builder, true);
        (scan, builder)
    });
    let (scan, builder) = match outcome {
        Ok(x) => x,
        Err(_) => return Err(Diag::new(1, 1, "the YAML parser failed on this file")),
    };
    if let Some(d) = builder.error {
        return Err(d);
    }
    if let Err(e) = scan {
        let m = e.marker();
        return Err(Diag::new(
            m.line().max(1),
            m.col() + 1,
            format!("YAML syntax error: {}", e.info()),
        ));
    }
    if builder.documents > 1 {
        return Err(Diag::new(
            builder.second_doc_line,
            1,
            "a file holds one YAML document (found a second `---`)",
        ));
    }
    Ok(builder.root.unwrap_or(Node {
        line: 1,
        col: 1,
        kind: NodeKind::Map(Vec::new()),
    }))
}

enum Frame {
    Seq {
        line: usize,
        col: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        col: usize,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<Diag>,
    documents: usize,
    second_doc_line: usize,
    nodes: usize,
}

fn pos(mark: &Marker) -> (usize, usize) {
    (mark.line().max(1), mark.col() + 1)
}

fn count_nodes(n: &Node) -> usize {
    match &n.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => 1 + entries.iter().map(|(_, v)| count_nodes(v)).sum::<usize>(),
    }
}

impl Builder {
    fn fail(&mut self, line: usize, col: usize, msg: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(Diag::new(line, col, msg));
        }
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn attach(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => {
                    if let Some((prev, _)) = entries.iter().find(|(p, _)| p.text == k.text) {
                        let (pl, kl, kc, kt) = (prev.line, k.line, k.col, k.text.clone());
                        self.fail(kl, kc, format!("duplicate key `{kt}` (first at line {pl})"));
                    } else {
                        entries.push((k, node));
                    }
                }
                None => match node.kind {
                    NodeKind::Scalar { text, plain } => {
                        *key = Some(Key {
                            text,
                            plain,
                            line: node.line,
                            col: node.col,
                        });
                    }
                    _ => {
                        let (l, c) = (node.line, node.col);
                        self.fail(l, c, "map keys must be plain strings");
                    }
                },
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let (line, col) = pos(&mark);
        let is_seq = matches!(ev, Event::SequenceStart(..));
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.second_doc_line = line;
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => {
                    self.nodes += count_nodes(&node);
                    if self.nodes > MAX_NODES {
                        self.fail(line, col, "document too large (alias expansion)");
                        return;
                    }
                    let node = Node { line, col, ..node };
                    self.attach(node, 0);
                }
                None => self.fail(line, col, "alias to an unknown anchor"),
            },
            Event::Scalar(text, style, anchor, tag) => {
                if tag.is_some() {
                    self.fail(line, col, "YAML tags (`!name`) are not supported");
                    return;
                }
                self.nodes += 1;
                let plain = matches!(style, TScalarStyle::Plain);
                self.attach(
                    Node {
                        line,
                        col,
                        kind: NodeKind::Scalar { text, plain },
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                if tag.is_some() {
                    self.fail(line, col, "YAML tags (`!name`) are not supported");
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, col, "nesting too deep");
                    return;
                }
                if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
                    self.fail(line, col, "map keys must be plain strings");
                    return;
                }
                self.nodes += 1;
                self.stack.push(if is_seq {
                    Frame::Seq {
                        line,
                        col,
                        anchor,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        line,
                        col,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    line,
                    col,
                    anchor,
                    items,
                }) => self.attach(
                    Node {
                        line,
                        col,
                        kind: NodeKind::Seq(items),
                    },
                    anchor,
                ),
                Some(Frame::Map {
                    line,
                    col,
                    anchor,
                    entries,
                    key,
                }) => {
                    if let Some(k) = key {
                        // A key without a value cannot come out of the parser; keep it null.
                        let mut entries = entries;
                        let (l, c) = (k.line, k.col);
                        entries.push((
                            k,
                            Node {
                                line: l,
                                col: c,
                                kind: NodeKind::Scalar {
                                    text: String::new(),
                                    plain: true,
                                },
                            },
                        ));
                        self.attach(
                            Node {
                                line,
                                col,
                                kind: NodeKind::Map(entries),
                            },
                            anchor,
                        );
                    } else {
                        self.attach(
                            Node {
                                line,
                                col,
                                kind: NodeKind::Map(entries),
                            },
                            anchor,
                        );
                    }
                }
                None => self.fail(line, col, "unbalanced YAML structure"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  - x\n  - \"y\"\n").unwrap();
        let NodeKind::Map(entries) = &n.kind else {
            panic!()
        };
        assert_eq!(entries[0].0.line, 1);
        assert_eq!(entries[1].0.line, 2);
        let NodeKind::Seq(items) = &entries[1].1.kind else {
            panic!()
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(items[1].line, 4);
        assert_eq!(
            items[1].kind,
            NodeKind::Scalar {
                text: "y".into(),
                plain: false
            }
        );
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        for bad in [
            "a: 1\na: 2\n",
            "? [a]\n: 1\n",
            "a: !tag 1\n",
            "a: [1, 2\n",
            "a: *nope\n",
            "--- a\n--- b\n",
            "a: &x [*x]\n",
            "\t- x: :\n",
            "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse("a: 1\na: 2\n").unwrap_err().line, 2);
    }

    #[test]
    fn anchors_and_aliases() {
        let n = parse("a: &x {k: 1}\nb: *x\n").unwrap();
        let NodeKind::Map(entries) = &n.kind else {
            panic!()
        };
        assert_eq!(entries[1].1.line, 2);
        assert!(matches!(entries[1].1.kind, NodeKind::Map(_)));
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("700"), Some(Duration::from_millis(700)));
        for bad in ["", "s", "-1s", "1.2.3s", "abc", "2d", "1e9s", ".5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
