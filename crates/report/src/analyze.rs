//! `boltpack analyze` for people: file figures, then one table row per bucket.

use std::fmt::Write;

use boltpack::analyze::Amount;
use boltpack::analyze::Analysis;
use boltpack::analyze::etcd::EtcdAnalysis;

use crate::summary::Summary;
use crate::tables::{self, Align, Column, Table, opt};
use crate::units::size;

fn amount(a: &Amount) -> String {
    format!("{} pages, {}", a.pages, size(a.bytes))
}

fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_string(), |p| format!("{p:.1}%"))
}

/// The whole text report: the summary first, then the file figures, the buckets, the etcd
/// section, and last the rarely needed table of free space by tenth of the file.
pub fn render(a: &Analysis, summary: &Summary) -> String {
    let mut s = summary.render();
    s.push('\n');
    render_file(&mut s, a);
    render_buckets(&mut s, a);
    if a.problems > 0 {
        let _ = writeln!(
            s,
            "\n{} met while walking the file; figures may be off: run `boltpack check`",
            plural(a.problems, "problem")
        );
    }
    if let Some(e) = &a.etcd {
        render_etcd(&mut s, e);
    }
    render_free_by_tenth(&mut s, a);
    s
}

/// `1 problem`, `2 problems`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
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

/// Free pages by tenth of the file: where the holes are (a detail for the curious).
fn render_free_by_tenth(s: &mut String, a: &Analysis) {
    let _ = writeln!(s, "\nfree by tenth of the file");
    let _ = writeln!(s, "  {:<21} {:>10} {:>14}", "PAGES", "FREE", "PAST HWM");
    for t in &a.file.free_by_tenth {
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

/// The etcd MVCC section.
pub fn render_etcd(s: &mut String, e: &EtcdAnalysis) {
    let _ = writeln!(s, "\netcd");
    for (label, value) in tables::state(e) {
        let _ = writeln!(s, "  {label:<20} {value}");
    }
    for (title, list) in [
        ("top keys by revisions", &e.top_keys_by_revisions),
        ("top keys by bytes", &e.top_keys_by_bytes),
    ] {
        let _ = writeln!(s, "\n{title}");
        table(s, &tables::top_keys(list));
    }
    let _ = writeln!(s, "\nby prefix: {}", e.prefixes.grouping);
    table(s, &tables::prefixes(e));
    if e.kinds.iter().any(|k| k.encoding != "other") {
        let _ = writeln!(
            s,
            "\nby object kind (apiVersion and kind of each key's newest value)"
        );
        table(s, &tables::kinds(e));
    }
    let _ = writeln!(s, "\nrevision histogram (entries by main revision)");
    table(s, &tables::histogram(e));
    etcd_capacity(s, e);
}

/// A table as aligned text: a heading line, then a line per row.
fn table(s: &mut String, t: &Table) {
    let heads: Vec<String> = t.columns.iter().map(|c| c.text.to_string()).collect();
    line(s, t.columns, &heads, None);
    for r in &t.rows {
        line(s, t.columns, &r.cells, r.note);
    }
}

fn line(s: &mut String, columns: &[Column], cells: &[String], note: Option<&str>) {
    s.push_str("  ");
    for (i, (c, v)) in columns.iter().zip(cells).enumerate() {
        if i > 0 {
            s.push_str(&" ".repeat(c.gap));
        }
        let _ = match c.align {
            Align::Left => write!(s, "{v:<w$}", w = c.width),
            Align::Right => write!(s, "{v:>w$}", w = c.width),
        };
    }
    if let Some(n) = note {
        let _ = write!(s, "  {n}");
    }
    s.push('\n');
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
    table(s, &tables::capacity(e));
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
