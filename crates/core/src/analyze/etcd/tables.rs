//! The per-key tables: revisions per key, the top keys, and the groups by prefix.

use std::collections::HashMap;

use crate::format::text::text_or_hex;

use super::kinds::{Encoding, ObjectKind};

use super::*;

/// Where kube-apiserver keeps objects: its default `--etcd-prefix`, and OpenShift's two.
/// Another prefix comes from `--k8s-prefix` ([`EtcdOptions::k8s_prefixes`]).
pub const K8S_PREFIXES: [&str; 3] = ["/registry/", "/kubernetes.io/", "/openshift.io/"];

/// The group of a user key, as a key prefix one can paste into `etcdctl get --prefix`.
///
/// Keys under a Kubernetes prefix `P` follow kube-apiserver's storage layout:
/// `P<resource>/<namespace>/<name>` for namespaced objects, `P<resource>/<name>` for
/// cluster-scoped ones; an API group (its name holds a dot: `apiregistration.k8s.io`,
/// `crd.projectcalico.org`) comes first as `P<group>/<resource>/...`; `services` are two
/// resources, `P services/specs/` and `P services/endpoints/`. Such a key goes by
/// `P<resource>/` (with the group), and by `P<resource>/<namespace>/` when `by_namespace`
/// and the key has both a namespace and a name after the resource. Other keys
/// (`compact_rev_key`, other applications') go by their first `depth` path segments, `/`
/// kept, with a trailing `/` when the key goes on.
pub fn group_of(key: &[u8], depth: usize, by_namespace: bool, k8s: &[String]) -> String {
    let (by, span) = group_span(key, depth, by_namespace, k8s);
    group_name(&key[..span], by.map(|i| k8s[i].as_str()))
}

/// How [`group_of`] groups `key`: by the Kubernetes prefix `k8s[i]` (`Some(i)`) or by its
/// first path segments (`None`), and the length of the key's prefix the group's name is
/// made of ([`group_name`]): keys that agree on both are in one group. No allocation: the
/// pass asks once per key.
pub(super) fn group_span(
    key: &[u8],
    depth: usize,
    by_namespace: bool,
    k8s: &[String],
) -> (Option<usize>, usize) {
    for (i, p) in k8s.iter().enumerate() {
        if let Some(rest) = key.strip_prefix(p.as_bytes())
            && let Some(n) = k8s_span(rest, by_namespace)
        {
            return (Some(i), p.len() + n);
        }
    }
    let depth = depth.max(1);
    let mut seen = 0;
    for (i, &b) in key.iter().enumerate() {
        // A leading `/` does not end a segment.
        if b == b'/' && i > 0 {
            seen += 1;
            if seen == depth {
                return (None, i + 1);
            }
        }
    }
    (None, key.len())
}

/// The name of the group whose keys start with `span` ([`group_span`]), grouped by the
/// Kubernetes prefix `k8s` (each segment after it shown as text, or hex when it is not
/// UTF-8) or by path segments (`None`: the whole span so).
pub(super) fn group_name(span: &[u8], k8s: Option<&str>) -> String {
    let Some(prefix) = k8s else {
        return text_or_hex(span);
    };
    let mut g = prefix.to_string();
    let segs = span.get(prefix.len()..).unwrap_or_default();
    // Each segment of the span ends with a `/`: the last piece of the split is empty.
    for s in segs
        .split(|&b| b == b'/')
        .take(segs.iter().filter(|&&b| b == b'/').count())
    {
        g.push_str(&text_or_hex(s));
        g.push('/');
    }
    g
}

/// The length of the segments of `rest` (each with the `/` after it) that name its group
/// under kube-apiserver's layout: the resource (with its API group, or `services/specs`
/// and `services/endpoints`), and the namespace when `by_namespace` and a name follows it;
/// `None` when `rest` is not an object's key (no segment after the resource).
fn k8s_span(rest: &[u8], by_namespace: bool) -> Option<usize> {
    let mut segs = rest.split(|&b| b == b'/');
    let s0 = segs.next().unwrap_or_default();
    let (s1, s2, s3) = (segs.next(), segs.next(), segs.next());
    let api_group = s0.contains(&b'.');
    let services = s0 == b"services" && s1.is_some_and(|s| s == b"specs" || s == b"endpoints");
    // The resource's segments' length (with their `/`s) and whether one is empty, the
    // first segment after them, and whether another follows that.
    let (mut n, empty, after, more) = match s1 {
        Some(s1) if s2.is_some() && (api_group || services) => (
            s0.len() + s1.len() + 2,
            s0.is_empty() || s1.is_empty(),
            s2,
            s3.is_some(),
        ),
        _ => (s0.len() + 1, s0.is_empty(), s1, s2.is_some()),
    };
    let after = after?;
    if empty {
        return None;
    }
    if by_namespace && more && !after.is_empty() {
        n += after.len() + 1;
    }
    Some(n)
}

/// Keys by the object kind of their newest put, largest first.
fn kinds(pass: &Pass) -> Vec<KindRow> {
    let mut rows: HashMap<u16, KindRow> = HashMap::new();
    for a in pass.keys.values() {
        let row = rows.entry(a.last_kind).or_default();
        row.keys += 1;
        row.live_keys += u64::from(!a.last_tombstone);
        row.latest_bytes += u64::from(a.last_bytes);
        row.history_bytes += a.bytes - u64::from(a.last_bytes);
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let none = (Encoding::Other, Vec::new(), Vec::new());
    let rows = rows.into_iter().map(|(id, r)| {
        let (enc, api, kind) = pass.kinds.seen.get(usize::from(id)).unwrap_or(&none);
        (
            ObjectKind {
                encoding: *enc,
                api_version: text(api),
                kind: text(kind),
            },
            r,
        )
    });
    let mut v: Vec<KindRow> = rows
        .into_iter()
        .map(|(k, r)| KindRow {
            api_version: k.api_version,
            kind: k.kind,
            encoding: k.encoding.label().to_string(),
            ..r
        })
        .collect();
    v.sort_unstable_by(|a, b| {
        (b.latest_bytes + b.history_bytes)
            .cmp(&(a.latest_bytes + a.history_bytes))
            .then_with(|| (&a.api_version, &a.kind).cmp(&(&b.api_version, &b.kind)))
    });
    v
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
    pub(super) kinds: Vec<KindRow>,
}

/// The bytes of `a`'s key, read from the file again (a report names only a few keys).
fn key_bytes<'d>(db: &'d Db, a: &KeyAcc) -> &'d [u8] {
    db.bytes_at(a.key_at, a.key_len as usize)
        .unwrap_or_default()
}

/// The `n` keys with the largest `by`, ties in key order: as a sort of every key by
/// (`by` descending, key) would give, but reading only the tied keys' bytes from the file
/// (in file order), not every key's.
fn top_keys<'d, 'p>(
    db: &'d Db,
    pass: &'p Pass,
    n: usize,
    by: &dyn Fn(&KeyAcc) -> u64,
) -> Vec<(&'d [u8], &'p KeyAcc)> {
    let accs: Vec<&KeyAcc> = pass.keys.values().collect();
    top_n(accs, n, |a| by(a), |a| a.key_at, |a| key_bytes(db, a))
}

/// The `n` items largest by `by` then smallest by `bytes`, sorted so, each with its
/// bytes. `bytes` is called only for the items above the `n`th's figure and those that
/// tie with it, in the order of `at` (where the bytes are: the file is read in order).
fn top_n<'d, T: Copy>(
    mut v: Vec<T>,
    n: usize,
    by: impl Fn(&T) -> u64,
    at: impl Fn(&T) -> u64,
    bytes: impl Fn(&T) -> &'d [u8],
) -> Vec<(&'d [u8], T)> {
    if n == 0 || v.is_empty() {
        return Vec::new();
    }
    let mut top: Vec<(&[u8], T)> = if n < v.len() {
        // The n-th largest figure: items above it are in, items at it compete by bytes.
        v.select_nth_unstable_by(n - 1, |a, b| by(b).cmp(&by(a)));
        let t = by(&v[n - 1]);
        let mut top: Vec<(&[u8], T)> = v
            .iter()
            .filter(|a| by(a) > t)
            .map(|a| (bytes(a), *a))
            .collect();
        let mut tied: Vec<T> = v.iter().filter(|a| by(a) == t).copied().collect();
        drop(v);
        tied.sort_unstable_by_key(&at);
        let room = n - top.len();
        // The `room` smallest tied ones: a max-heap of the best so far.
        let mut best: std::collections::BinaryHeap<(&[u8], usize)> =
            std::collections::BinaryHeap::with_capacity(room + 1);
        for (i, a) in tied.iter().enumerate() {
            best.push((bytes(a), i));
            if best.len() > room {
                best.pop();
            }
        }
        top.extend(best.into_iter().map(|(k, i)| (k, tied[i])));
        top
    } else {
        v.iter().map(|a| (bytes(a), *a)).collect()
    };
    top.sort_unstable_by(|a, b| by(&b.1).cmp(&by(&a.1)).then(a.0.cmp(b.0)));
    top
}

/// Keys by their group, largest first.
fn prefixes(pass: &Pass, opts: &EtcdOptions) -> Prefixes {
    let names = pass.groups.names();
    let mut rows = vec![PrefixRow::default(); names.len()];
    for a in pass.keys.values() {
        let Some(row) = rows.get_mut(a.group as usize) else {
            continue;
        };
        row.keys += 1;
        row.live_keys += u64::from(!a.last_tombstone);
        row.revisions += u64::from(a.revisions);
        row.latest_bytes += u64::from(a.last_bytes);
        row.history_bytes += a.bytes - u64::from(a.last_bytes);
    }
    let mut groups: Vec<PrefixRow> = rows
        .into_iter()
        .zip(names)
        .filter(|(r, _)| r.keys > 0)
        .map(|(r, name)| PrefixRow {
            prefix: name.to_string(),
            ..r
        })
        .collect();
    groups.sort_unstable_by(|a, b| {
        (b.latest_bytes + b.history_bytes)
            .cmp(&(a.latest_bytes + a.history_bytes))
            .then_with(|| a.prefix.cmp(&b.prefix))
    });
    Prefixes {
        grouping: format!(
            "Kubernetes objects ({}) by resource{}; other keys by their first {} path \
             segment{}",
            opts.k8s_prefixes.join(", "),
            if opts.by_namespace {
                " and namespace"
            } else {
                ""
            },
            opts.prefix_depth.max(1),
            if opts.prefix_depth > 1 { "s" } else { "" }
        ),
        groups,
    }
}

impl EtcdAnalysis {
    pub(super) fn tables(db: &Db, pass: &Pass, opts: &EtcdOptions) -> Tables {
        let mut counts: Vec<u64> = pass.keys.values().map(|a| u64::from(a.revisions)).collect();
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
        drop(counts);
        let top = |by: &dyn Fn(&KeyAcc) -> u64| -> Vec<TopKey> {
            top_keys(db, pass, opts.top, by)
                .into_iter()
                .map(|(k, a)| TopKey {
                    key: text_or_hex(k),
                    revisions: u64::from(a.revisions),
                    bytes: a.bytes,
                    live: !a.last_tombstone,
                })
                .collect()
        };
        let top_keys_by_revisions = top(&|a| u64::from(a.revisions));
        let top_keys_by_bytes = top(&|a| a.bytes);
        let prefixes = prefixes(pass, opts);
        Tables {
            revisions_per_key,
            top_keys_by_revisions,
            top_keys_by_bytes,
            prefixes,
            kinds: kinds(pass),
        }
    }
}

#[cfg(test)]
mod top_tests {
    use super::top_n;

    /// `top_n` against a sort of everything, on figures with many ties (and keys that
    /// share prefixes), for every `n` around the ties' edges.
    #[test]
    fn top_n_is_the_head_of_a_full_sort() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let keys: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("/k/{}/{}", rnd() % 7, i * 7919 % 300).into_bytes())
            .collect();
        let items: Vec<(u64, usize)> = (0..300).map(|i| (rnd() % 5, i)).collect();
        let by = |t: &(u64, usize)| t.0;
        let at = |t: &(u64, usize)| (t.1 as u64 * 31) % 300;
        let bytes = |t: &(u64, usize)| &keys[t.1][..];
        let mut all: Vec<(&[u8], (u64, usize))> = items.iter().map(|t| (bytes(t), *t)).collect();
        all.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        for n in [0, 1, 2, 10, 59, 60, 61, 150, 299, 300, 301] {
            let want: Vec<_> = all.iter().take(n).cloned().collect();
            assert_eq!(top_n(items.clone(), n, by, at, bytes), want, "n = {n}");
        }
    }
}
