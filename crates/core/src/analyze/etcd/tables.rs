//! The per-key tables: revisions per key, the top keys, and the groups by prefix.

use std::collections::HashMap;

use crate::format::text::text_or_hex;

use super::*;

/// The group of a user key. Kubernetes keys `/registry/<resource>/...` (with an API group
/// segment, `/registry/<group.with.dots>/<resource>/...`) go by resource, and by
/// namespace when `by_namespace` and the key has a namespace segment (namespaced objects
/// are `<resource>/<namespace>/<name>`; cluster-scoped ones `<resource>/<name>`). Others go
/// by their first `depth` segments, `/` kept, with a trailing `/` when the key goes on.
pub fn group_of(key: &[u8], depth: usize, by_namespace: bool) -> String {
    if let Some(rest) = key.strip_prefix(b"/registry/") {
        let segs: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
        let (resource, after) = if segs.len() > 2 && segs[0].contains(&b'.') {
            (
                format!("{}/{}", text_or_hex(segs[0]), text_or_hex(segs[1])),
                &segs[2..],
            )
        } else {
            (text_or_hex(segs[0]), &segs[1..])
        };
        if by_namespace && after.len() >= 2 {
            return format!("registry:{resource}/{}", text_or_hex(after[0]));
        }
        return format!("registry:{resource}");
    }
    let depth = depth.max(1);
    let mut end = key.len();
    let mut seen = 0;
    for (i, &b) in key.iter().enumerate() {
        // A leading `/` does not end a segment.
        if b == b'/' && i > 0 {
            seen += 1;
            if seen == depth {
                end = i + 1;
                break;
            }
        }
    }
    text_or_hex(&key[..end])
}

/// Nearest-rank percentile of sorted `v`.
pub(super) fn percentile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The per-key tables of the analysis.
pub(super) struct Tables {
    pub(super) revisions_per_key: Distribution,
    pub(super) top_keys_by_revisions: Vec<TopKey>,
    pub(super) top_keys_by_bytes: Vec<TopKey>,
    pub(super) prefixes: Prefixes,
}

impl EtcdAnalysis {
    pub(super) fn tables(pass: &Pass, opts: &EtcdOptions) -> Tables {
        let mut counts: Vec<u64> = pass.keys.values().map(|a| a.revisions).collect();
        counts.sort_unstable();
        let n = counts.len();
        let revisions_per_key = Distribution {
            p50: percentile(&counts, 0.50),
            p90: percentile(&counts, 0.90),
            p99: percentile(&counts, 0.99),
            max: counts.last().copied().unwrap_or(0),
            mean: if n == 0 {
                0.0
            } else {
                pass.figures.entries as f64 / n as f64
            },
        };
        let top = |by: &dyn Fn(&KeyAcc) -> u64| -> Vec<TopKey> {
            let mut v: Vec<(&Box<[u8]>, &KeyAcc)> = pass.keys.iter().collect();
            v.sort_unstable_by(|a, b| by(b.1).cmp(&by(a.1)).then(a.0.cmp(b.0)));
            v.into_iter()
                .take(opts.top)
                .map(|(k, a)| TopKey {
                    key: text_or_hex(k),
                    revisions: a.revisions,
                    bytes: a.bytes,
                    live: !a.last_tombstone,
                })
                .collect()
        };
        let top_keys_by_revisions = top(&|a| a.revisions);
        let top_keys_by_bytes = top(&|a| a.bytes);
        let mut groups: HashMap<String, PrefixRow> = HashMap::new();
        for (k, a) in &pass.keys {
            let g = group_of(k, opts.prefix_depth, opts.by_namespace);
            let row = groups.entry(g).or_default();
            row.keys += 1;
            row.live_keys += u64::from(!a.last_tombstone);
            row.revisions += a.revisions;
            row.latest_bytes += a.last_bytes;
            row.history_bytes += a.bytes - a.last_bytes;
        }
        let mut groups: Vec<PrefixRow> = groups
            .into_iter()
            .map(|(prefix, r)| PrefixRow { prefix, ..r })
            .collect();
        groups.sort_unstable_by(|a, b| {
            (b.latest_bytes + b.history_bytes)
                .cmp(&(a.latest_bytes + a.history_bytes))
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        let prefixes = Prefixes {
            grouping: format!(
                "Kubernetes keys (/registry/...) by resource{}; other keys by their first {} \
                 path segment(s)",
                if opts.by_namespace {
                    " and namespace"
                } else {
                    ""
                },
                opts.prefix_depth.max(1)
            ),
            groups,
        };
        Tables {
            revisions_per_key,
            top_keys_by_revisions,
            top_keys_by_bytes,
            prefixes,
        }
    }
}
