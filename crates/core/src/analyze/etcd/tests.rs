//! The etcd analysis against the committed fixture, synthetic histories and the
//! compaction plan.

use super::*;
use crate::OpenOptions;
use crate::etcd::CompactionPlan;
use crate::etcd::META_BUCKET;
use crate::etcd::decode_alarm;
use crate::writer::CompactOptions;
use crate::writer::Transform;

fn fixture() -> Db {
    let p = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("testdata/etcd/db");
    Db::open(&p, OpenOptions { lock: false }).unwrap()
}

#[test]
fn groups() {
    let k8s: Vec<String> = K8S_PREFIXES.iter().map(|p| p.to_string()).collect();
    let g = |key: &[u8], depth, ns| group_of(key, depth, ns, &k8s);
    for (key, by_resource, by_namespace) in [
        (
            &b"/registry/pods/default/p1"[..],
            "/registry/pods/",
            "/registry/pods/default/",
        ),
        (
            b"/registry/minions/node-1",
            "/registry/minions/",
            "/registry/minions/",
        ),
        (
            b"/registry/masterleases/127.0.0.1",
            "/registry/masterleases/",
            "/registry/masterleases/",
        ),
        (
            b"/registry/ranges/serviceips",
            "/registry/ranges/",
            "/registry/ranges/",
        ),
        (
            b"/registry/services/specs/default/kubernetes",
            "/registry/services/specs/",
            "/registry/services/specs/default/",
        ),
        (
            b"/registry/services/endpoints/kube-system/kube-dns",
            "/registry/services/endpoints/",
            "/registry/services/endpoints/kube-system/",
        ),
        (
            b"/registry/apiregistration.k8s.io/apiservices/v1.",
            "/registry/apiregistration.k8s.io/apiservices/",
            "/registry/apiregistration.k8s.io/apiservices/",
        ),
        (
            b"/registry/crd.projectcalico.org/networkpolicies/prod/deny-all",
            "/registry/crd.projectcalico.org/networkpolicies/",
            "/registry/crd.projectcalico.org/networkpolicies/prod/",
        ),
        (
            b"/kubernetes.io/deployments/openshift-etcd/etcd-operator",
            "/kubernetes.io/deployments/",
            "/kubernetes.io/deployments/openshift-etcd/",
        ),
        (
            b"/openshift.io/routes/web/app",
            "/openshift.io/routes/",
            "/openshift.io/routes/web/",
        ),
        // Not an object: no name after the resource.
        (b"/registry/health", "/registry/", "/registry/"),
        (b"compact_rev_key", "compact_rev_key", "compact_rev_key"),
    ] {
        assert_eq!(
            g(key, 1, false),
            by_resource,
            "{}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(
            g(key, 1, true),
            by_namespace,
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(g(b"foo", 1, false), "foo");
    assert_eq!(g(b"a/b/c", 1, false), "a/");
    assert_eq!(g(b"a/b/c", 2, false), "a/b/");
    assert_eq!(g(b"/x/y/z", 1, false), "/x/");
    assert_eq!(g(b"/x/y/z", 5, false), "/x/y/z");
    // Another apiserver prefix, given with --k8s-prefix.
    let mine = ["/mycluster/".to_string()];
    assert_eq!(
        group_of(b"/mycluster/pods/ns/p", 1, true, &mine),
        "/mycluster/pods/ns/"
    );
}

#[test]
fn alarms_and_thresholds() {
    // memberID 0x1234, NOSPACE
    let a = decode_alarm(&[0x08, 0xb4, 0x24, 0x10, 0x01]);
    assert_eq!(
        (a.member_id.as_str(), a.alarm.as_str()),
        ("1234", "NOSPACE")
    );
    assert_eq!(threshold(5, true, Some(9), TombstoneAtRev::Keep), Some(6));
    assert_eq!(threshold(5, true, None, TombstoneAtRev::Drop), Some(5));
    assert_eq!(threshold(5, false, Some(9), TombstoneAtRev::Keep), Some(9));
    let mut h = ThresholdHistogram::new(vec![2, 4, 6]);
    for (d, b) in [
        (Some(1), 1),
        (Some(3), 10),
        (Some(4), 100),
        (Some(7), 1000),
        (None, 5),
    ] {
        h.add(d, b);
    }
    let c: Vec<_> = h
        .curve()
        .iter()
        .map(|p| (p.revision, p.remaining_bytes))
        .collect();
    assert_eq!(c, vec![(2, 1115), (4, 1005), (6, 1005)]);
    assert_eq!(percentile(&[1, 2, 3, 4], 0.5), 2);
    assert_eq!(percentile(&[1, 2, 3, 4], 0.99), 4);
    assert_eq!(spread(166, 218, 3), vec![166, 192, 218]);
}

/// What CompactionPlan keeps at R, counted directly.
fn plan_counts(db: &Db, r: i64, rule: TombstoneAtRev) -> (u64, u64) {
    let plan = CompactionPlan::build(db, r, rule).unwrap();
    let (mut n, mut b) = (0, 0);
    for e in key_bucket(db).unwrap().iter() {
        let e = e.unwrap();
        if plan.keeps(e.key).unwrap() {
            n += 1;
            b += (e.key.len() + e.value.len()) as u64;
        }
    }
    (n, b)
}

#[test]
fn curve_equals_compaction_plan_on_fixture() {
    let db = fixture();
    for rule in [TombstoneAtRev::Keep, TombstoneAtRev::Drop] {
        let opts = EtcdOptions {
            rule,
            curve_points: 1000,
            // Every revision from the compacted one to the current one.
            candidates: 60,
            ..EtcdOptions::default()
        };
        let a = EtcdAnalysis::gather(&db, &opts).unwrap().unwrap();
        assert_eq!(
            a.capacity.curve.len(),
            218 - 166 + 1,
            "one point per revision"
        );
        for p in &a.capacity.curve {
            let (n, b) = plan_counts(&db, p.revision, rule);
            assert_eq!(
                (p.remaining_entries, p.remaining_bytes),
                (n, b),
                "R {} {rule:?}",
                p.revision
            );
        }
        for c in &a.capacity.candidates {
            assert_eq!(
                c.remaining_file_size,
                planned_size(&db, c.revision, 166, rule).unwrap()
            );
        }
    }
}

#[test]
fn fixture_figures() {
    let db = fixture();
    let a = EtcdAnalysis::gather(&db, &EtcdOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!((a.current_revision, a.compacted_revision), (218, 166));
    assert_eq!(a.keys.live_keys, 97);
    assert_eq!(a.keys.entries, 135);
    assert_eq!(a.interrupted_compaction, None);
    assert_eq!(a.members, 1);
    let total: u64 = a.revision_histogram.iter().map(|b| b.entries).sum();
    assert_eq!(total, a.keys.entries);
    let rows: u64 = a.prefixes.groups.iter().map(|g| g.revisions).sum();
    assert_eq!(rows, a.keys.entries);
    assert_eq!(a.capacity.candidates.len(), 8);
    assert_eq!(a.capacity.candidates[0].revision, 166);
    assert_eq!(a.capacity.candidates.last().unwrap().revision, 218);
    // Nothing is removable at the compacted revision itself.
    assert_eq!(a.capacity.candidates[0].removed_entries, 0);
}

/// The fixture with an interrupted compaction (scheduledCompactRev 180 > finished 166)
/// and a NOSPACE alarm, written through the writer's transform.
#[test]
fn interrupted_compaction_and_alarm() {
    let db = fixture();
    let mut t = Transform::default();
    let sched = crate::etcd::RevisionKey {
        main: 180,
        sub: 0,
        tombstone: false,
    };
    t.set.insert(
        META_BUCKET.to_vec(),
        [(b"scheduledCompactRev".to_vec(), sched.to_bytes().to_vec())].into(),
    );
    t.set.insert(
        b"alarm".to_vec(),
        [(vec![0x08, 0xb4, 0x24, 0x10, 0x01], Vec::new())].into(),
    );
    let (bytes, _) = crate::writer::compact_to_vec(&db, &CompactOptions::default(), &t).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db");
    std::fs::write(&p, bytes).unwrap();
    let copy = Db::open(&p, OpenOptions { lock: false }).unwrap();
    let a = EtcdAnalysis::gather(&copy, &EtcdOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(a.finished_compact_rev, Some(166));
    assert_eq!(a.scheduled_compact_rev, Some(180));
    assert_eq!(a.interrupted_compaction, Some(180));
    // etcd 3.4.23 resumes it at start (180 <= current 218) and then enforces 180.
    assert_eq!((a.current_revision, a.compacted_revision), (218, 180));
    assert_eq!(
        a.alarms,
        vec![Alarm {
            member_id: "1234".into(),
            alarm: "NOSPACE".into()
        }]
    );
    // Candidates now start at 180.
    assert_eq!(a.capacity.candidates[0].revision, 180);
}

/// A synthetic history through the same threshold logic, against the key index rule.
#[test]
fn synthetic_history_matches_rule() {
    // put foo@2, put foo@3, put baz@4, del foo@5, put foo@6, put lk@7 (docs/format.md B5 example).
    let ops: [(i64, &[u8], bool); 6] = [
        (2, b"foo", false),
        (3, b"foo", false),
        (4, b"baz", false),
        (5, b"foo", true),
        (6, b"foo", false),
        (7, b"lk", false),
    ];
    for rule in [TombstoneAtRev::Keep, TombstoneAtRev::Drop] {
        let mut h = ThresholdHistogram::new((1..=7).collect());
        for (i, &(m, k, t)) in ops.iter().enumerate() {
            let next = ops[i + 1..].iter().find(|o| o.1 == k).map(|o| o.0);
            h.add(threshold(m, t, next, rule), 1);
        }
        let c: Vec<u64> = h.curve().iter().map(|p| p.remaining_entries).collect();
        // compact 4 keeps foo@3 and baz@4 plus 5, 6, 7 (foo@2 gone).
        assert_eq!(c[3], 5);
        // compact 5: foo's generation ended at 5; keep drops it all, keep-rule keeps
        // the tombstone.
        let at5 = if rule == TombstoneAtRev::Keep { 4 } else { 3 };
        assert_eq!(c[4], at5, "{rule:?}");
        assert_eq!(c[6], 3);
    }
}

/// The pass in two parts on two threads, merged, is the one-thread pass: the whole report,
/// at several tombstone rules and candidate counts, on both real etcd fixtures.
#[test]
fn the_split_pass_is_the_one_thread_pass() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/etcd"));
    for name in ["db", "snapshot.db"] {
        let db = Db::open(dir.join(name), crate::OpenOptions { lock: false }).unwrap();
        let root = crate::etcd::key_bucket(&db).unwrap().root_branch().unwrap();
        assert!(
            root.is_some_and(|r| r.count() >= 2),
            "{name}: no branch root to split"
        );
        for (rule, candidates) in [(TombstoneAtRev::Keep, 8), (TombstoneAtRev::Drop, 60)] {
            let report = |split_always| {
                let opts = EtcdOptions {
                    rule,
                    candidates,
                    split_always,
                    ..EtcdOptions::default()
                };
                let a = EtcdAnalysis::gather(&db, &opts).unwrap().unwrap();
                serde_json::to_string(&a).unwrap()
            };
            assert_eq!(report(true), report(false), "{name} {rule:?}");
        }
    }
}

/// Analyze in one walk (the page map's, split on two threads or not, the stats and the
/// pass watching it) is analyze by its walks apart, on the real fixtures (where the one
/// walk answers) and on garbled copies of them (where it answers or hands over).
#[test]
fn one_walk_is_the_walks_apart() {
    use crate::analyze::Analysis;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
    for rel in [
        "etcd/db",
        "etcd/snapshot.db",
        "bbolt/nested.db",
        "bbolt/flat.db",
    ] {
        let bytes = std::fs::read(format!("{root}{rel}")).unwrap();
        let same = |db: &Db, what: &str| {
            for split_always in [false, true] {
                let opts = EtcdOptions {
                    split_always,
                    ..EtcdOptions::default()
                };
                let one = Analysis::gather_with(db, &opts).map(|a| format!("{a:?}"));
                let apart = Analysis::gather_apart(db, &opts).map(|a| format!("{a:?}"));
                match (one, apart) {
                    (Ok(one), Ok(apart)) => assert_eq!(one, apart, "{what} split {split_always}"),
                    (one, apart) => assert_eq!(one.is_ok(), apart.is_ok(), "{what}"),
                }
            }
        };
        let db = Db::from_bytes(bytes.clone()).unwrap();
        same(&db, rel);
        if rel.starts_with("etcd/") {
            let walked = EtcdAnalysis::gather_in_walk(&db, &EtcdOptions::default(), |m, h| {
                crate::analyze::stats::bucket_stats_and_map_split(&db, m, h, true)
            });
            assert!(walked.unwrap().is_some(), "{rel}: the one walk answers");
        }
        let ps = db.page_size() as usize;
        for (at, bad) in
            crate::reader::garbled_copies(&bytes, ps, 0x9e37_79b9_7f4a_7c15, 30, 16, 255)
        {
            if let Ok(db) = Db::from_bytes(bad) {
                same(&db, &format!("{rel}, byte {at} garbled"));
            }
        }
    }
}

/// `group_of` (by the span of the key that names the group, as the pass interns it) is
/// what it was when it split every key into a vector of segments: the earlier code, kept
/// here as the oracle, over keys made of the layout's tricky pieces.
#[test]
fn group_spans_name_groups_as_before() {
    use crate::format::text::text_or_hex;
    fn before(key: &[u8], depth: usize, by_ns: bool, k8s: &[String]) -> String {
        for p in k8s {
            let Some(rest) = key.strip_prefix(p.as_bytes()) else {
                continue;
            };
            let segs: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
            let api_group = segs[0].contains(&b'.');
            let services = segs[0] == b"services"
                && segs
                    .get(1)
                    .is_some_and(|s| *s == b"specs" || *s == b"endpoints");
            let n = if segs.len() > 2 && (api_group || services) {
                2
            } else {
                1
            };
            let Some(after) = segs.get(n..) else { continue };
            if after.is_empty() || segs[..n].iter().any(|s| s.is_empty()) {
                continue;
            }
            let mut g = p.to_string();
            for s in &segs[..n] {
                g += &text_or_hex(s);
                g.push('/');
            }
            if by_ns && after.len() >= 2 && !after[0].is_empty() {
                g += &text_or_hex(after[0]);
                g.push('/');
            }
            return g;
        }
        let mut end = key.len();
        let mut seen = 0;
        for (i, &b) in key.iter().enumerate() {
            if b == b'/' && i > 0 {
                seen += 1;
                if seen == depth.max(1) {
                    end = i + 1;
                    break;
                }
            }
        }
        text_or_hex(&key[..end])
    }
    let pieces: [&[u8]; 11] = [
        b"/",
        b"registry",
        b"services",
        b"specs",
        b"endpoints",
        b"a.b",
        b"",
        b"ns",
        b"\xff",
        b"pods",
        b"/registry/",
    ];
    let k8s: Vec<String> = K8S_PREFIXES.iter().map(|p| p.to_string()).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let mut key = Vec::new();
        for _ in 0..(x % 7) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            key.extend_from_slice(pieces[(x % pieces.len() as u64) as usize]);
            if x.is_multiple_of(3) {
                key.push(b'/');
            }
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for depth in [0, 1, 2, 3] {
            for by_ns in [false, true] {
                assert_eq!(
                    group_of(&key, depth, by_ns, &k8s),
                    before(&key, depth, by_ns, &k8s),
                    "{key:?} depth {depth} by_ns {by_ns}"
                );
            }
        }
    }
}
