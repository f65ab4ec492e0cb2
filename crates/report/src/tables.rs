//! The etcd section's rows, built once and drawn twice: as aligned text by `analyze` and as
//! HTML tables by `analyze --html`. A renderer decides the look, never the content.

use boltpack::analyze::etcd::{EtcdAnalysis, TopKey};

use crate::units::size;

/// How a column's cells are padded in text.
#[derive(Clone, Copy)]
pub enum Align {
    Left,
    Right,
}

/// One column: its text heading, HTML heading, text width and alignment, and the spaces
/// before it in text.
pub struct Column {
    pub text: &'static str,
    pub html: &'static str,
    pub width: usize,
    pub align: Align,
    pub gap: usize,
}

const fn col(text: &'static str, html: &'static str, width: usize, align: Align) -> Column {
    Column {
        text,
        html,
        width,
        align,
        gap: 1,
    }
}

/// A row's cells, and a remark drawn after it (text) or in its first cell (HTML).
pub struct Row {
    pub cells: Vec<String>,
    pub note: Option<&'static str>,
}

/// A table: its columns and rows.
pub struct Table {
    pub columns: &'static [Column],
    pub rows: Vec<Row>,
}

fn rows(cells: impl Iterator<Item = Vec<String>>) -> Vec<Row> {
    cells.map(|cells| Row { cells, note: None }).collect()
}

/// An optional figure, or `-`.
pub fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The state and key figures: (label, value).
pub fn state(e: &EtcdAnalysis) -> Vec<(&'static str, String)> {
    let k = &e.keys;
    let d = &e.revisions_per_key;
    let interrupted = e.interrupted_compaction.map_or(String::new(), |r| {
        format!("; INTERRUPTED compaction at {r}")
    });
    let storage = e
        .storage_version
        .as_ref()
        .map_or(String::new(), |v| format!("   storage version {v}"));
    let alarms = if e.alarms.is_empty() {
        "none".to_string()
    } else {
        let each: Vec<String> = e
            .alarms
            .iter()
            .map(|a| format!("{} on member {}", a.alarm, a.member_id))
            .collect();
        each.join(", ")
    };
    vec![
        ("current revision", e.current_revision.to_string()),
        (
            "compacted revision",
            format!(
                "{} (finishedCompactRev {}, scheduledCompactRev {}{interrupted})",
                e.compacted_revision,
                opt(&e.finished_compact_rev),
                opt(&e.scheduled_compact_rev),
            ),
        ),
        (
            "key revisions",
            format!(
                "{} .. {}",
                opt(&e.first_key_revision),
                opt(&e.last_key_revision)
            ),
        ),
        (
            "consistent index",
            format!(
                "{}   term {}{storage}",
                opt(&e.consistent_index),
                opt(&e.term)
            ),
        ),
        ("alarms", alarms),
        (
            "members",
            format!(
                "{} ({} removed); leases {}",
                e.members, e.members_removed, e.leases
            ),
        ),
        (
            "revision entries",
            format!("{} ({})", k.entries, size(k.entry_bytes)),
        ),
        (
            "distinct keys",
            format!(
                "{}: {} live, {} deleted",
                k.distinct_keys,
                k.live_keys,
                k.distinct_keys - k.live_keys
            ),
        ),
        ("tombstones", k.tombstones.to_string()),
        (
            "historical revisions",
            format!(
                "{} ({}); latest revisions {}",
                k.historical_revisions,
                size(k.history_bytes),
                size(k.latest_bytes)
            ),
        ),
        (
            "revisions per key",
            format!(
                "p50 {}, p90 {}, p99 {}, max {}, mean {:.2}",
                d.p50, d.p90, d.p99, d.max, d.mean
            ),
        ),
    ]
}

const TOP_KEYS: &[Column] = &[
    col("REVISIONS", "revisions", 9, Align::Right),
    col("BYTES", "bytes", 12, Align::Right),
    col("LIVE", "live", 5, Align::Right),
    Column {
        gap: 2,
        ..col("KEY", "key", 0, Align::Left)
    },
];

/// A list of top keys (by revisions or by bytes).
pub fn top_keys(list: &[TopKey]) -> Table {
    let cells = list.iter().map(|t| {
        vec![
            t.revisions.to_string(),
            t.bytes.to_string(),
            if t.live { "yes" } else { "no" }.to_string(),
            t.key.clone(),
        ]
    });
    Table {
        columns: TOP_KEYS,
        rows: rows(cells),
    }
}

const PREFIXES: &[Column] = &[
    col("PREFIX", "prefix", 40, Align::Left),
    col("KEYS", "keys", 7, Align::Right),
    col("LIVE", "live", 7, Align::Right),
    col("REVISIONS", "revisions", 9, Align::Right),
    col("LATEST B", "latest bytes", 12, Align::Right),
    col("HISTORY B", "history bytes", 12, Align::Right),
];

/// The groups by prefix.
pub fn prefixes(e: &EtcdAnalysis) -> Table {
    let cells = e.prefixes.groups.iter().map(|g| {
        vec![
            g.prefix.clone(),
            g.keys.to_string(),
            g.live_keys.to_string(),
            g.revisions.to_string(),
            g.latest_bytes.to_string(),
            g.history_bytes.to_string(),
        ]
    });
    Table {
        columns: PREFIXES,
        rows: rows(cells),
    }
}

const KINDS: &[Column] = &[
    col("OBJECT KIND", "object kind", 40, Align::Left),
    col("ENCODING", "encoding", 9, Align::Left),
    col("KEYS", "keys", 7, Align::Right),
    col("LIVE", "live", 7, Align::Right),
    col("LATEST B", "latest bytes", 12, Align::Right),
    col("HISTORY B", "history bytes", 12, Align::Right),
];

/// Keys by the object kind of their newest value (apiVersion and kind).
pub fn kinds(e: &EtcdAnalysis) -> Table {
    let cells = e.kinds.iter().map(|k| {
        let label = match k.encoding.as_str() {
            "protobuf" | "json" => format!("{} {}", k.api_version, k.kind),
            "encrypted" => format!("(encrypted: {})", k.api_version),
            _ => "(not a Kubernetes object)".to_string(),
        };
        vec![
            label,
            k.encoding.clone(),
            k.keys.to_string(),
            k.live_keys.to_string(),
            k.latest_bytes.to_string(),
            k.history_bytes.to_string(),
        ]
    });
    Table {
        columns: KINDS,
        rows: rows(cells),
    }
}

const HISTOGRAM: &[Column] = &[
    col("REVISIONS", "revisions", 17, Align::Left),
    col("ENTRIES", "entries", 8, Align::Right),
    col("TOMBSTONES", "tombstones", 10, Align::Right),
    col("BYTES", "bytes", 12, Align::Right),
];

/// The revision histogram's bands.
pub fn histogram(e: &EtcdAnalysis) -> Table {
    let cells = e.revision_histogram.iter().map(|b| {
        let range = if b.first == b.last {
            b.first.to_string()
        } else {
            format!("{}-{}", b.first, b.last)
        };
        vec![
            range,
            b.entries.to_string(),
            b.tombstones.to_string(),
            b.bytes.to_string(),
        ]
    });
    Table {
        columns: HISTOGRAM,
        rows: rows(cells),
    }
}

const CAPACITY: &[Column] = &[
    col("COMPACT AT", "compact at", 10, Align::Right),
    col("ENTRIES", "entries", 9, Align::Right),
    col("BYTES", "entry bytes", 12, Align::Right),
    col("REMOVED", "removed", 9, Align::Right),
    col("REMOVED B", "removed bytes", 12, Align::Right),
    col("FILE AFTER+DEFRAG", "file after + defrag", 24, Align::Right),
    col("HEADROOM", "headroom", 14, Align::Right),
];

/// The capacity candidates: what compacting at each revision (and defragmenting) leaves.
pub fn capacity(e: &EtcdAnalysis) -> Table {
    let rows = e.capacity.candidates.iter().map(|x| Row {
        cells: vec![
            x.revision.to_string(),
            x.remaining_entries.to_string(),
            x.remaining_bytes.to_string(),
            x.removed_entries.to_string(),
            x.removed_bytes.to_string(),
            x.remaining_file_size.to_string(),
            x.headroom_bytes.to_string(),
        ],
        note: (!x.compacts).then_some("(defrag only)"),
    });
    Table {
        columns: CAPACITY,
        rows: rows.collect(),
    }
}
