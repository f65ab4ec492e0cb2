//! The answer first: what `analyze` opens with, in at most ~15 lines, and the same figures
//! in JSON (`summary`, exact bytes). An operator comes with one of a few questions (how
//! full is it, is it stuck on NOSPACE, what would a defrag or a compaction give back, what
//! eats the space, what do I run now); the details follow for whoever wants them.

use std::fmt::Write;
use std::path::Path;

use boltpack::analyze::Analysis;
use boltpack::analyze::etcd::EtcdAnalysis;
use serde::Serialize;

use crate::units::short;

/// How many consumers the summary names.
const BIGGEST: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The file as the user named it.
    pub path: String,
    pub file_size_bytes: u64,
    /// Bytes of the pages the tree uses (the rest is free or unreachable).
    pub in_use_bytes: u64,
    /// What a defragmented copy (`compact` without `--revision`) gives back.
    pub defrag_saving_bytes: u64,
    /// Problems met while walking: run `boltpack check`.
    pub problems: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdSummary>,
    /// The commands to run next, most useful first.
    pub next: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdSummary {
    pub quota_bytes: u64,
    /// No `--quota-bytes` was given: etcd's default (2 GiB) is assumed.
    pub quota_assumed: bool,
    /// `quota_bytes - file_size_bytes` (negative: over the quota).
    pub headroom_bytes: i64,
    /// Headroom as a percentage of the quota, 0-100 (negative: over it).
    pub headroom_pct: f64,
    /// Alarms in the `alarm` bucket, as `NOSPACE on member 8e9e05c52164694d`.
    pub alarms: Vec<String>,
    /// A NOSPACE alarm is raised: the member refuses writes until it is disarmed.
    pub nospace: bool,
    /// `None`: never compacted.
    pub compacted_revision: Option<i64>,
    pub current_revision: i64,
    /// Size of the copy compacted at the current revision and defragmented (exact).
    pub compacted_file_bytes: Option<u64>,
    /// `file_size_bytes - compacted_file_bytes`.
    pub compaction_saving_bytes: Option<i64>,
    /// Members listed in the `members` bucket.
    pub members: u64,
    /// The largest key groups, by latest + history bytes.
    pub biggest: Vec<Consumer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Consumer {
    pub prefix: String,
    pub keys: u64,
    pub latest_bytes: u64,
    pub history_bytes: u64,
}

impl Summary {
    /// `quota_assumed`: the user gave no `--quota-bytes`.
    pub fn of(path: &Path, a: &Analysis, quota_assumed: bool) -> Summary {
        let f = &a.file;
        let etcd = a.etcd.as_ref().map(|e| etcd_summary(e, quota_assumed));
        let mut s = Summary {
            path: path.display().to_string(),
            file_size_bytes: f.file_size,
            in_use_bytes: f.live.bytes,
            defrag_saving_bytes: f.defrag_estimate.saving_bytes,
            problems: a.problems,
            etcd,
            next: Vec::new(),
        };
        s.next = next_steps(&s, path);
        s
    }

    /// The text block `analyze` prints first.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "summary");
        let _ = writeln!(
            s,
            "  file         {} on disk, {} in use{}",
            short(self.file_size_bytes as f64),
            short(self.in_use_bytes as f64),
            match self.problems {
                0 => String::new(),
                1 => ", 1 problem (run `boltpack check`)".to_string(),
                n => format!(", {n} problems (run `boltpack check`)"),
            }
        );
        if let Some(e) = &self.etcd {
            render_etcd(&mut s, e, self);
        } else {
            let _ = writeln!(
                s,
                "  defrag       gives back {}",
                short(self.defrag_saving_bytes as f64)
            );
        }
        for (i, n) in self.next.iter().enumerate() {
            let _ = writeln!(s, "  {:<12} {n}", if i == 0 { "next" } else { "" });
        }
        s
    }
}

fn render_etcd(s: &mut String, e: &EtcdSummary, sum: &Summary) {
    let _ = writeln!(
        s,
        "  quota        {}{}, headroom {} ({:.0}%)",
        short(e.quota_bytes as f64),
        if e.quota_assumed {
            " (assumed: etcd's default; --quota-bytes to set)"
        } else {
            ""
        },
        signed(e.headroom_bytes),
        e.headroom_pct
    );
    let alarms = if e.alarms.is_empty() {
        "none".to_string()
    } else {
        e.alarms.join(", ")
    };
    let _ = writeln!(s, "  alarms       {alarms}");
    if e.nospace {
        let _ = writeln!(
            s,
            "               NOSPACE: the member refuses writes (\"mvcc: database space exceeded\") until compacted, defragmented and disarmed"
        );
    }
    let since = match e.compacted_revision {
        None => "never compacted".to_string(),
        Some(c) => format!(
            "compacted at {c}, {} revisions since",
            e.current_revision - c
        ),
    };
    let _ = writeln!(s, "  revisions    current {}, {since}", e.current_revision);
    let _ = writeln!(
        s,
        "  defrag       gives back {}",
        short(sum.defrag_saving_bytes as f64)
    );
    if let (Some(size), Some(saving)) = (e.compacted_file_bytes, e.compaction_saving_bytes) {
        let _ = writeln!(
            s,
            "  compact      at the current revision + defrag: gives back {}, leaves {}",
            signed(saving),
            short(size as f64)
        );
    }
    for (i, c) in e.biggest.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:<12} {}  {} ({} latest, {} history; {} keys)",
            if i == 0 { "biggest" } else { "" },
            c.prefix,
            short((c.latest_bytes + c.history_bytes) as f64),
            short(c.latest_bytes as f64),
            short(c.history_bytes as f64),
            c.keys
        );
    }
}

fn signed(b: i64) -> String {
    if b < 0 {
        format!("-{}", short(b.unsigned_abs() as f64))
    } else {
        short(b as f64)
    }
}

fn etcd_summary(e: &EtcdAnalysis, quota_assumed: bool) -> EtcdSummary {
    let c = &e.capacity;
    let at_current = c
        .candidates
        .iter()
        .find(|x| x.revision == e.current_revision && x.compacts);
    EtcdSummary {
        quota_bytes: c.quota_bytes,
        quota_assumed,
        headroom_bytes: c.headroom_bytes,
        headroom_pct: if c.quota_bytes == 0 {
            0.0
        } else {
            c.headroom_bytes as f64 * 100.0 / c.quota_bytes as f64
        },
        alarms: e
            .alarms
            .iter()
            .map(|a| format!("{} on member {}", a.alarm, a.member_id))
            .collect(),
        nospace: e.alarms.iter().any(|a| a.alarm == "NOSPACE"),
        compacted_revision: (e.compacted_revision >= 0).then_some(e.compacted_revision),
        current_revision: e.current_revision,
        compacted_file_bytes: at_current.map(|x| x.remaining_file_size),
        compaction_saving_bytes: at_current.map(|x| x.saving_bytes),
        members: e.members,
        biggest: e
            .prefixes
            .groups
            .iter()
            .take(BIGGEST)
            .map(|g| Consumer {
                prefix: g.prefix.clone(),
                keys: g.keys,
                latest_bytes: g.latest_bytes,
                history_bytes: g.history_bytes,
            })
            .collect(),
    }
}

/// `DIR` when `path` is `DIR/member/snap/db`: a member's data dir.
fn data_dir_of(path: &Path) -> Option<&Path> {
    let snap = path.parent()?;
    let member = snap.parent()?;
    let dir = member.parent()?;
    (path.file_name()? == "db" && snap.file_name()? == "snap" && member.file_name()? == "member")
        .then_some(dir)
}

/// What to run next: a check when the walk met problems; on a NOSPACE alarm the one-step
/// recovery; a compaction when it gives back much; a defrag when that does; else nothing.
fn next_steps(s: &Summary, path: &Path) -> Vec<String> {
    let mut next = Vec::new();
    let shown = path.display();
    if s.problems > 0 {
        next.push(format!("boltpack check {shown}"));
        return next;
    }
    let target = |extra: &str| match data_dir_of(path) {
        Some(dir) => format!(
            "boltpack compact --data-dir {}{extra}   (with this member's etcd stopped)",
            dir.display()
        ),
        None => format!("boltpack compact {shown} -o {shown}.compacted{extra}"),
    };
    let worth = |saving: i64| saving > 0 && saving as f64 >= s.file_size_bytes as f64 * 0.1;
    if let Some(e) = &s.etcd {
        let saving = e.compaction_saving_bytes.unwrap_or(0);
        // `compact --revision R` refuses R at or below the compacted revision (as etcd
        // does): a file compacted at its current revision only needs the defrag.
        let compactable = e.current_revision > e.compacted_revision.unwrap_or(0);
        let at_current = if compactable {
            format!(" --revision {}", e.current_revision)
        } else {
            String::new()
        };
        if e.nospace {
            next.push(target(&format!("{at_current} --disarm")));
            if e.members > 1 {
                next.push(format!(
                    "alarms are cluster-wide: every one of the {} members needs the same step (or restore one compacted snapshot on all)",
                    e.members
                ));
            }
            return next;
        }
        if compactable && worth(saving) && saving > s.defrag_saving_bytes as i64 {
            next.push(target(&at_current));
            return next;
        }
    }
    if worth(s.defrag_saving_bytes as i64) {
        next.push(target(""));
    } else {
        next.push("nothing to do: the file is compact".to_string());
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_data_dir() {
        assert_eq!(
            data_dir_of(Path::new("/var/lib/etcd/member/snap/db")),
            Some(Path::new("/var/lib/etcd"))
        );
        assert_eq!(data_dir_of(Path::new("backup.db")), None);
        assert_eq!(data_dir_of(Path::new("/x/snap/db")), None);
    }
}
