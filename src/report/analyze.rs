//! `boltpack analyze` for people: file figures, then one table row per bucket.

use std::fmt::Write;

use crate::analyze::Analysis;
use crate::analyze::frag::Amount;

/// Bytes with a binary-unit figure beside them when large.
fn size(bytes: u64) -> String {
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
        "defragmented     ~{} pages = {}, {} smaller",
        d.pages,
        size(d.bytes),
        size(d.saving_bytes)
    );
    let _ = writeln!(s, "  ({})", d.method);

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
    if a.problems > 0 {
        let _ = writeln!(
            s,
            "\n{} problems met while walking the file; figures may be off: run `boltpack check`",
            a.problems
        );
    }
    s
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
