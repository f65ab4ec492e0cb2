//! `boltpack analyze` on etcd files: the `etcd` section of `--json`, `--html`, and the
//! capacity plan against `compact --dry-run`.
//!
//! Fixture trials (always run):
//! - `analyze --json` on `testdata/etcd/db` and `snapshot.db` has current 218, compacted 166
//!   and 97 live keys, the figures of `expected/facts.json` and `keys-only-current.json`;
//! - `--html FILE` writes one self-contained page with inline `<svg` charts;
//! - for every capacity candidate R, under both tombstone rules, `remaining_file_size` equals
//!   `boltpack compact --dry-run --revision R --json`'s `summary.dst_size`, and the entries
//!   the curve says are removed equal the compact report's `revisions_removed`;
//! - `--prefix-depth` and `--by-namespace` regroup; a plain bbolt file has no `etcd` section.
//!
//! Live trials (`live_etcd::analyze::*`, need etcd 3.4 + etcdctl): the fixture restored
//! into a real etcd, and a fresh history with an online compaction saved by `snapshot save`:
//! live keys equal etcdctl's `get "" --prefix --keys-only -w json` count, the current
//! revision equals `endpoint status`'s, the compacted revision equals `endpoint hashkv`'s
//! `compact_revision`, and etcd refuses `get --rev compacted-1` as compacted. Without etcd
//! they are ignored with a NOTE on stderr; with BOLTPACK_REQUIRE_PEERS=1 that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{boltpack, etcd_version, gate_peer, path_str as s, repo};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

fn tmp() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("analyze-etcd");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json_of(o: &Output, what: &str) -> Result<Value, Failed> {
    if !o.status.success() {
        return Err(format!(
            "{what}: exit {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&o.stdout)?)
}

fn analyze(db: &Path, extra: &[&str]) -> Result<Value, Failed> {
    let mut args = vec!["analyze", s(db), "--no-lock", "--json"];
    args.extend(extra);
    let a = json_of(&boltpack(&args), &format!("analyze {}", db.display()))?;
    Ok(a["etcd"].clone())
}

fn read_json(p: &Path) -> Result<Value, Failed> {
    Ok(serde_json::from_slice(&std::fs::read(p)?)?)
}

fn fixture(name: &str) -> PathBuf {
    common::testdata(&format!("etcd/{name}"))
}

fn facts_figures(file: &str) -> Result<(), Failed> {
    let facts = read_json(&fixture("expected/facts.json"))?;
    let keys = read_json(&fixture("expected/keys-only-current.json"))?;
    let e = analyze(&fixture(file), &[])?;
    assert_eq!(e["current_revision"], facts["current_revision"], "{file}");
    assert_eq!(
        e["compacted_revision"], facts["compacted_revision"],
        "{file}"
    );
    assert_eq!(e["keys"]["live_keys"], facts["live_key_count"], "{file}");
    assert_eq!(e["keys"]["live_keys"], keys["count"], "{file}");
    assert_eq!(e["finished_compact_rev"], 166);
    assert_eq!(e["scheduled_compact_rev"], 166);
    assert_eq!(e["interrupted_compaction"], Value::Null);
    // testdata/etcd/README.md: 135 entries in the key bucket after compaction.
    assert_eq!(e["keys"]["entries"], 135);
    assert_eq!(e["last_key_revision"], facts["final_key_revision"]);
    assert_eq!(e["members"], 1);
    assert!(e["alarms"].as_array().unwrap().is_empty());
    // The big value is the top key by bytes.
    assert_eq!(e["top_keys_by_bytes"][0]["key"], facts["big_key"]);
    let hist: u64 = e["revision_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["entries"].as_u64().unwrap())
        .sum();
    assert_eq!(hist, 135);
    let c = &e["capacity"];
    assert_eq!(c["quota_bytes"], 2u64 << 30);
    assert_eq!(c["candidates"].as_array().unwrap().len(), 8);
    Ok(())
}

fn html() -> Result<(), Failed> {
    let out = tmp().join("report.html");
    let _ = std::fs::remove_file(&out);
    let o = boltpack(&["analyze", s(&fixture("db")), "--no-lock", "--html", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h = std::fs::read_to_string(&out)?;
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(h.contains("<svg"), "no inline SVG");
    assert!(
        h.matches("<svg").count() >= 3,
        "histogram, prefixes, capacity"
    );
    for bad in ["<script", "src=", "href=", "url(", "@import"] {
        assert!(!h.contains(bad), "external resource or script: {bad}");
    }
    // The human output is still printed to stdout.
    assert!(String::from_utf8_lossy(&o.stdout).contains("capacity"));
    Ok(())
}

fn capacity_vs_dry_run(file: &str, rule: &str) -> Result<(), Failed> {
    let db = fixture(file);
    let e = analyze(&db, &["--tombstone-at-rev", rule])?;
    let entries = e["keys"]["entries"].as_u64().unwrap();
    let cands = e["capacity"]["candidates"].as_array().unwrap().clone();
    assert!(!cands.is_empty());
    for c in &cands {
        let r = c["revision"].as_i64().unwrap().to_string();
        // A candidate at or below the compacted revision is a defrag only: `compact`
        // refuses that R (as etcd does), so its size is the plain copy's.
        let at: &[&str] = if c["compacts"] == true {
            &["--revision", &r]
        } else {
            &[]
        };
        let args = [
            &["compact", s(&db), "--no-lock", "--dry-run"][..],
            at,
            &["--tombstone-at-rev", rule, "--json"],
        ]
        .concat();
        let o = boltpack(&args);
        let d = json_of(&o, &format!("compact --dry-run --revision {r}"))?;
        // The db's pages: a snapshot's copy also carries the 32-byte SHA-256 trailer, which
        // `snapshot restore` strips, so it is not part of the size etcd then uses.
        let pages = d["summary"]["dst_pages"].as_u64().unwrap();
        let page_size = d["summary"]["page_size_bytes"].as_u64().unwrap();
        assert_eq!(
            c["remaining_file_size_bytes"],
            pages * page_size,
            "{file} R {r} {rule}: file size"
        );
        assert_eq!(
            c["removed_entries"], d["summary"]["revisions_removed"],
            "{file} R {r} {rule}: removed entries"
        );
        assert_eq!(
            c["remaining_entries"].as_u64().unwrap() + c["removed_entries"].as_u64().unwrap(),
            entries
        );
        // The curve holds the same point.
        let p = e["capacity"]["curve"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["revision"] == c["revision"])
            .cloned()
            .ok_or("candidate not on the curve")?;
        assert_eq!(p["remaining_bytes"], c["remaining_bytes"]);
    }
    Ok(())
}

fn grouping() -> Result<(), Failed> {
    let groups = |extra: &[&str]| -> Result<Vec<String>, Failed> {
        let e = analyze(&fixture("db"), extra)?;
        Ok(e["prefixes"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["prefix"].as_str().unwrap().to_string())
            .collect())
    };
    let plain = groups(&[])?;
    assert!(plain.contains(&"/registry/pods/".to_string()));
    assert!(plain.contains(&"a/".to_string()));
    let ns = groups(&["--by-namespace"])?;
    assert!(ns.contains(&"/registry/pods/default/".to_string()));
    assert!(
        ns.contains(&"/registry/masterleases/".to_string()),
        "cluster-scoped"
    );
    let deep = groups(&["--prefix-depth", "2"])?;
    assert!(deep.contains(&"a/b/".to_string()));
    Ok(())
}

fn not_etcd() -> Result<(), Failed> {
    let db = repo().join("testdata/bbolt/deletes.db");
    let o = boltpack(&["analyze", s(&db), "--no-lock", "--json"]);
    let a = json_of(&o, "analyze deletes.db")?;
    assert!(a.get("etcd").is_none());
    assert!(a.get("file").is_some());
    Ok(())
}

// ---------------------------------------------------------------- live etcd

/// Runs under `bash -c` with the work dir as $1: restores or creates a member, writes
/// what etcdctl says to files, saves a snapshot for the fresh history.
const LIVE_SCRIPT: &str = r#"
set -euo pipefail
source "$2/tests/peer/etcd-lib.sh"
W=$1
answers() {
    etcdctl_local get "" --prefix --keys-only -w json > "$W/$1-keys.json"
    etcdctl_local endpoint status -w json > "$W/$1-status.json"
    etcdctl_local endpoint hashkv -w json > "$W/$1-hashkv.json"
    if etcdctl_local get foo --rev="$2" > "$W/$1-below.txt" 2>&1; then
        echo "exit=0" >> "$W/$1-below.txt"
    else
        echo "exit=1" >> "$W/$1-below.txt"
    fi
}
case "$3" in
restore)
    etcd_restore_and_start "$2/testdata/etcd/db" "$W/restore"
    answers restore 165
    etcd_stop
    ;;
fresh)
    etcd_start "$W/fresh/data"
    for i in $(seq 0 29); do
        etcdctl_local put "/registry/pods/ns$((i % 3))/p$i" "v$i" > /dev/null
    done
    for j in 1 2 3 4 5; do
        for i in 0 1 2; do etcdctl_local put "app/k$i" "x$j" > /dev/null; done
    done
    etcdctl_local del "/registry/pods/ns0/p0" > /dev/null
    etcdctl_local del --prefix "/registry/pods/ns1/" > /dev/null
    etcdctl_local put gone 1 > /dev/null
    etcdctl_local del gone > /dev/null
    rev=$(etcdctl_local endpoint status -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
    etcdctl_local compact "$rev" --physical > /dev/null
    for i in 0 1 2 3; do etcdctl_local put "app/k$i" "y$i" > /dev/null; done
    etcdctl_local del "app/k1" > /dev/null
    answers fresh $((rev - 1))
    echo "$rev" > "$W/fresh-compacted.txt"
    etcdctl_local snapshot save "$W/fresh.db" > /dev/null
    etcd_stop
    ;;
k8s)
    etcd_start "$W/k8s/data"
    while read -r k; do etcdctl_local put "$k" v > /dev/null; done <<'KEYS'
/registry/pods/nsa/p1
/registry/pods/nsa/p2
/registry/pods/nsa/p3
/registry/pods/nsa/p4
/registry/pods/nsa/p5
/registry/pods/nsb/p1
/registry/pods/nsb/p2
/registry/pods/nsb/p3
/registry/pods/nsb/p4
/registry/pods/nsb/p5
/registry/services/specs/default/kubernetes
/registry/services/specs/kube-system/kube-dns
/registry/services/endpoints/default/kubernetes
/registry/services/endpoints/kube-system/kube-dns
/registry/minions/node-1
/registry/minions/node-2
/registry/apiregistration.k8s.io/apiservices/v1.
/registry/apiregistration.k8s.io/apiservices/v1.apps
/registry/crd.projectcalico.org/ippools/default-pool
/registry/crd.projectcalico.org/networkpolicies/prod/deny-all
/registry/masterleases/10.0.0.1
/registry/ranges/serviceips
/kubernetes.io/deployments/openshift-etcd/etcd-operator
/openshift.io/routes/web/app
/mycluster/pods/ns/p
compact_rev_key
app/config
KEYS
    for i in 1 2 3; do etcdctl_local put /registry/pods/nsb/p2 "v$i" > /dev/null; done
    etcdctl_local del /registry/pods/nsa/p1 > /dev/null
    etcdctl_local del /registry/minions/node-2 > /dev/null
    etcdctl_local get "" --prefix --keys-only -w json > "$W/k8s-keys.json"
    etcd_stop
    ;;
esac
"#;

fn live(kind: &'static str, db_name: &'static str) -> Result<(), Failed> {
    let w = tmp().join(format!("live-{kind}"));
    let _ = std::fs::remove_dir_all(&w);
    std::fs::create_dir_all(&w)?;
    let o = Command::new("timeout")
        .args(["--kill-after=20", "300", "bash", "-c", LIVE_SCRIPT, "live"])
        .arg(&w)
        .arg(repo())
        .arg(kind)
        .output()?;
    if !o.status.success() {
        return Err(format!(
            "live {kind} script failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let db = if db_name == "fixture" {
        fixture("db")
    } else {
        w.join(db_name)
    };
    let e = analyze(&db, &[])?;
    let keys = read_json(&w.join(format!("{kind}-keys.json")))?;
    let status = read_json(&w.join(format!("{kind}-status.json")))?;
    let hashkv = read_json(&w.join(format!("{kind}-hashkv.json")))?;
    let count = keys["count"].as_u64().unwrap_or(0);
    assert_eq!(
        e["keys"]["live_keys"].as_u64(),
        Some(count),
        "{kind}: live keys vs etcdctl get --prefix --keys-only count"
    );
    assert_eq!(
        e["current_revision"], status[0]["Status"]["header"]["revision"],
        "{kind}: current revision vs endpoint status"
    );
    assert_eq!(
        e["compacted_revision"], hashkv[0]["HashKV"]["compact_revision"],
        "{kind}: compacted revision vs endpoint hashkv"
    );
    let below = std::fs::read_to_string(w.join(format!("{kind}-below.txt")))?;
    assert!(
        below.contains("exit=1") && below.contains("compacted"),
        "{kind}: etcd must refuse the revision below the compacted one: {below}"
    );
    if kind == "fresh" {
        let rev: i64 = std::fs::read_to_string(w.join("fresh-compacted.txt"))?
            .trim()
            .parse()?;
        assert_eq!(e["compacted_revision"].as_i64(), Some(rev));
        // One tombstone survives: app/k1's, deleted after the compaction; those of p0,
        // ns1/* and `gone` went with it.
        assert_eq!(e["keys"]["tombstones"], 1);
    }
    Ok(())
}

/// Groups of a key space shaped like kube-apiserver's, written by a real etcd: every
/// label is a prefix that `etcdctl get --prefix` answers with exactly the group's live keys,
/// and the key and live-key counts are exact.
fn live_k8s() -> Result<(), Failed> {
    use base64::Engine;
    let w = tmp().join("live-k8s");
    let _ = std::fs::remove_dir_all(&w);
    std::fs::create_dir_all(&w)?;
    let o = Command::new("timeout")
        .args(["--kill-after=20", "300", "bash", "-c", LIVE_SCRIPT, "live"])
        .arg(&w)
        .arg(repo())
        .arg("k8s")
        .output()?;
    if !o.status.success() {
        return Err(format!(
            "live k8s script failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let live: Vec<String> = read_json(&w.join("k8s-keys.json"))?["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(kv["key"].as_str().unwrap())
                .unwrap();
            String::from_utf8(b).unwrap()
        })
        .collect();
    let db = w.join("k8s/data/member/snap/db");
    for (extra, expected) in [
        (
            &["--k8s-prefix", "/mycluster"][..],
            &[
                ("/registry/pods/", 10, 9),
                ("/registry/services/specs/", 2, 2),
                ("/registry/services/endpoints/", 2, 2),
                ("/registry/minions/", 2, 1),
                ("/registry/apiregistration.k8s.io/apiservices/", 2, 2),
                ("/registry/crd.projectcalico.org/ippools/", 1, 1),
                ("/registry/crd.projectcalico.org/networkpolicies/", 1, 1),
                ("/registry/masterleases/", 1, 1),
                ("/registry/ranges/", 1, 1),
                ("/kubernetes.io/deployments/", 1, 1),
                ("/openshift.io/routes/", 1, 1),
                ("/mycluster/pods/", 1, 1),
                ("compact_rev_key", 1, 1),
                ("app/", 1, 1),
            ][..],
        ),
        (
            &["--by-namespace"][..],
            &[
                ("/registry/pods/nsa/", 5, 4),
                ("/registry/pods/nsb/", 5, 5),
                ("/registry/services/specs/default/", 1, 1),
                ("/registry/services/endpoints/kube-system/", 1, 1),
                ("/registry/minions/", 2, 1),
                (
                    "/registry/crd.projectcalico.org/networkpolicies/prod/",
                    1,
                    1,
                ),
                ("/registry/crd.projectcalico.org/ippools/", 1, 1),
                ("/kubernetes.io/deployments/openshift-etcd/", 1, 1),
                ("/openshift.io/routes/web/", 1, 1),
                ("/mycluster/", 1, 1),
            ][..],
        ),
    ] {
        let e = analyze(&db, extra)?;
        let groups = e["prefixes"]["groups"].as_array().unwrap();
        for &(label, keys, live_keys) in expected {
            let g = groups
                .iter()
                .find(|g| g["prefix"] == label)
                .ok_or_else(|| format!("{extra:?}: no group {label}: {groups:?}"))?;
            assert_eq!(g["keys"], keys, "{extra:?} {label}: keys");
            assert_eq!(g["live_keys"], live_keys, "{extra:?} {label}: live keys");
            let by_prefix = live.iter().filter(|k| k.starts_with(label)).count();
            assert_eq!(
                by_prefix, live_keys,
                "{label}: etcdctl get --prefix {label}"
            );
        }
    }
    Ok(())
}

/// Debian's `chromium` (`.ci/run` installs it), or why there is none.
fn chromium() -> Result<PathBuf, String> {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(o) = Command::new(name).arg("--version").output()
            && o.status.success()
        {
            return Ok(PathBuf::from(name));
        }
    }
    Err("chromium not installed (apt-get install chromium)".into())
}

/// The `--html` report rendered by a real headless Chromium: its DOM has the summary with
/// the figures, the charts (the capacity chart with its quota line and axis titles, the
/// treemap with a rectangle per group), the file name, time and version; a screenshot is
/// kept as `target/tmp/analyze-etcd/report.png`.
fn html_in_chromium(browser: PathBuf) -> Result<(), Failed> {
    let dir = tmp();
    let report = dir.join("report.html");
    let _ = std::fs::remove_file(&report);
    let db = fixture("db");
    let o = boltpack(&[
        "analyze",
        s(&db),
        "--no-lock",
        "--html",
        s(&report),
        "--quota-bytes",
        "8MiB",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let url = format!("file://{}", report.canonicalize()?.display());
    let run = |extra: &[&str]| -> Result<std::process::Output, Failed> {
        Ok(Command::new("timeout")
            .arg("120")
            .arg(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .args(extra)
            .arg(&url)
            .output()?)
    };
    let dom = run(&["--dump-dom"])?;
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    for want in [
        "id=\"summary\"",
        "class=\"quota\"",
        "compaction revision R",
        "class=\"treemap\"",
        "/registry/configmaps/",
        "testdata/etcd/db",
        "boltpack 0.1.0",
        "headroom",
    ] {
        assert!(dom.contains(want), "the rendered DOM lacks {want}");
    }
    assert!(dom.matches("<svg").count() >= 4, "charts");
    let treemap = &dom[dom.find("class=\"treemap\"").unwrap()..];
    let treemap = &treemap[..treemap.find("</svg>").unwrap()];
    assert!(
        treemap.matches("<rect").count() >= 8,
        "a rectangle pair per group"
    );
    let png = dir.join("report.png");
    let _ = std::fs::remove_file(&png);
    let shot = run(&[
        &format!("--screenshot={}", png.display()),
        "--window-size=1280,3000",
    ])?;
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    assert!(
        std::fs::metadata(&png)?.len() > 10_000,
        "a screenshot of the page"
    );
    Ok(())
}

/// The Prometheus client's wheel that `.ci/run` downloads (imported from the zip).
fn prometheus_parser() -> Result<PathBuf, String> {
    let dir = repo().join("target/peers/pyprom");
    std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}: run .ci/run", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            format!(
                "no prometheus_client wheel in {}: run .ci/run",
                dir.display()
            )
        })
}

/// `analyze -w prometheus` parses with the Prometheus client's own parser, every family
/// is a gauge named boltpack_*, and the figures are those of `--json`.
fn prometheus(wheel: PathBuf) -> Result<(), Failed> {
    let db = fixture("db");
    let o = boltpack(&["analyze", s(&db), "-w", "prometheus"]);
    assert_eq!(o.status.code(), Some(0));
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    assert f.type == "gauge" and f.name.startswith("boltpack_"), (f.name, f.type)
    for smp in f.samples:
        out.setdefault(smp.name, []).append([smp.labels, smp.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .env("PYTHONPATH", &wheel)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&o.stdout)?;
    let parsed = child.wait_with_output()?;
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let m: Value = serde_json::from_slice(&parsed.stdout)?;
    let a = json_of(&boltpack(&["analyze", s(&db), "--json"]), "analyze")?;
    let one = |name: &str| m[name][0][1].as_f64().unwrap();
    assert_eq!(
        one("boltpack_db_file_size_bytes"),
        a["file"]["file_size_bytes"].as_f64().unwrap()
    );
    assert_eq!(
        one("boltpack_etcd_live_keys"),
        a["etcd"]["keys"]["live_keys"].as_f64().unwrap()
    );
    assert_eq!(one("boltpack_etcd_current_revision"), 218.0);
    assert_eq!(m["boltpack_db_file_size_bytes"][0][0]["path"], s(&db));
    let groups = m["boltpack_etcd_prefix_keys"].as_array().unwrap();
    assert!(groups.iter().any(|g| g[0]["prefix"] == "/registry/pods/"));
    Ok(())
}

/// A trial that needs a peer program at `found`: gated (NOTE, or a failure with
/// BOLTPACK_REQUIRE_PEERS=1) and ignored when it is missing.
fn peer_trial(
    name: &'static str,
    what: &str,
    found: Result<PathBuf, String>,
    run: fn(PathBuf) -> Result<(), Failed>,
) -> Trial {
    gate_peer(what, &found);
    let ignored = found.is_err();
    Trial::test(name, move || {
        run(found.clone().map_err(|e| e.to_string())?)
    })
    .with_ignored_flag(ignored)
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test("cli::analyze_etcd::facts_db", || facts_figures("db")),
        Trial::test("cli::analyze_etcd::facts_snapshot", || {
            facts_figures("snapshot.db")
        }),
        Trial::test("cli::analyze_etcd::html", html),
        Trial::test("cli::analyze_etcd::grouping", grouping),
        Trial::test("cli::analyze_etcd::not_etcd", not_etcd),
    ];
    for (file, rule) in [("db", "keep"), ("db", "drop"), ("snapshot.db", "keep")] {
        trials.push(Trial::test(
            format!("cli::analyze_etcd::capacity_vs_dry_run::{file}::{rule}"),
            move || capacity_vs_dry_run(file, rule),
        ));
    }
    let avail = etcd_version().and_then(|v| {
        if v.starts_with("3.4") {
            Ok(v)
        } else {
            Err(format!("etcd {v} is not 3.4"))
        }
    });
    gate_peer("etcd peer", &avail);
    for (kind, db) in [("restore", "fixture"), ("fresh", "fresh.db")] {
        trials.push(
            Trial::test(format!("live_etcd::analyze::{kind}"), move || {
                live(kind, db)
            })
            .with_ignored_flag(avail.is_err()),
        );
    }
    trials.push(
        Trial::test("live_etcd::analyze::k8s_groups", live_k8s).with_ignored_flag(avail.is_err()),
    );
    trials.push(peer_trial(
        "peer::analyze::prometheus_parses",
        "Prometheus text-format parser",
        prometheus_parser(),
        prometheus,
    ));
    trials.push(peer_trial(
        "peer::analyze::html_in_chromium",
        "headless Chromium",
        chromium(),
        html_in_chromium,
    ));
    libtest_mimic::run(&args, trials).exit();
}
