//! `salvage` for people: what was damaged, what was kept and recovered, what is lost.

use std::fmt::Write;
use std::path::Path;

use boltpack::salvage::SalvageReport;
use boltpack::writer::CompactSummary;

pub fn render(r: &SalvageReport, s: &CompactSummary, dst: &Path) -> String {
    let mut o = String::new();
    if let Some(root) = &r.rebuilt_root {
        let _ = writeln!(
            o,
            "root         {}: read through an earlier copy at page {} (byte offset {}), the best of {} candidates{}",
            root.why,
            root.page,
            root.offset,
            root.candidates,
            root.consistent_index
                .map(|i| format!(" (its meta/consistent_index {i})"))
                .unwrap_or_default()
        );
    }
    if r.damaged.is_empty() {
        let _ = writeln!(
            o,
            "damage       none that loses an entry: the copy holds every one (`boltpack check` lists any other problem)"
        );
    }
    for d in &r.damaged {
        let at = match (d.page, d.offset) {
            (Some(p), Some(off)) => format!("page {p} (byte offset {off})"),
            _ => "a sub-bucket".to_string(),
        };
        let _ = writeln!(
            o,
            "damaged      bucket {}: {at}: {}; keys {} .. {} unread",
            d.bucket,
            d.why,
            d.from.as_deref().unwrap_or("(start)"),
            d.to.as_deref().unwrap_or("(end)")
        );
    }
    let _ = writeln!(
        o,
        "kept         {} entries read from the tree",
        r.entries_from_tree
    );
    match r.compact_revision {
        Some(c) => {
            let _ = writeln!(
                o,
                "recovered    {} key-bucket entries from intact leaf pages outside the tree (above the compact revision {c}; at or below it only those whose key's next version lies above it)",
                r.key_entries_recovered
            );
        }
        None if !r.lost_revision_ranges.is_empty() => {
            let _ = writeln!(
                o,
                "recovered    nothing from pages outside the tree: the compact revision is unknown (`meta` is lost), and below it an old page could bring a deleted key back. If you know it (`boltpack hashkv` of another member or of a backup prints it; 0 if the cluster never compacted), run again with --compact-revision R"
            );
        }
        None => {}
    }
    if !r.conflicting_revisions.is_empty() {
        let _ = writeln!(
            o,
            "conflicts    revisions {:?} were found with two different values: left out",
            r.conflicting_revisions
        );
    }
    for l in &r.lost_revision_ranges {
        let below = r.compact_revision.is_some_and(|c| l.from <= c);
        let range = match l.to {
            Some(t) => format!("{}..={t}", l.from),
            None => format!(
                "{} and on (the end of the bucket: how far it went is unknown)",
                l.from
            ),
        };
        let _ = writeln!(
            o,
            "lost         key bucket revisions {range}{}",
            if below {
                " (in part at or below the compact revision: only survivors were there)"
            } else {
                ""
            }
        );
    }
    for d in r.lost_key_ranges.iter().filter(|d| d.bucket != "key") {
        let _ = writeln!(
            o,
            "lost         bucket {} keys {} .. {} (mutable data is never taken from pages outside the tree)",
            d.bucket,
            d.from.as_deref().unwrap_or("(start)"),
            d.to.as_deref().unwrap_or("(end)")
        );
    }
    let _ = writeln!(
        o,
        "output       {} ({} pages, {} bytes; re-read and verified)",
        dst.display(),
        s.dst_pages,
        s.dst_size
    );
    let _ = writeln!(
        o,
        "result       {}",
        if r.complete {
            "complete: nothing was lost"
        } else {
            "PARTIAL: the ranges above are lost (exit 5)"
        }
    );
    o
}
