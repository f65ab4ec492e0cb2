//! Object kinds on a db a real kube-apiserver wrote (`testdata/k8s/auger.db`, from
//! etcd-io/auger): `analyze` counts keys and bytes by apiVersion/kind, `get --decode` says
//! what each value holds, `diff` has the same figures by kind. (The decoder's synthesized
//! protobuf, JSON and encrypted envelopes are unit tests in `analyze/etcd/kinds.rs`.)

mod common;

use common::{boltpack, path_str as s, testdata};
use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let o = boltpack(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn analyze_counts_by_kind() {
    let db = testdata("k8s/auger.db");
    let a = json(&["analyze", s(&db), "--no-lock", "-w", "json"]);
    let kinds: Vec<(String, String, String, u64)> = a["etcd"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["api_version"].as_str().unwrap().to_string(),
                k["kind"].as_str().unwrap().to_string(),
                k["encoding"].as_str().unwrap().to_string(),
                k["keys"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [("v1", "Pod"), ("batch/v1", "Job"), ("v1", "Namespace")] {
        assert!(
            kinds
                .iter()
                .any(|k| (k.0.as_str(), k.1.as_str()) == want && k.2 == "protobuf" && k.3 == 1),
            "{want:?} in {kinds:?}"
        );
    }
    assert!(
        kinds.iter().any(|k| k.2 == "other"),
        "compact_rev_key is no object"
    );
    let text = String::from_utf8(boltpack(&["analyze", s(&db), "--no-lock"]).stdout).unwrap();
    assert!(text.contains("batch/v1 Job"), "{text}");
}

#[test]
fn get_decode_names_the_object() {
    let db = testdata("k8s/auger.db");
    let o = boltpack(&[
        "get",
        s(&db),
        "--no-lock",
        "/registry/pods/",
        "--prefix",
        "--decode",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.starts_with("/registry/pods/default/pi-dqtsw\nv1 Pod (protobuf, "),
        "{text}"
    );
    let j = json(&[
        "get",
        s(&db),
        "--no-lock",
        "/registry/jobs/default/pi",
        "--decode",
        "-w",
        "json",
    ]);
    assert_eq!(j["kvs"][0]["object_kind"]["kind"], "Job");
    assert_eq!(j["kvs"][0]["object_kind"]["api_version"], "batch/v1");
}

#[test]
fn diff_by_kind() {
    let db = testdata("k8s/auger.db");
    let d = json(&["diff", s(&db), s(&db), "--no-lock", "-w", "json"]);
    let pod = d["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["prefix"] == "v1 Pod")
        .cloned()
        .expect("a v1 Pod row");
    assert_eq!(pod["live_keys_old"], 1);
    assert_eq!(pod["live_keys_new"], 1);
    assert_eq!(pod["changed_keys"], 0);
}
