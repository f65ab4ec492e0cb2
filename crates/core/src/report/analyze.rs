//! `boltpack analyze` for people: file figures, then one table row per bucket.

use std::fmt::Write;

use crate::analyze::Analysis;
use crate::analyze::etcd::EtcdAnalysis;
use crate::analyze::frag::Amount;

/// Bytes with a binary-unit figure beside them when large.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{bytes} B ({v:.1} {})", UNITS[u])
}

fn amount(a: &Amount) -> String {
    format!("{} pages, {}", a.pages, size(a.bytes))
}

fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_string(), |p| format!("{p:.1}%"))
}

pub fn render(a: &Analysis) -> String {
    let mut s = String::new();
    render_file(&mut s, a);
    render_buckets(&mut s, a);
    if a.problems > 0 {
        let _ = writeln!(
            s,
            "\n{} problems met while walking the file; figures may be off: run `boltpack check`",
            a.problems
        );
    }
    if let Some(e) = &a.etcd {
        render_etcd(&mut s, e);
    }
    s
}

/// The file figures: sizes, page use, free runs, fill, the defragmented size.
fn render_file(s: &mut String, a: &Analysis) {
    let f = &a.file;
    let _ = writeln!(s, "file size        {}", size(f.file_size));
    let _ = writeln!(s, "page size        {}", f.page_size);
    let _ = writeln!(
        s,
        "high-water mark  {} pages = {}{}",
        f.hwm,
        size(f.used_size),
        if f.past_hwm_bytes > 0 {
            format!("; {} past it", size(f.past_hwm_bytes))
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "live             {}", amount(&f.live));
    let _ = writeln!(s, "free             {}", amount(&f.free));
    let _ = writeln!(s, "unreachable      {}", amount(&f.unreachable));
    let r = &f.free_runs;
    let _ = writeln!(
        s,
        "free runs        {} runs, longest {} pages{}",
        r.count,
        r.largest,
        r.largest_at
            .map_or(String::new(), |p| format!(" (from page {p})"))
    );
    for b in r.histogram.iter().filter(|b| b.runs > 0) {
        let len = if b.min_len == b.max_len {
            b.min_len.to_string()
        } else {
            format!("{}-{}", b.min_len, b.max_len)
        };
        let _ = writeln!(s, "  {len:>13} pages: {} runs, {} pages", b.runs, b.pages);
    }
    let _ = writeln!(s, "free by tenth of the file");
    let _ = writeln!(s, "  {:<21} {:>10} {:>14}", "PAGES", "FREE", "PAST HWM");
    for t in &f.free_by_tenth {
        if t.first_page == t.end_page {
            continue;
        }
        let _ = writeln!(
            s,
            "  {:>10}-{:<10} {:>10} {:>14}",
            t.first_page,
            t.end_page - 1,
            t.free.pages,
            t.past_hwm.pages
        );
    }
    let _ = writeln!(
        s,
        "fill             leaf {}, branch {} (bytes in use / bytes of the pages)",
        pct(f.leaf_fill_pct),
        pct(f.branch_fill_pct)
    );
    let d = &f.defrag_estimate;
    let _ = writeln!(
        s,
        "defragmented     {}{} pages = {}, {} smaller",
        if d.exact { "" } else { "~" },
        d.pages,
        size(d.bytes),
        size(d.saving_bytes)
    );
    let _ = writeln!(s, "  ({})", d.method);
}

/// One row per bucket, its own figures.
fn render_buckets(s: &mut String, a: &Analysis) {
    let _ = writeln!(
        s,
        "\nbuckets: {} ({} inline); own figures of each bucket, sub-buckets not included \
         (--json has Go's aggregated Bucket.Stats() too)",
        a.total.bucket_n.saturating_sub(1),
        a.total.inline_bucket_n
    );
    let _ = writeln!(
        s,
        "{:<32} {:>9} {:>5} {:>7} {:>8} {:>8} {:>12} {:>12} {:>7} {:>7}",
        "BUCKET",
        "KEYS",
        "DEPTH",
        "BRANCH",
        "LEAF",
        "OVERFLOW",
        "ALLOC",
        "INUSE",
        "LEAF%",
        "BRANCH%"
    );
    for b in &a.buckets {
        let o = &b.own;
        let indent = "  ".repeat(b.nesting.saturating_sub(1));
        let last = b.name.rsplit('/').next().unwrap_or(&b.name);
        let name = format!("{indent}{last}");
        if b.inline {
            let _ = writeln!(
                s,
                "{name:<32} {:>9} {:>5} {:>7} {:>8} {:>8} {:>12} {:>12} {:>7} {:>7}",
                o.key_n, o.depth, "inline", "", "", "", o.inline_bucket_inuse, "", ""
            );
        } else {
            let _ = writeln!(
                s,
                "{name:<32} {:>9} {:>5} {:>7} {:>8} {:>8} {:>12} {:>12} {:>7} {:>7}",
                o.key_n,
                o.depth,
                o.branch_page_n,
                o.leaf_page_n,
                o.branch_overflow_n + o.leaf_overflow_n,
                o.branch_alloc + o.leaf_alloc,
                o.branch_inuse + o.leaf_inuse,
                pct(b.leaf_fill_pct),
                pct(b.branch_fill_pct)
            );
        }
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The etcd MVCC section.
pub fn render_etcd(s: &mut String, e: &EtcdAnalysis) {
    etcd_state(s, e);
    etcd_keys(s, e);
    etcd_top_keys(s, e);
    etcd_prefixes(s, e);
    etcd_histogram(s, e);
    etcd_capacity(s, e);
}

/// The state: revisions, compaction, raft index, alarms, members.
fn etcd_state(s: &mut String, e: &EtcdAnalysis) {
    let _ = writeln!(s, "\netcd");
    let _ = writeln!(s, "  current revision     {}", e.current_revision);
    let _ = writeln!(
        s,
        "  compacted revision   {} (finishedCompactRev {}, scheduledCompactRev {}{})",
        e.compacted_revision,
        opt(&e.finished_compact_rev),
        opt(&e.scheduled_compact_rev),
        e.interrupted_compaction.map_or(String::new(), |r| format!(
            "; INTERRUPTED compaction at {r}"
        ))
    );
    let _ = writeln!(
        s,
        "  key revisions        {} .. {}",
        opt(&e.first_key_revision),
        opt(&e.last_key_revision)
    );
    let _ = writeln!(
        s,
        "  consistent index     {}   term {}{}",
        opt(&e.consistent_index),
        opt(&e.term),
        e.storage_version
            .as_ref()
            .map_or(String::new(), |v| format!("   storage version {v}"))
    );
    let alarms = if e.alarms.is_empty() {
        "none".to_string()
    } else {
        e.alarms
            .iter()
            .map(|a| format!("{} on member {}", a.alarm, a.member_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(s, "  alarms               {alarms}");
    let _ = writeln!(
        s,
        "  members              {} ({} removed); leases {}",
        e.members, e.members_removed, e.leases
    );
}

/// The key counts and revisions per key.
fn etcd_keys(s: &mut String, e: &EtcdAnalysis) {
    let k = &e.keys;
    let _ = writeln!(
        s,
        "  revision entries     {} ({})",
        k.entries,
        size(k.entry_bytes)
    );
    let _ = writeln!(
        s,
        "  distinct keys        {}: {} live, {} deleted",
        k.distinct_keys,
        k.live_keys,
        k.distinct_keys - k.live_keys
    );
    let _ = writeln!(s, "  tombstones           {}", k.tombstones);
    let _ = writeln!(
        s,
        "  historical revisions {} ({}); latest revisions {}",
        k.historical_revisions,
        size(k.history_bytes),
        size(k.latest_bytes)
    );
    let d = &e.revisions_per_key;
    let _ = writeln!(
        s,
        "  revisions per key    p50 {}, p90 {}, p99 {}, max {}, mean {:.2}",
        d.p50, d.p90, d.p99, d.max, d.mean
    );
}

/// The top keys by revisions and by bytes.
fn etcd_top_keys(s: &mut String, e: &EtcdAnalysis) {
    for (title, list) in [
        ("top keys by revisions", &e.top_keys_by_revisions),
        ("top keys by bytes", &e.top_keys_by_bytes),
    ] {
        let _ = writeln!(s, "\n{title}");
        let _ = writeln!(s, "  {:>9} {:>12} {:>5}  KEY", "REVISIONS", "BYTES", "LIVE");
        for t in list {
            let _ = writeln!(
                s,
                "  {:>9} {:>12} {:>5}  {}",
                t.revisions,
                t.bytes,
                if t.live { "yes" } else { "no" },
                t.key
            );
        }
    }
}

/// The groups by prefix.
fn etcd_prefixes(s: &mut String, e: &EtcdAnalysis) {
    let _ = writeln!(s, "\nby prefix: {}", e.prefixes.grouping);
    let _ = writeln!(
        s,
        "  {:<40} {:>7} {:>7} {:>9} {:>12} {:>12}",
        "PREFIX", "KEYS", "LIVE", "REVISIONS", "LATEST B", "HISTORY B"
    );
    for g in &e.prefixes.groups {
        let _ = writeln!(
            s,
            "  {:<40} {:>7} {:>7} {:>9} {:>12} {:>12}",
            g.prefix, g.keys, g.live_keys, g.revisions, g.latest_bytes, g.history_bytes
        );
    }
}

/// The revision histogram.
fn etcd_histogram(s: &mut String, e: &EtcdAnalysis) {
    let _ = writeln!(s, "\nrevision histogram (entries by main revision)");
    let _ = writeln!(
        s,
        "  {:<17} {:>8} {:>10} {:>12}",
        "REVISIONS", "ENTRIES", "TOMBSTONES", "BYTES"
    );
    for b in &e.revision_histogram {
        let range = if b.first == b.last {
            b.first.to_string()
        } else {
            format!("{}-{}", b.first, b.last)
        };
        let _ = writeln!(
            s,
            "  {range:<17} {:>8} {:>10} {:>12}",
            b.entries, b.tombstones, b.bytes
        );
    }
}

/// The capacity table and the quota figures.
fn etcd_capacity(s: &mut String, e: &EtcdAnalysis) {
    let c = &e.capacity;
    let _ = writeln!(
        s,
        "\ncapacity (tombstone at R: {}; quota {})",
        c.tombstone_at_rev,
        size(c.quota_bytes)
    );
    let _ = writeln!(
        s,
        "  {:>10} {:>9} {:>12} {:>9} {:>12} {:>24} {:>14}",
        "COMPACT AT", "ENTRIES", "BYTES", "REMOVED", "REMOVED B", "FILE AFTER+DEFRAG", "HEADROOM"
    );
    for x in &c.candidates {
        let _ = writeln!(
            s,
            "  {:>10} {:>9} {:>12} {:>9} {:>12} {:>24} {:>14}{}",
            x.revision,
            x.remaining_entries,
            x.remaining_bytes,
            x.removed_entries,
            x.removed_bytes,
            x.remaining_file_size,
            x.headroom_bytes,
            if x.compacts { "" } else { "  (defrag only)" }
        );
    }
    let _ = writeln!(s, "  ({})", c.note);
    let _ = writeln!(
        s,
        "  file now             {}; headroom to the quota {} bytes",
        size(c.file_size),
        c.headroom_bytes
    );
    let _ = writeln!(
        s,
        "  growth               {:.1} entry bytes per revision over the uncompacted range",
        c.bytes_per_revision
    );
    let _ = writeln!(
        s,
        "  quota reached at     revision {} without compaction; {} after compacting at {} + \
         defrag (entry bytes only: page overhead brings it sooner)",
        opt(&c.quota_reached_at_revision),
        opt(&c.quota_reached_after_compaction_at_revision),
        e.current_revision
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(4096), "4096 B (4.0 KiB)");
        assert_eq!(size(3 << 20), "3145728 B (3.0 MiB)");
    }
}
