//! `boltpack analyze --html FILE`: one self-contained HTML page (inline CSS and SVG, no
//! scripts, no external resources) with the file figures and, for etcd files, charts of the
//! revision histogram, the prefix breakdown and the capacity curve.

use std::fmt::Write;

use crate::summary::Summary;
use crate::tables::{self, Table, opt};
use crate::units::{short, size};
use boltpack::analyze::Analysis;
use boltpack::analyze::etcd::EtcdAnalysis;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 10.0;

/// A count for an axis label (pages, entries).
fn count(v: f64) -> String {
    format!("{}", v.round() as u64)
}

/// Vertical bars: (label for the tooltip, value); `fmt` labels the Y axis.
fn bar_chart(
    title: &str,
    bars: &[(String, f64)],
    x_first: &str,
    x_last: &str,
    fmt: fn(f64) -> String,
) -> String {
    let mut s = String::new();
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0);
    let plot_w = W - LEFT - 10.0;
    let plot_h = H - TOP - BOTTOM;
    let bw = plot_w / bars.len().max(1) as f64;
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img"><title>{}</title>"#,
        esc(title)
    );
    axes(&mut s, max, fmt);
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = v / max * plot_h;
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4e79a7"><title>{}</title></rect>"##,
            LEFT + i as f64 * bw,
            TOP + plot_h - h,
            (bw - 1.0).max(0.5),
            h,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="11">{}</text><text x="{}" y="{}" font-size="11" text-anchor="end">{}</text></svg>"#,
        H - 8.0,
        esc(x_first),
        W - 10.0,
        H - 8.0,
        esc(x_last)
    );
    s
}

/// Y axis with three labels.
fn axes(s: &mut String, max: f64, fmt: fn(f64) -> String) {
    let plot_h = H - TOP - BOTTOM;
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#888"/><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#888"/>"##,
        TOP + plot_h,
        TOP + plot_h,
        W - 10.0,
        TOP + plot_h
    );
    for f in [0.0, 0.5, 1.0] {
        let y = TOP + plot_h - f * plot_h;
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"#,
            LEFT - 4.0,
            y + 3.0,
            esc(&fmt(max * f))
        );
    }
}

/// Horizontal stacked bars (latest, history) per prefix.
fn prefix_chart(e: &EtcdAnalysis) -> String {
    let rows: Vec<_> = e.prefixes.groups.iter().take(20).collect();
    let max = rows
        .iter()
        .map(|g| (g.latest_bytes + g.history_bytes) as f64)
        .fold(0.0, f64::max)
        .max(1.0);
    let row_h = 18.0;
    let label_w = 260.0;
    let h = rows.len() as f64 * row_h + 30.0;
    let plot_w = W - label_w - 90.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img"><title>bytes by prefix</title>"#
    );
    for (i, g) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let lw = g.latest_bytes as f64 / max * plot_w;
        let hw = g.history_bytes as f64 / max * plot_w;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect x="{label_w}" y="{y:.1}" width="{lw:.1}" height="{:.1}" fill="#4e79a7"><title>latest {} bytes</title></rect><rect x="{:.1}" y="{y:.1}" width="{hw:.1}" height="{:.1}" fill="#f28e2b"><title>history {} bytes</title></rect><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"##,
            label_w - 6.0,
            y + 12.0,
            esc(&g.prefix),
            row_h - 4.0,
            g.latest_bytes,
            label_w + lw,
            row_h - 4.0,
            g.history_bytes,
            label_w + lw + hw + 4.0,
            y + 12.0,
            esc(&short((g.latest_bytes + g.history_bytes) as f64))
        );
    }
    let y = rows.len() as f64 * row_h + 20.0;
    let _ = write!(
        s,
        r##"<rect x="{label_w}" y="{:.1}" width="10" height="10" fill="#4e79a7"/><text x="{:.1}" y="{y:.1}" font-size="11">latest revision</text><rect x="{:.1}" y="{:.1}" width="10" height="10" fill="#f28e2b"/><text x="{:.1}" y="{y:.1}" font-size="11">history</text></svg>"##,
        y - 9.0,
        label_w + 14.0,
        label_w + 130.0,
        y - 9.0,
        label_w + 144.0
    );
    s
}

/// Remaining entry bytes by compaction revision (line) and the planner's file sizes
/// (points), on one byte axis.
fn capacity_chart(e: &EtcdAnalysis) -> String {
    let c = &e.capacity;
    let (lo, hi) = match (c.curve.first(), c.curve.last()) {
        (Some(a), Some(b)) => (a.revision, b.revision),
        _ => (e.current_revision, e.current_revision),
    };
    let span = (hi - lo).max(1) as f64;
    let max = c
        .curve
        .iter()
        .map(|p| p.remaining_bytes as f64)
        .chain(c.candidates.iter().map(|x| x.remaining_file_size as f64))
        .chain([c.file_size as f64, c.quota_bytes as f64])
        .fold(0.0, f64::max)
        .max(1.0);
    let plot_w = W - LEFT - 10.0;
    let plot_h = H - TOP - BOTTOM;
    let x = |r: i64| LEFT + (r - lo) as f64 / span * plot_w;
    let y = |v: f64| TOP + plot_h - v / max * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img"><title>capacity after compaction at R</title>"#
    );
    axes(&mut s, max, short);
    let pts: Vec<String> = c
        .curve
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.revision), y(p.remaining_bytes as f64)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#4e79a7" stroke-width="2"/>"##,
        pts.join(" ")
    );
    let fy = y(c.file_size as f64);
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{fy:.1}" x2="{:.1}" y2="{fy:.1}" stroke="#e15759" stroke-dasharray="4 3"><title>file now: {} bytes</title></line>"##,
        W - 10.0,
        c.file_size
    );
    let qy = y(c.quota_bytes as f64);
    let _ = write!(
        s,
        r##"<line class="quota" x1="{LEFT}" y1="{qy:.1}" x2="{:.1}" y2="{qy:.1}" stroke="#b07aa1" stroke-width="2"><title>quota: {} bytes</title></line><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#b07aa1">quota {}</text>"##,
        W - 10.0,
        c.quota_bytes,
        W - 12.0,
        qy - 4.0,
        esc(&short(c.quota_bytes as f64))
    );
    let cp: Vec<String> = c
        .candidates
        .iter()
        .map(|k| {
            format!(
                "{:.1},{:.1}",
                x(k.revision),
                y(k.remaining_file_size as f64)
            )
        })
        .collect();
    let _ = write!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#59a14f" stroke-width="1.5"/>"##,
        cp.join(" ")
    );
    for k in &c.candidates {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#59a14f"><title>compact at {}: file {} bytes, {} entries, {} entry bytes</title></circle>"##,
            x(k.revision),
            y(k.remaining_file_size as f64),
            k.revision,
            k.remaining_file_size,
            k.remaining_entries,
            k.remaining_bytes
        );
    }
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="11">R = {lo}</text><text x="{}" y="{}" font-size="11" text-anchor="end">R = {hi}</text><text class="axis-title" x="{:.1}" y="{}" font-size="11" text-anchor="middle">compaction revision R</text><text class="axis-title" x="12" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {:.1})">bytes</text></svg>"#,
        H - 8.0,
        W - 10.0,
        H - 8.0,
        LEFT + plot_w / 2.0,
        H - 8.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    s
}

/// A treemap of the key groups: each group's rectangle sized by its bytes, split into its
/// latest revisions (dark) and its history (light); slice-and-dice, the largest first.
fn treemap(e: &EtcdAnalysis) -> String {
    let groups: Vec<_> = e
        .prefixes
        .groups
        .iter()
        .filter(|g| g.latest_bytes + g.history_bytes > 0)
        .collect();
    let total: f64 = groups
        .iter()
        .map(|g| (g.latest_bytes + g.history_bytes) as f64)
        .sum::<f64>()
        .max(1.0);
    let (w, h) = (W, 320.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="treemap" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>bytes by key group: latest revisions (dark) and history (light)</title>"#
    );
    // Slice-and-dice: lay the groups along the longer side of what is left.
    let (mut x, mut y, mut rw, mut rh) = (0.0f64, 0.0f64, w, h);
    let mut left = total;
    for g in &groups {
        let bytes = (g.latest_bytes + g.history_bytes) as f64;
        let share = bytes / left.max(1.0);
        let (gx, gy, gw, gh) = if rw >= rh {
            let gw = rw * share;
            let r = (x, y, gw, rh);
            x += gw;
            rw -= gw;
            r
        } else {
            let gh = rh * share;
            let r = (x, y, rw, gh);
            y += gh;
            rh -= gh;
            r
        };
        left -= bytes;
        let latest = g.latest_bytes as f64 / bytes.max(1.0);
        let tip = format!(
            "{}: {} latest, {} history, {} keys",
            g.prefix,
            short(g.latest_bytes as f64),
            short(g.history_bytes as f64),
            g.keys
        );
        let _ = write!(
            s,
            r##"<g><title>{}</title><rect x="{gx:.1}" y="{gy:.1}" width="{:.1}" height="{gh:.1}" fill="#c6dbef" stroke="#fff"/><rect x="{gx:.1}" y="{gy:.1}" width="{:.1}" height="{gh:.1}" fill="#4e79a7"/>"##,
            esc(&tip),
            gw.max(0.0),
            (gw * latest).max(0.0)
        );
        if gw > 70.0 && gh > 16.0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                gx + 3.0,
                gy + 13.0,
                esc(&format!("{} {}", g.prefix, short(bytes)))
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

fn row(s: &mut String, cells: &[String]) {
    s.push_str("<tr>");
    for c in cells {
        let _ = write!(s, "<td>{c}</td>");
    }
    s.push_str("</tr>\n");
}

fn head(s: &mut String, cells: &[&str]) {
    s.push_str("<tr>");
    for c in cells {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr>\n");
}

fn etcd_section(s: &mut String, e: &EtcdAnalysis) {
    etcd_state_table(s, e);
    etcd_histogram(s, e);
    etcd_prefixes(s, e);
    etcd_top_keys(s, e);
    etcd_capacity(s, e);
}

/// The state and key figures, as a table.
fn etcd_state_table(s: &mut String, e: &EtcdAnalysis) {
    let _ = write!(s, "<h2>etcd</h2>\n<table>\n");
    for (name, v) in tables::state(e) {
        row(s, &[esc(name), esc(&v)]);
    }
    s.push_str("</table>\n");
}

/// A table with its headings; a row's note joins its first cell.
fn table(s: &mut String, t: &Table) {
    s.push_str("<table>\n");
    let heads: Vec<&str> = t.columns.iter().map(|c| c.html).collect();
    head(s, &heads);
    for r in &t.rows {
        let mut cells: Vec<String> = r.cells.iter().map(|c| esc(c)).collect();
        if let (Some(n), Some(first)) = (r.note, cells.first_mut()) {
            first.push(' ');
            first.push_str(&esc(n));
        }
        row(s, &cells);
    }
    s.push_str("</table>\n");
}

/// The revision histogram chart.
fn etcd_histogram(s: &mut String, e: &EtcdAnalysis) {
    s.push_str("<h3>Revision histogram (entry bytes by main revision)</h3>\n");
    let bars: Vec<(String, f64)> = e
        .revision_histogram
        .iter()
        .map(|b| {
            (
                format!(
                    "revisions {}-{}: {} entries ({} tombstones), {} bytes",
                    b.first, b.last, b.entries, b.tombstones, b.bytes
                ),
                b.bytes as f64,
            )
        })
        .collect();
    let (f, l) = (
        e.revision_histogram.first().map_or(0, |b| b.first),
        e.revision_histogram.last().map_or(0, |b| b.last),
    );
    s.push_str(&bar_chart(
        "revision histogram",
        &bars,
        &format!("rev {f}"),
        &format!("rev {l}"),
        short,
    ));
}

/// The groups by prefix: chart and table.
fn etcd_prefixes(s: &mut String, e: &EtcdAnalysis) {
    let _ = write!(
        s,
        "\n<h3>By prefix</h3>\n<p>{}</p>\n",
        esc(&e.prefixes.grouping)
    );
    s.push_str(&prefix_chart(e));
    s.push('\n');
    s.push_str("<h4>Treemap of bytes: latest revisions (dark) and history (light)</h4>\n");
    s.push_str(&treemap(e));
    s.push('\n');
    table(s, &tables::prefixes(e));
    if e.kinds.iter().any(|k| k.encoding != "other") {
        s.push_str("\n<h3>By object kind</h3>\n");
        table(s, &tables::kinds(e));
    }
}

/// The top keys by revisions and by bytes.
fn etcd_top_keys(s: &mut String, e: &EtcdAnalysis) {
    for (title, list) in [
        ("Top keys by revisions", &e.top_keys_by_revisions),
        ("Top keys by bytes", &e.top_keys_by_bytes),
    ] {
        let _ = writeln!(s, "<h3>{title}</h3>");
        table(s, &tables::top_keys(list));
    }
}

/// The capacity chart and the candidates table.
fn etcd_capacity(s: &mut String, e: &EtcdAnalysis) {
    let c = &e.capacity;
    let _ = write!(
        s,
        "<h3>Capacity</h3>\n<p>Blue: entry bytes that remain after compacting at R (tombstone at R: \
         {}). Green: file size after compaction + defrag (the writer's planner). Red dashed: the \
         file now ({}). Quota {}: headroom {} bytes now, {} bytes after compacting at {} + defrag; \
         at {:.1} entry bytes per revision the quota is reached at revision {} ({} after \
         compaction).</p>\n",
        esc(&c.tombstone_at_rev),
        esc(&size(c.file_size)),
        esc(&size(c.quota_bytes)),
        c.headroom_bytes,
        c.headroom_after_compaction_bytes,
        e.current_revision,
        c.bytes_per_revision,
        opt(&c.quota_reached_at_revision),
        opt(&c.quota_reached_after_compaction_at_revision)
    );
    s.push_str(&capacity_chart(e));
    s.push('\n');
    table(s, &tables::capacity(e));
    let _ = writeln!(s, "<p>{}</p>", esc(&c.note));
}

/// Who made the report, of what, when: its header.
pub struct Made<'a> {
    pub path: &'a str,
    /// `2026-12-03 06:00:00 UTC`.
    pub time: &'a str,
    pub version: &'a str,
}

pub fn render(a: &Analysis, summary: &Summary, made: &Made<'_>) -> String {
    let mut s = String::new();
    s.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>boltpack analyze</title>\n\
         <style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}\
         svg{display:block;margin:1em 0}pre.summary{background:#f4f4f4;padding:1em;font-size:0.95em}</style></head><body>\n<h1>boltpack analyze</h1>\n",
    );
    let _ = writeln!(
        s,
        "<p class=\"made\"><b>{}</b> &middot; {} &middot; boltpack {}</p>",
        esc(made.path),
        esc(made.time),
        esc(made.version)
    );
    let _ = writeln!(
        s,
        "<h2>Summary</h2>\n<pre class=\"summary\" id=\"summary\">{}</pre>",
        esc(summary.render().trim_start_matches("summary\n"))
    );
    let f = &a.file;
    s.push_str("<h2>File</h2>\n<table>\n");
    for (name, v) in [
        ("file size", size(f.file_size)),
        ("page size", f.page_size.to_string()),
        ("high-water mark", format!("{} pages", f.hwm)),
        (
            "live / free / unreachable pages",
            format!(
                "{} / {} / {}",
                f.live.pages, f.free.pages, f.unreachable.pages
            ),
        ),
        (
            "defragmented",
            format!(
                "{}{}",
                if f.defrag_estimate.exact { "" } else { "~" },
                size(f.defrag_estimate.bytes)
            ),
        ),
        ("problems", a.problems.to_string()),
    ] {
        row(&mut s, &[esc(name), esc(&v)]);
    }
    s.push_str("</table>\n<h3>Free pages by tenth of the file</h3>\n");
    let bars: Vec<(String, f64)> = f
        .free_by_tenth
        .iter()
        .map(|t| {
            (
                format!(
                    "pages {}-{}: {} free",
                    t.first_page,
                    t.end_page.saturating_sub(1),
                    t.free.pages
                ),
                t.free.pages as f64,
            )
        })
        .collect();
    s.push_str(&bar_chart(
        "free pages by tenth",
        &bars,
        "page 0",
        &format!("page {}", f.hwm),
        count,
    ));
    s.push_str("\n<h3>Buckets</h3>\n<table>\n");
    head(
        &mut s,
        &["bucket", "keys", "depth", "inline", "bytes in use"],
    );
    for b in &a.buckets {
        row(
            &mut s,
            &[
                esc(&b.name),
                b.own.key_n.to_string(),
                b.own.depth.to_string(),
                if b.inline { "yes" } else { "no" }.into(),
                (b.own.branch_inuse + b.own.leaf_inuse + b.own.inline_bucket_inuse).to_string(),
            ],
        );
    }
    s.push_str("</table>\n");
    if let Some(e) = &a.etcd {
        etcd_section(&mut s, e);
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_renders_fixture() {
        assert_eq!(esc("<a&'\">"), "&lt;a&amp;&#39;&quot;&gt;");
        let p = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("testdata/etcd/db");
        let db = boltpack::Db::open(&p, boltpack::OpenOptions { lock: false }).unwrap();
        let a = Analysis::gather_with(&db, &Default::default()).unwrap();
        let summary = Summary::of(&p, &a, true);
        let made = Made {
            path: "testdata/etcd/db",
            time: "2026-12-03 00:00:00 UTC",
            version: "0",
        };
        let h = render(&a, &summary, &made);
        // Free pages, revision histogram, prefixes, treemap, capacity.
        assert_eq!(h.matches("<svg").count(), 5);
        assert!(h.contains("id=\"summary\"") && h.contains("class=\"quota\""));
        assert!(!h.contains("src=") && !h.contains("href=") && !h.contains("url("));
        assert!(!h.contains("<script"));
    }
}
