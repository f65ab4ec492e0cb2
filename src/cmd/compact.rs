//! `boltpack compact`: the command's policy around the library's writer. What may be
//! replaced (never a file a running process holds), with which permissions (never wider
//! than the source's), where `--data-dir`'s backup goes (outside the data dir, where etcd
//! does not look), whether the copy carries a snapshot trailer, the revision to compact
//! at, and the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use boltpack::etcd::{CompactionPlan, TombstoneAtRev};
use boltpack::etcd::{TRAILER_LEN, TrailerState, trailer};
use boltpack::writer::refuse_if_held;
use boltpack::writer::{
    CompactSummary, FileOutput, Perms, ProgressFn, Transform, compact_file, plan_copy,
};
use boltpack::{Db, Error, OpenOptions, Result};

/// An MVCC compaction request (etcd files only).
#[derive(Debug, Clone, Copy)]
pub struct MvccRequest {
    /// Compact at this revision...
    pub revision: Option<i64>,
    /// ...or at current - N.
    pub keep_revisions: Option<i64>,
    pub rule: TombstoneAtRev,
}

/// `--snapshot-trailer`: whether the copy ends in `snapshot save`'s SHA-256 trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailerChoice {
    /// As the source: a trailer when it has a valid one; an invalid one is an error.
    Auto,
    Yes,
    No,
}

/// Where `--data-dir` keeps the original db.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupChoice {
    /// Beside the data dir: `DIR.boltpack-backup-<unix time>.db`.
    BesideDataDir,
    /// `--backup PATH`: that file, or a file of the default name in that folder.
    At(PathBuf),
    /// `--no-backup`.
    None,
}

/// What the user asked for.
pub struct CompactRequest<'p> {
    pub src: Option<&'p Path>,
    pub dst: Option<&'p Path>,
    /// A stopped member's data dir: its `member/snap/db` is replaced in place.
    pub data_dir: Option<&'p Path>,
    pub opts: boltpack::writer::CompactOptions,
    pub mvcc: Option<MvccRequest>,
    /// Take the shared lock on SRC for reading (`--no-lock` turns it off, nothing else).
    pub lock: bool,
    pub force: bool,
    pub verify: bool,
    pub dry_run: bool,
    pub backup: BackupChoice,
    pub trailer: TrailerChoice,
    /// Leave the NOSPACE alarms out of the copy (`--disarm`).
    pub disarm: bool,
    pub progress: Option<ProgressFn<'p>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MvccReport {
    /// The revision compacted at, when a compaction was applied.
    pub revision: Option<i64>,
    pub current_revision: i64,
    pub previously_compacted: Option<i64>,
    pub distinct_keys_at_or_below: usize,
    pub note: Option<String>,
}

/// Where the original db of `--data-dir` was kept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    /// Disk the backup holds until it is deleted (the original's size).
    pub bytes: u64,
    /// `hard_link` (same file system: instant) or `copy` (another file system).
    pub kind: &'static str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CompactReport {
    pub src: PathBuf,
    /// `None` for a dry run.
    pub dst: Option<PathBuf>,
    pub dry_run: bool,
    /// With `--data-dir`: where the original was kept.
    pub backup: Option<BackupReport>,
    pub summary: CompactSummary,
    pub elapsed_seconds: f64,
    pub mvcc: Option<MvccReport>,
    /// Members listed in the `members` bucket (etcd files).
    pub members: Option<u64>,
    /// With `--disarm`: the NOSPACE alarms the copy no longer holds.
    pub disarmed: Vec<boltpack::etcd::Alarm>,
    /// With `--disarm` on a db etcd 3.4 wrote (no `term` in `meta`): 3.4 does not record
    /// that it applied an alarm, so a restart replays the activation from the WAL and
    /// one `etcdctl alarm disarm` is still needed afterwards.
    pub disarm_replayed_by_etcd34: bool,
    #[serde(skip)]
    pub disarm_asked: bool,
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The destination's canonical path, whether or not it exists yet.
fn canonical(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(parent.join(p.file_name()?))
}

fn check_options(req: &CompactRequest<'_>) -> Result<()> {
    if !(0.1..=1.0).contains(&req.opts.fill_percent) {
        return Err(usage(format!(
            "--fill-percent {} is outside 0.1 ..= 1.0",
            req.opts.fill_percent
        )));
    }
    if let Some(ps) = req.opts.page_size
        && !(ps.is_power_of_two() && (1024..=65536).contains(&ps))
    {
        return Err(usage(format!(
            "--page-size {ps}: use a power of two from 1024 to 65536"
        )));
    }
    if req.data_dir.is_some() && req.trailer == TrailerChoice::Yes {
        return Err(usage(
            "--snapshot-trailer yes makes a snapshot file; a member's db has none: use -o",
        ));
    }
    Ok(())
}

/// A running member holds its db (bbolt's flock) and its WAL files (etcd's OFD locks).
/// Checked whatever `--no-lock` says: it only concerns reading SRC.
fn refuse_running_member(data_dir: &Path, db: &Path) -> Result<()> {
    refuse_if_held(db)?;
    let wal = data_dir.join("member/wal");
    let Ok(entries) = std::fs::read_dir(&wal) else {
        return Ok(());
    };
    for e in entries.flatten() {
        refuse_if_held(&e.path())?;
    }
    Ok(())
}

/// Whether the copy gets a trailer: the user's choice, or as the source's.
fn wants_trailer(db: &Db, src: &Path, choice: TrailerChoice) -> Result<bool> {
    match choice {
        TrailerChoice::Yes => Ok(true),
        TrailerChoice::No => Ok(false),
        TrailerChoice::Auto => match trailer(db.bytes()).state {
            TrailerState::Valid => Ok(true),
            TrailerState::Absent => Ok(false),
            TrailerState::Invalid => Err(Error::BadTrailer {
                path: src.to_path_buf(),
            }),
        },
    }
}

/// The revision to compact at and what it does, or a note that nothing is compacted.
fn resolve_mvcc<'a>(
    db: &'a Db,
    m: MvccRequest,
) -> Result<(MvccReport, Option<CompactionPlan<'a>>)> {
    let rules = boltpack::etcd::Rules::ETCD_3_4_23;
    let (_, revs) = boltpack::etcd::Revisions::read(db, &rules)?;
    let current = revs.current;
    let compacted = (revs.compacted > 0).then_some(revs.compacted);
    let rev = match (m.revision, m.keep_revisions) {
        (Some(r), _) => r,
        (None, Some(n)) if n < 0 => return Err(usage(format!("--keep-revisions {n} is negative"))),
        (None, Some(n)) if n > current => {
            return Err(usage(format!(
                "--keep-revisions {n} is beyond the history: the current revision is {current}, \
                 so at most {current} revisions can be kept"
            )));
        }
        (None, Some(n)) => current - n,
        (None, None) => current,
    };
    if rev > current {
        return Err(Error::Revision(format!(
            "revision {rev} is above the current revision {current} (etcd: \"mvcc: required \
             revision is a future revision\")"
        )));
    }
    // etcd's Compact refuses R at or below the compacted revision (ErrCompacted), and
    // `hashkv --rev R` exits 1 there too: an explicit R gets the same code. A computed R
    // (--keep-revisions) that lands there has nothing to compact and only defragments.
    if let (Some(r), Some(c)) = (m.revision, compacted)
        && r <= c
    {
        return Err(Error::Revision(format!(
            "revision {r} is at or below the compacted revision {c} (etcd: \"mvcc: required \
             revision has been compacted\"): the file is compacted there already; omit \
             --revision to only defragment"
        )));
    }
    let mut report = MvccReport {
        revision: None,
        current_revision: current,
        previously_compacted: compacted,
        distinct_keys_at_or_below: 0,
        note: None,
    };
    if !boltpack::etcd::compacts_at(rev, compacted.unwrap_or(0)) {
        report.note = Some(format!(
            "revision {rev} is at or below the already compacted revision {}: nothing to compact, defragmenting only",
            compacted.unwrap_or(0)
        ));
        return Ok((report, None));
    }
    let p = CompactionPlan::build(db, rev, m.rule)?;
    report.revision = Some(rev);
    report.distinct_keys_at_or_below = p.keys();
    Ok((report, Some(p)))
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where `--data-dir`'s backup goes. Never inside the data dir: etcd logs
/// `found unexpected non-snap file; skipping` for a stranger in `member/snap`, and
/// `found invalid file under data directory` for one at its top.
fn backup_path(data_dir: &Path, choice: &BackupChoice) -> Result<Option<PathBuf>> {
    let dir = data_dir.canonicalize().map_err(io_err(data_dir))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("etcd")
        .to_string();
    let default_name = format!("{name}.boltpack-backup-{}.db", unix_time());
    let path = match choice {
        BackupChoice::None => return Ok(None),
        BackupChoice::BesideDataDir => match dir.parent() {
            Some(parent) => parent.join(default_name),
            None => {
                return Err(usage(
                    "the data dir has no parent folder for the backup: pass --backup PATH or --no-backup",
                ));
            }
        },
        BackupChoice::At(p) if p.is_dir() => p.join(default_name),
        BackupChoice::At(p) => p.clone(),
    };
    let canon = canonical(&path)
        .ok_or_else(|| usage(format!("--backup {}: not a usable path", path.display())))?;
    if canon.starts_with(&dir) {
        return Err(usage(format!(
            "the backup {} would be inside the data dir {}, where etcd warns about files it \
             does not know: pass --backup with a path outside it",
            path.display(),
            dir.display()
        )));
    }
    if path.exists() {
        return Err(usage(format!(
            "the backup {} already exists: pass another --backup PATH",
            path.display()
        )));
    }
    Ok(Some(path))
}

/// Keep the original `db` at `backup`: a hard link where it can be (the rename that
/// replaces `db` then leaves the original inode under the backup name), else a copy with
/// the original's bits and owner, fsynced.
fn keep_original(db: &Path, backup: &Path, perms: Perms) -> Result<BackupReport> {
    let bytes = std::fs::metadata(db).map_err(io_err(db))?.len();
    match std::fs::hard_link(db, backup) {
        Ok(()) => {
            return Ok(BackupReport {
                path: backup.to_path_buf(),
                bytes,
                kind: "hard_link",
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {}
        Err(e) => return Err(io_err(backup)(e)),
    }
    let copied = (|| {
        let mut to = perms.create_new(backup)?;
        let mut from = std::fs::File::open(db)?;
        std::io::copy(&mut from, &mut to)?;
        to.sync_all()
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(backup);
        return Err(io_err(backup)(e));
    }
    Ok(BackupReport {
        path: backup.to_path_buf(),
        bytes,
        kind: "copy",
    })
}

/// `--disarm`: leave the `alarm` bucket's NOSPACE entries out of the copy, so the
/// restarted member accepts writes without `etcdctl alarm disarm`. Other alarms (CORRUPT)
/// stay: they are not about space, and disarming them hides a real problem.
fn disarm(db: &Db, t: &mut Transform<'_>) -> Result<Vec<boltpack::etcd::Alarm>> {
    if !boltpack::etcd::is_etcd(db) {
        return Err(usage(
            "--disarm removes etcd's NOSPACE alarms: this is not an etcd db",
        ));
    }
    let mut gone = Vec::new();
    for (key, alarm) in boltpack::etcd::alarm_entries(db)? {
        if alarm.is_nospace() {
            t.delete
                .entry(boltpack::etcd::ALARM_BUCKET.to_vec())
                .or_default()
                .insert(key.to_vec());
            gone.push(alarm);
        }
    }
    Ok(gone)
}

/// etcd 3.5 and later write `term` into `meta` with every commit; 3.4 never does.
fn written_by_etcd34(db: &Db) -> bool {
    boltpack::etcd::EtcdMeta::read(db).is_ok_and(|m| m.term.is_none())
}

/// The warning for an MVCC compaction of one member of a multi-member cluster.
fn warn_cluster(members: u64) {
    eprintln!(
        "boltpack: warning: the members bucket lists {members} members. MVCC-compacting one \
         member at a revision its peers have not compacted to makes its HashKV differ from \
         theirs (`etcdctl endpoint hashkv` and the corruption check will flag it). Compact \
         every member at the same revision, or restore one compacted snapshot everywhere."
    );
}

/// Keep the original at `backup` (if any), then write the copy to `dst`. A failed copy
/// removes the backup it made: the original is untouched, so it would only be clutter.
fn write_copy<'a>(
    db: &'a Db,
    dst: &Path,
    opts: &boltpack::writer::CompactOptions,
    t: &'a Transform<'a>,
    out: &FileOutput<'_>,
    backup: Option<&Path>,
) -> Result<(CompactSummary, Option<BackupReport>)> {
    let kept = match backup {
        Some(b) => Some(keep_original(dst, b, out.perms)?),
        None => None,
    };
    match compact_file(db, dst, opts, t, out) {
        Ok(s) => Ok((s, kept)),
        Err(e) => {
            if let Some(b) = &kept {
                let _ = std::fs::remove_file(&b.path);
            }
            Err(e)
        }
    }
}

/// Validate, plan, write (or size), verify, commit.
pub fn run(req: &CompactRequest<'_>) -> Result<CompactReport> {
    let start = Instant::now();
    check_options(req)?;
    let in_place_db = req.data_dir.map(|d| d.join("member/snap/db"));
    let src = match (&in_place_db, req.src) {
        (Some(db), _) => db.as_path(),
        (None, Some(s)) => s,
        (None, None) => return Err(usage("compact needs SRC or --data-dir DIR")),
    };
    let dst = match (req.dst, req.dry_run, &in_place_db) {
        (Some(_), _, Some(_)) => return Err(usage("--data-dir compacts in place: no -o")),
        (_, true, _) => None,
        (None, false, Some(db)) => Some(db.as_path()),
        (Some(d), false, None) => Some(d),
        (None, false, None) => return Err(usage("compact needs -o DST (or --dry-run)")),
    };
    if let (Some(dir), Some(db)) = (req.data_dir, &in_place_db) {
        refuse_running_member(dir, db)?;
    } else if let Some(d) = dst {
        let src_c = src.canonicalize().map_err(io_err(src))?;
        if canonical(d).is_some_and(|d| d == src_c) {
            return Err(usage(format!(
                "the output {} is the source itself: write the copy elsewhere",
                d.display()
            )));
        }
        if d.exists() && req.force {
            refuse_if_held(d)?;
        }
    }
    let db = Db::open(src, OpenOptions { lock: req.lock })?;
    // A cold source streams in in physical order meanwhile (`Db::with_read_ahead`).
    db.with_read_ahead(|| compact_opened(req, &db, src, dst, in_place_db.as_deref(), start))
}

/// [`run`] once the source is open.
fn compact_opened(
    req: &CompactRequest<'_>,
    db: &Db,
    src: &Path,
    dst: Option<&Path>,
    in_place_db: Option<&Path>,
    start: Instant,
) -> Result<CompactReport> {
    let src_meta = std::fs::metadata(src).map_err(io_err(src))?;
    let with_trailer = wants_trailer(db, src, req.trailer)?;
    let (mvcc, plan) = match req.mvcc {
        Some(m) => {
            let (report, plan) = resolve_mvcc(db, m)?;
            (Some(report), plan)
        }
        None => (None, None),
    };
    let members = boltpack::etcd::bucket_len(db, b"members")?;
    let mut t = Transform::default();
    if let Some(p) = &plan {
        let meta: BTreeMap<Vec<u8>, Vec<u8>> = p.meta_entries().into_iter().collect();
        t.set.insert(boltpack::etcd::META_BUCKET.to_vec(), meta);
    }
    t.plan = plan.as_ref();
    let disarmed = if req.disarm {
        disarm(db, &mut t)?
    } else {
        Vec::new()
    };
    let backup_to = match req.data_dir {
        Some(dir) if dst.is_some() => backup_path(dir, &req.backup)?,
        _ => None,
    };
    if in_place_db.is_some() && plan.is_some() && members.is_some_and(|n| n > 1) {
        warn_cluster(members.unwrap_or(0));
    }
    let (summary, backup) = match dst {
        None => {
            let mut s = plan_copy(db, &req.opts, &t)?;
            if with_trailer {
                s.trailer = true;
                s.dst_size += TRAILER_LEN as u64;
            }
            (s, None)
        }
        Some(d) => {
            let perms = if in_place_db.is_some() {
                Perms::replacing(&src_meta)
            } else {
                Perms::copy_of(&src_meta)
            };
            let out = FileOutput {
                force: req.force || in_place_db.is_some(),
                verify: req.verify,
                perms,
                trailer: with_trailer,
                progress: req.progress,
            };
            write_copy(db, d, &req.opts, &t, &out, backup_to.as_deref())?
        }
    };
    Ok(CompactReport {
        src: src.to_path_buf(),
        dst: dst.map(Path::to_path_buf),
        dry_run: dst.is_none(),
        backup,
        summary,
        elapsed_seconds: start.elapsed().as_secs_f64(),
        mvcc,
        members,
        disarm_replayed_by_etcd34: !disarmed.is_empty() && written_by_etcd34(db),
        disarmed,
        disarm_asked: req.disarm,
    })
}

impl CompactReport {
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let s = &self.summary;
        let mut o = String::new();
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let src_used = s.src_pages * u64::from(s.page_size);
        let _ = writeln!(
            o,
            "source       {} pages ({:.1} MiB used, file {:.1} MiB)",
            s.src_pages,
            mib(src_used),
            mib(s.src_file_size)
        );
        let verb = if self.dry_run { "would write" } else { "wrote" };
        let _ = writeln!(
            o,
            "{verb:<12} {} pages = {} bytes ({:.1} MiB, {:.1}% of the source file)",
            s.dst_pages,
            s.dst_size,
            mib(s.dst_size),
            100.0 * s.dst_size as f64 / s.src_file_size.max(1) as f64
        );
        let _ = writeln!(
            o,
            "content      {} buckets, {} keys; freelist {:?}",
            s.buckets, s.keys, s.freelist
        );
        if let Some(m) = &self.mvcc {
            match m.revision {
                Some(r) => {
                    let _ = writeln!(
                        o,
                        "mvcc         compacted at revision {r} (current {}): {} revisions removed",
                        m.current_revision, s.revisions_removed
                    );
                }
                None => {
                    let _ = writeln!(o, "mvcc         {}", m.note.as_deref().unwrap_or(""));
                }
            }
        }
        if self.disarm_asked {
            if self.disarmed.is_empty() {
                let _ = writeln!(o, "alarms       no NOSPACE alarm to disarm");
            } else {
                let each: Vec<String> = self
                    .disarmed
                    .iter()
                    .map(|a| format!("NOSPACE on member {}", a.member_id))
                    .collect();
                let _ = writeln!(
                    o,
                    "alarms       {} {}: the restarted member accepts writes without `etcdctl alarm disarm`",
                    if self.dry_run {
                        "would disarm"
                    } else {
                        "disarmed"
                    },
                    each.join(", ")
                );
                if self.disarm_replayed_by_etcd34 {
                    let _ = writeln!(
                        o,
                        "             but this db was written by etcd 3.4, which replays the alarm from its WAL when it restarts: run `etcdctl alarm disarm` once after the restart (the member has room now, so it takes at once)"
                    );
                }
                if self.members.is_some_and(|n| n > 1) {
                    let _ = writeln!(
                        o,
                        "             alarms are cluster-wide: every one of the {} members needs the same step (or a restore of one compacted snapshot everywhere)",
                        self.members.unwrap_or(0)
                    );
                }
            }
        }
        if s.trailer {
            let _ = writeln!(
                o,
                "trailer      SHA-256 of the copy appended: `snapshot restore` takes it without --skip-hash-check"
            );
        }
        if let Some(d) = &self.dst {
            let _ = writeln!(
                o,
                "output       {} ({})",
                d.display(),
                if s.verified {
                    "re-read and verified"
                } else {
                    "not verified: --no-verify"
                }
            );
        }
        if let Some(b) = &self.backup {
            let how = if b.kind == "copy" {
                "a copy"
            } else {
                "a hard link to the original file"
            };
            let _ = writeln!(
                o,
                "backup       the original is kept as {} ({how}; it holds {:.1} MiB of disk until you delete it)",
                b.path.display(),
                mib(b.bytes)
            );
        }
        let _ = writeln!(o, "time         {:.2} s", self.elapsed_seconds);
        o
    }
}
