//! `analyze -w prometheus`: the headline figures in the Prometheus text exposition format
//! (version 0.0.4), for node_exporter's textfile collector, so a nightly job over backups
//! feeds a dashboard. Every metric is a gauge named `boltpack_..._<unit>` and labelled with
//! the file's path; sizes are in bytes.

use std::fmt::Write;

use boltpack::analyze::Analysis;

use crate::summary::Summary;

/// One gauge family: its name, help and samples (extra labels, value).
struct Family<'a> {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, &'a str)>, f64)>,
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(a: &Analysis, s: &Summary) -> String {
    let mut fams: Vec<Family<'_>> = vec![
        gauge(
            "boltpack_db_file_size_bytes",
            "Size of the db file.",
            s.file_size_bytes as f64,
        ),
        gauge(
            "boltpack_db_in_use_bytes",
            "Bytes of the pages the tree uses.",
            s.in_use_bytes as f64,
        ),
        gauge(
            "boltpack_db_defrag_reclaimable_bytes",
            "What a defragmented copy gives back.",
            s.defrag_saving_bytes as f64,
        ),
        gauge(
            "boltpack_db_problems",
            "Problems met while walking the file (run boltpack check).",
            s.problems as f64,
        ),
    ];
    if let (Some(e), Some(es)) = (&a.etcd, &s.etcd) {
        fams.push(gauge(
            "boltpack_etcd_quota_bytes",
            "The backend quota the figures assume.",
            es.quota_bytes as f64,
        ));
        fams.push(gauge(
            "boltpack_etcd_quota_headroom_bytes",
            "Quota minus file size (negative: over the quota).",
            es.headroom_bytes as f64,
        ));
        if let Some(saving) = es.compaction_saving_bytes {
            fams.push(gauge(
                "boltpack_etcd_compaction_reclaimable_bytes",
                "What compacting at the current revision and defragmenting gives back.",
                saving as f64,
            ));
        }
        fams.push(gauge(
            "boltpack_etcd_current_revision",
            "The current revision.",
            e.current_revision as f64,
        ));
        fams.push(gauge(
            "boltpack_etcd_compacted_revision",
            "The compacted revision (-1: never compacted).",
            e.compacted_revision as f64,
        ));
        let k = &e.keys;
        fams.push(gauge(
            "boltpack_etcd_revision_entries",
            "Entries of the key bucket (every revision kept).",
            k.entries as f64,
        ));
        fams.push(gauge(
            "boltpack_etcd_live_keys",
            "Keys whose newest revision is a put.",
            k.live_keys as f64,
        ));
        fams.push(gauge(
            "boltpack_etcd_distinct_keys",
            "Distinct keys, deleted ones included.",
            k.distinct_keys as f64,
        ));
        fams.push(Family {
            name: "boltpack_etcd_alarm",
            help: "1 for each alarm raised in the alarm bucket.",
            samples: e
                .alarms
                .iter()
                .map(|al| {
                    (
                        vec![
                            ("alarm", al.alarm.as_str()),
                            ("member", al.member_id.as_str()),
                        ],
                        1.0,
                    )
                })
                .collect(),
        });
        let mut bytes = Family {
            name: "boltpack_etcd_prefix_bytes",
            help: "Bytes of the key bucket entries of each key group (as analyze groups).",
            samples: Vec::new(),
        };
        let mut keys = Family {
            name: "boltpack_etcd_prefix_keys",
            help: "Keys of each key group, deleted ones included.",
            samples: Vec::new(),
        };
        for g in &e.prefixes.groups {
            let p = g.prefix.as_str();
            bytes.samples.push((
                vec![("prefix", p), ("revisions", "latest")],
                g.latest_bytes as f64,
            ));
            bytes.samples.push((
                vec![("prefix", p), ("revisions", "history")],
                g.history_bytes as f64,
            ));
            keys.samples.push((vec![("prefix", p)], g.keys as f64));
        }
        fams.push(bytes);
        fams.push(keys);
    }
    let path = escape(&s.path);
    let mut out = String::new();
    for f in fams.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, v) in &f.samples {
            let mut l = format!("path=\"{path}\"");
            for (k, val) in labels {
                let _ = write!(l, ",{k}=\"{}\"", escape(val));
            }
            let _ = writeln!(out, "{}{{{l}}} {v}", f.name);
        }
    }
    out
}

fn gauge<'a>(name: &'static str, help: &'static str, v: f64) -> Family<'a> {
    Family {
        name,
        help,
        samples: vec![(Vec::new(), v)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
