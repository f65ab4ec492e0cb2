//! The library's rooms and the one-way arrows between them (ARCHITECTURE.md):
//!
//! `format` <- `error` <- `reader` <- `check`, `etcd` <- `writer` <- `analyze` (crates/core)
//! <- `report` (crates/report) <- the binary
//!
//! A module may use only rooms to its left, and no two files may use each other. `format`
//! is a crate of its own (crates/format), so Cargo keeps it below the rest; the binary is
//! its own package above the library. Inside the core library (crates/core) the rooms are
//! modules, and this test is what enforces their arrows: it reads every `crate::` and
//! `super::` path there (outside `#[cfg(test)]` and comments) and fails on an arrow that
//! points the wrong way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each room and the rooms it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("format", &[]),
    ("error", &["format"]),
    ("reader", &["format", "error"]),
    ("check", &["format", "error", "reader"]),
    ("etcd", &["format", "error", "reader"]),
    ("writer", &["format", "error", "reader", "check", "etcd"]),
    (
        "analyze",
        &["format", "error", "reader", "check", "etcd", "writer"],
    ),
    (
        "salvage",
        &["format", "error", "reader", "check", "etcd", "writer"],
    ),
];

/// Module path (`reader/cursor`) of every library file.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().to_str().unwrap().to_string();
            let Some(m) = rel.strip_suffix(".rs") else {
                continue;
            };
            if m == "main" || m == "lib" {
                continue;
            }
            let m = m.strip_suffix("/mod").unwrap_or(m).to_string();
            let code = std::fs::read_to_string(&p).unwrap();
            let code = code.split("#[cfg(test)]").next().unwrap().to_string();
            out.insert(m, code);
        }
    }
    out
}

/// The `crate::a::b` / `super::x` paths a file's code names (comments skipped).
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap();
        let mut rest = line;
        while let Some(i) = rest.find(['c', 's']) {
            let tail = &rest[i..];
            let starts = ["crate::", "super::"].iter().any(|p| tail.starts_with(p));
            let boundary = i == 0
                || !rest[..i]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if starts && boundary {
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len());
                out.push(
                    tail[..end]
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                );
                rest = &tail[end..];
            } else {
                rest = &tail[1..];
            }
        }
    }
    out
}

/// The library file a path names, seen from module `m`.
fn resolve(mods: &BTreeMap<String, String>, m: &str, path: &[String]) -> Option<String> {
    let mut base: Vec<String> = Vec::new();
    let mut parts = path;
    if parts.first().is_some_and(|p| p == "crate") {
        parts = &parts[1..];
    } else {
        base = m.split('/').map(String::from).collect();
        while parts.first().is_some_and(|p| p == "super") {
            base.pop();
            parts = &parts[1..];
        }
    }
    let mut cand: Vec<String> = base.into_iter().chain(parts.iter().cloned()).collect();
    while !cand.is_empty() {
        let k = cand.join("/");
        if mods.contains_key(&k) {
            return Some(k);
        }
        cand.pop();
    }
    None
}

#[test]
fn arrows_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/core/src");
    let mods = modules(&src);
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (m, code) in &mods {
        let room = m.split('/').next().unwrap();
        let may = allowed
            .get(room)
            .unwrap_or_else(|| panic!("room {room} ({m}) is not in ALLOWED"));
        for p in paths(code) {
            let Some(d) = resolve(&mods, m, &p) else {
                continue;
            };
            if d == *m || m.starts_with(&format!("{d}/")) {
                continue; // itself, or its own parent module
            }
            let to = d.split('/').next().unwrap();
            if to != room && !may.contains(&to) {
                wrong.push(format!(
                    "{m} uses {} ({room} may not use {to})",
                    p.join("::")
                ));
            }
            uses.entry(m.clone()).or_default().insert(d);
        }
    }
    wrong.extend(mutual(&uses));
    assert!(
        wrong.is_empty(),
        "arrows the wrong way:\n{}",
        wrong.join("\n")
    );
    assert!(mods.len() > 25, "read {} modules", mods.len());
}

/// Pairs of files that use each other.
fn mutual(uses: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (a, ds) in uses {
        for b in ds {
            if a < b && uses.get(b).is_some_and(|s| s.contains(a)) {
                out.push(format!("{a} and {b} use each other"));
            }
        }
    }
    out
}

/// The presentation crate has one room; its files still may not use each other.
#[test]
fn report_files_do_not_use_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/report/src");
    let mods = modules(&src);
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in &mods {
        for p in paths(code) {
            if let Some(d) = resolve(&mods, m, &p).filter(|d| d != m) {
                uses.entry(m.clone()).or_default().insert(d);
            }
        }
    }
    let wrong = mutual(&uses);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(mods.len() >= 6, "read {} modules", mods.len());
}
