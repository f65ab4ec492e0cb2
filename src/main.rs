//! The `boltpack` command: parses arguments, calls the library, prints. Exit codes are
//! documented in the README ("Exit codes").

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use boltpack::etcd::compaction::TombstoneAtRev;
use boltpack::reader::reach::PageMap;
use boltpack::report::dump::{DumpOptions, dump};
use boltpack::report::info::Info;
use boltpack::report::pages::{page_detail, page_lines, render_page_lines};
use boltpack::writer::compact::{CompactRequest, MvccRequest, Progress, compact_path};
use boltpack::writer::{CompactOptions, FreelistMode};
use boltpack::{Db, Error, OpenOptions};

/// Exit codes (README, "Exit codes").
const EXIT_PROBLEMS: u8 = 1;
const EXIT_IO: u8 = 3;
const EXIT_LOCKED: u8 = 4;

#[derive(Parser)]
#[command(
    name = "boltpack",
    version,
    about = "Read, check and analyze bbolt / etcd db files offline"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct DbArg {
    /// The bbolt file: etcd's member/snap/db, an `etcdctl snapshot save` file, any bbolt db.
    db: PathBuf,
    /// Do not take the shared lock. Only for a copy you know no process is writing: a
    /// running etcd changes pages under the reader.
    #[arg(long)]
    no_lock: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a defragmented copy; with --revision / --keep-revisions also compact etcd's
    /// MVCC history as etcd would. SRC is opened read-only and never modified.
    Compact {
        /// The source db (read-only).
        #[arg(required_unless_present = "data_dir")]
        src: Option<PathBuf>,
        /// A stopped etcd member's data dir: compact DIR/member/snap/db in place, keeping
        /// the original next to it unless --no-backup. Defragments only, unless --revision.
        #[arg(long, conflicts_with_all = ["src", "output"])]
        data_dir: Option<PathBuf>,
        /// With --data-dir: do not keep the original db.
        #[arg(long, requires = "data_dir")]
        no_backup: bool,
        /// The copy (written to a temp file in its folder, fsynced, verified, renamed).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// etcd files: compact MVCC history at this revision.
        #[arg(long, conflicts_with = "keep_revisions")]
        revision: Option<i64>,
        /// etcd files: compact at current revision - N.
        #[arg(long)]
        keep_revisions: Option<i64>,
        /// A tombstone exactly at the revision: keep (etcd >= 3.4.34 / 3.5.16 / 3.6, so
        /// watchers at R still see the delete) or drop (older etcd).
        #[arg(long, value_enum, default_value = "keep")]
        tombstone_at_rev: TombstoneArg,
        /// Fill pages up to this fraction. 1.0 (the default) packs densest, as bbolt's own
        /// Compact does; etcd's defrag uses 0.9 to leave room so the next writes split fewer
        /// pages.
        #[arg(long, default_value_t = 1.0)]
        fill_percent: f64,
        /// Output page size (default: the source's).
        #[arg(long)]
        page_size: Option<u32>,
        /// Persist a freelist page (sync) or not (none, as etcd on Linux). Default: as the source.
        #[arg(long, value_enum)]
        freelist: Option<FreelistArg>,
        /// Write nothing; print the exact size the copy would have.
        #[arg(long)]
        dry_run: bool,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
        /// Skip re-reading and checking the copy before the rename.
        #[arg(long)]
        no_verify: bool,
        /// Do not take the shared lock on SRC (only for a copy known to be quiet).
        #[arg(long)]
        no_lock: bool,
        #[arg(long)]
        json: bool,
    },
    /// etcd's HashKV of the key space at a revision, as `etcdctl endpoint hashkv --rev R`
    /// answers it. Exit 1 when R is compacted or in the future.
    Hashkv {
        #[command(flatten)]
        db: DbArg,
        /// The revision to hash; 0 (the default) is the current revision.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        rev: i64,
        /// Apply this etcd release's rules where releases differ (3.4.x, 3.5.x, 3.6.x).
        #[arg(long, default_value = "3.4.23")]
        etcd_version: String,
        #[arg(long)]
        json: bool,
    },
    /// etcd snapshot files (`etcdctl snapshot save` output, or a member db).
    Snapshot {
        #[command(subcommand)]
        cmd: SnapshotCmd,
    },
    /// Page size, both metas, the active one, freelist kind and page counts.
    Info {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Verify the file's structure (everything Go bbolt's tx.Check() does, and more).
    /// Exit 0 when clean, 1 with one line per problem.
    Check {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Every entry as JSON lines, nested buckets too, in key order.
    Dump {
        #[command(flatten)]
        db: DbArg,
        /// Only this bucket (a path: `outer inner`).
        bucket: Vec<String>,
        /// Decode the `key` bucket's revision keys and mvccpb.KeyValue values.
        #[arg(long)]
        etcd: bool,
        /// Print each value's length and SHA-256 instead of the value.
        #[arg(long)]
        hash_values: bool,
    },
    /// One line per page: id, type, items, overflow, owning bucket.
    Pages {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Per-bucket statistics (Go's Bucket.Stats()) and file-level figures: page use,
    /// free runs, fill, and an estimate of a defragmented copy's size. On etcd files also
    /// the MVCC figures: revisions, keys, prefixes, a revision histogram, capacity planning.
    Analyze {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML report (inline SVG charts) to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// etcd: group non-Kubernetes keys by their first N path segments.
        #[arg(long, default_value_t = 1)]
        prefix_depth: usize,
        /// etcd: group Kubernetes keys (/registry/...) by resource and namespace.
        #[arg(long)]
        by_namespace: bool,
        /// etcd: the backend quota for the headroom figures (etcd's default: 2 GiB).
        #[arg(long, default_value_t = boltpack::analyze::etcd::DEFAULT_QUOTA_BYTES)]
        quota_bytes: u64,
        /// etcd: a tombstone exactly at the candidate revision: keep (etcd >= 3.4.34 /
        /// 3.5.16 / 3.6) or drop (older etcd), as in `compact`.
        #[arg(long, value_enum, default_value = "keep")]
        tombstone_at_rev: TombstoneArg,
        /// etcd: how many keys the top lists show.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// One page decoded: header and elements (values in hex).
    Page {
        #[command(flatten)]
        db: DbArg,
        id: u64,
        /// Show at most this many bytes of each value.
        #[arg(long, default_value_t = 256)]
        max_value: usize,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TombstoneArg {
    Keep,
    Drop,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FreelistArg {
    Sync,
    None,
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// Hash, revision, total keys and size as `etcdctl snapshot status` prints them, and the
    /// SHA-256 trailer checked as `snapshot restore` checks it. Exit 1 when the trailer does
    /// not match or the file has structural problems.
    Status {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
}

/// A progress bar on stderr for copies of large files, only when stderr is a terminal.
/// Its length is the source file's size: the copy is at most about as large.
fn progress_bar(src: &std::path::Path, dry_run: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let size = std::fs::metadata(src).map_or(0, |m| m.len());
    if dry_run || size < 64 << 20 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} writing {bytes}/~{total_bytes} {bytes_per_sec} {elapsed} {msg}",
        )
        .expect("valid template"),
    );
    bar
}

fn open(a: &DbArg) -> Result<Db, Error> {
    Db::open(&a.db, OpenOptions { lock: !a.no_lock })
}

fn run(cli: Cli) -> Result<u8, Error> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let io = |e: std::io::Error| Error::Io {
        path: "<stdout>".into(),
        source: e,
    };
    let json = |v: &dyn erased::Json, out: &mut BufWriter<_>| -> Result<(), Error> {
        v.write(out).map_err(io)
    };
    let code = match cli.cmd {
        Cmd::Compact {
            src,
            data_dir,
            no_backup,
            output,
            revision,
            keep_revisions,
            tombstone_at_rev,
            fill_percent,
            page_size,
            freelist,
            dry_run,
            force,
            no_verify,
            no_lock,
            json: as_json,
        } => {
            let mvcc = (revision.is_some() || keep_revisions.is_some()).then_some(MvccRequest {
                revision,
                keep_revisions,
                rule: match tombstone_at_rev {
                    TombstoneArg::Keep => TombstoneAtRev::Keep,
                    TombstoneArg::Drop => TombstoneAtRev::Drop,
                },
            });
            let in_place = data_dir.is_some();
            let src = match (src, data_dir) {
                (_, Some(dir)) => dir.join("member/snap/db"),
                (Some(src), None) => src,
                (None, None) => unreachable!("clap requires SRC or --data-dir"),
            };
            if in_place && mvcc.is_some() && !as_json {
                eprintln!(
                    "boltpack: warning: MVCC-compacting one member at a revision its peers have not \
                     compacted to makes its HashKV differ from theirs (`etcdctl endpoint hashkv` and \
                     the corruption check will flag it). Compact every member at the same revision."
                );
            }
            let bar = progress_bar(&src, dry_run);
            let on_progress = |p: Progress| match p {
                Progress::Written(n) => bar.set_position(n),
                Progress::Verifying => bar.set_message("verifying the copy"),
            };
            let report = compact_path(&CompactRequest {
                progress: Some(&on_progress),
                src: &src,
                in_place,
                backup: !no_backup,
                dst: output.as_deref(),
                opts: CompactOptions {
                    fill_percent,
                    page_size,
                    freelist: freelist.map(|f| match f {
                        FreelistArg::Sync => FreelistMode::Sync,
                        FreelistArg::None => FreelistMode::None,
                    }),
                },
                mvcc,
                lock: !no_lock,
                force,
                verify: !no_verify,
                dry_run,
            })?;
            bar.finish_and_clear();
            if as_json {
                json(&report, &mut out)?;
            } else {
                write!(out, "{}", report.render()).map_err(io)?;
            }
            0
        }
        Cmd::Hashkv {
            db,
            rev,
            etcd_version,
            json: as_json,
        } => {
            let rules = boltpack::etcd::Rules::for_version(&etcd_version).map_err(Error::Usage)?;
            let db = open(&db)?;
            match boltpack::etcd::hashkv::hash_kv(&db, rev, &rules) {
                Ok(h) if as_json => {
                    json(&h, &mut out)?;
                    0
                }
                Ok(h) => {
                    write!(out, "{}", boltpack::report::etcd::render_hashkv(&h)).map_err(io)?;
                    0
                }
                Err(boltpack::etcd::hashkv::HashKvError::Read(e)) => return Err(e),
                Err(e) => {
                    eprintln!("boltpack: {e}");
                    EXIT_PROBLEMS
                }
            }
        }
        Cmd::Snapshot {
            cmd: SnapshotCmd::Status { db, json: as_json },
        } => {
            let db = open(&db)?;
            let report = boltpack::report::etcd::SnapshotReport::gather(&db)?;
            if as_json {
                json(&report, &mut out)?;
            } else {
                write!(out, "{}", report.render()).map_err(io)?;
            }
            match report.failure() {
                Some(why) => {
                    eprintln!("boltpack: {why}");
                    EXIT_PROBLEMS
                }
                None => 0,
            }
        }
        Cmd::Info { db, json: as_json } => {
            let db = open(&db)?;
            let map = PageMap::build(&db);
            let info = Info::gather(&db, &map);
            if as_json {
                json(&info, &mut out)?;
            } else {
                write!(out, "{}", info.render()).map_err(io)?;
            }
            0
        }
        Cmd::Check {
            db: arg,
            json: as_json,
        } => {
            let db = open(&arg)?;
            let problems = boltpack::check::check(&db);
            if as_json {
                json(&problems, &mut out)?;
            } else if problems.is_empty() {
                writeln!(out, "ok: {} pages checked, no problems", db.hwm()).map_err(io)?;
            } else {
                for p in &problems {
                    writeln!(out, "{p}").map_err(io)?;
                }
                writeln!(out, "{} problems", problems.len()).map_err(io)?;
            }
            if problems.is_empty() {
                0
            } else {
                EXIT_PROBLEMS
            }
        }
        Cmd::Dump {
            db,
            bucket,
            etcd,
            hash_values,
        } => {
            let db = open(&db)?;
            let path: Vec<Vec<u8>> = bucket.into_iter().map(String::into_bytes).collect();
            dump(&db, &path, DumpOptions { etcd, hash_values }, &mut out)?;
            0
        }
        Cmd::Pages { db, json: as_json } => {
            let db = open(&db)?;
            let map = PageMap::build(&db);
            let lines = page_lines(&db, &map);
            if as_json {
                json(&lines, &mut out)?;
            } else {
                write!(out, "{}", render_page_lines(&lines)).map_err(io)?;
            }
            0
        }
        Cmd::Analyze {
            db,
            json: as_json,
            html,
            prefix_depth,
            by_namespace,
            quota_bytes,
            tombstone_at_rev,
            top,
        } => {
            use std::io::IsTerminal;
            let db = open(&db)?;
            let opts = boltpack::analyze::etcd::EtcdOptions {
                prefix_depth,
                by_namespace,
                quota_bytes,
                rule: match tombstone_at_rev {
                    TombstoneArg::Keep => TombstoneAtRev::Keep,
                    TombstoneArg::Drop => TombstoneAtRev::Drop,
                },
                top,
                progress: db.file_size() > 64 << 20 && std::io::stderr().is_terminal(),
                ..Default::default()
            };
            let a = boltpack::analyze::Analysis::gather_with(&db, &opts)?;
            if let Some(path) = &html {
                std::fs::write(path, boltpack::report::html::render(&a)).map_err(|source| {
                    Error::Io {
                        path: path.clone(),
                        source,
                    }
                })?;
            }
            if as_json {
                json(&a, &mut out)?;
            } else {
                write!(out, "{}", boltpack::report::analyze::render(&a)).map_err(io)?;
            }
            0
        }
        Cmd::Page { db, id, max_value } => {
            let db = open(&db)?;
            let v = page_detail(&db, id, max_value)?;
            json(&v, &mut out)?;
            0
        }
    };
    out.flush().map_err(io)?;
    Ok(code)
}

/// Pretty JSON for any serializable report.
mod erased {
    pub trait Json {
        fn write(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;
    }
    impl<T: serde::Serialize + ?Sized> Json for T {
        fn write(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
            serde_json::to_writer_pretty(&mut *out, self)?;
            out.write_all(b"\n")
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("boltpack: {e}");
            ExitCode::from(match e {
                Error::Locked { .. } => EXIT_LOCKED,
                Error::Io { .. } => EXIT_IO,
                Error::Usage(_) => 2,
                _ => EXIT_PROBLEMS,
            })
        }
    }
}
