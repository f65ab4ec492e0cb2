//! Every field a command's `-w json` emits is documented in `docs/json.md` (made by
//! `docs/gen-json-doc.py` from the Rust fields' doc comments; rerun it when a field is
//! added). Run on the fixtures: info, pages, hashkv, snapshot status, analyze (etcd and
//! plain bbolt), compact, get, diff, salvage.

mod common;

use std::collections::BTreeSet;

use common::{boltpack, path_str as s, testdata};
use serde_json::Value;

fn paths(v: &Value, pre: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if pre.is_empty() {
                    k.clone()
                } else {
                    format!("{pre}.{k}")
                };
                out.insert(p.clone());
                paths(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                paths(x, &format!("{pre}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_emitted_field_is_documented() {
    let doc = std::fs::read_to_string(common::repo().join("docs/json.md")).unwrap();
    let (db, snap) = (testdata("etcd/db"), testdata("etcd/snapshot.db"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("salvaged.db");
    let plain = testdata("bbolt/nested.db");
    // A copy with one wrong page header id, so `check` has a problem to print.
    let mut bytes = std::fs::read(testdata("bbolt/flat.db")).unwrap();
    bytes[59 * 4096] ^= 0x40;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    // The etcd fixture with its root bucket page (14) zeroed: salvage's `rebuilt_root`.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[14 * 4096..15 * 4096].fill(0);
    let no_root = dir.path().join("no-root.db");
    std::fs::write(&no_root, &bytes).unwrap();
    let out2 = dir.path().join("salvaged2.db");
    let runs: Vec<Vec<&str>> = vec![
        vec!["info", s(&db)],
        vec!["check", s(&damaged)],
        vec!["pages", s(&db)],
        vec!["hashkv", s(&db)],
        vec!["snapshot", "status", s(&snap)],
        vec!["analyze", s(&db)],
        vec!["analyze", s(&plain)],
        vec!["compact", s(&db), "--dry-run", "--revision", "200"],
        vec!["get", s(&db), "/registry/", "--prefix", "--limit", "2"],
        vec!["diff", s(&db), s(&snap)],
        vec!["salvage", s(&db), "-o", s(&out)],
        vec!["salvage", s(&no_root), "-o", s(&out2)],
    ];
    let mut missing = Vec::new();
    for args in runs {
        let o = boltpack(&[&args[..], &["--no-lock", "-w", "json"]].concat());
        assert!(
            matches!(o.status.code(), Some(0) | Some(1) | Some(5)),
            "{args:?}"
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut ps = BTreeSet::new();
        paths(&v, "", &mut ps);
        for p in ps {
            if !doc.contains(&format!("`{p}`")) {
                missing.push(format!("{}: {p}", args[0]));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/json.md (rerun docs/gen-json-doc.py): {missing:?}"
    );
}
