//! The `boltpack` command: parses arguments, calls the library, prints. Exit codes are
//! documented in the README ("Exit codes").

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use boltpack::etcd::TombstoneAtRev;
use boltpack::reader::PageMap;
use boltpack::writer::Progress;
use boltpack::writer::{CompactOptions, FreelistMode};
use boltpack::{Db, Error, OpenOptions};
use boltpack_report::dump::{DumpOptions, dump};
use boltpack_report::info::Info;
use boltpack_report::pages::{page_detail, page_lines, render_page_lines};
use boltpack_report::summary::Summary;

mod cmd;
use cmd::compact::{BackupChoice, CompactRequest, MvccRequest, TrailerChoice};

/// Exit codes (README, "Exit codes").
const EXIT_PROBLEMS: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_IO: u8 = 3;
const EXIT_LOCKED: u8 = 4;
const EXIT_PARTIAL: u8 = 5;

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
    Compact(Box<CompactArgs>),
    /// etcd's HashKV of the key space at a revision, as `etcdctl endpoint hashkv --rev R`
    /// answers it. Exit 1 when R is compacted or in the future.
    Hashkv {
        #[command(flatten)]
        db: DbArg,
        /// The revision to hash (also --revision); 0 (the default) is the current revision.
        #[arg(
            long,
            visible_alias = "revision",
            default_value_t = 0,
            allow_negative_numbers = true
        )]
        rev: i64,
        /// Apply this etcd release's rules where releases differ (3.4.x, 3.5.x, 3.6.x).
        #[arg(long, default_value = "3.4.23")]
        etcd_version: String,
        #[command(flatten)]
        fmt: Format,
    },
    /// etcd snapshot files (`etcdctl snapshot save` output, or a member db).
    Snapshot {
        #[command(subcommand)]
        cmd: SnapshotCmd,
    },
    /// Read keys at a revision, as `etcdctl get` answers from a live etcd: KEY, a range
    /// [KEY, RANGE_END), --prefix or --from-key; at --rev R (default: current). Exit 1
    /// when R is compacted or in the future (as hashkv).
    Get(Box<GetArgs>),
    /// Two backups (db or snapshot) of one cluster compared: keys added, removed and
    /// changed, live keys and value bytes, per key group (as analyze groups them) and in
    /// total; the revisions and history written between them; the keys that grew most.
    Diff(Box<DiffArgs>),
    /// A clean, defragmented copy of a damaged db holding every entry the file still
    /// proves intact: the tree read around its damage, lost `key` bucket revisions
    /// recovered from intact leaf pages elsewhere in the file. SRC is never written. Exit 0
    /// when nothing was lost, 5 when the copy is partial (the report says what is lost).
    Salvage(Box<SalvageArgs>),
    /// Page size, both metas, the active one, freelist kind and page counts.
    Info {
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        fmt: Format,
    },
    /// Verify the file's structure (everything Go bbolt's tx.Check() does, and more).
    /// Exit 0 when clean, 1 with one line per problem.
    Check {
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        fmt: Format,
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
        #[command(flatten)]
        fmt: Format,
    },
    /// Per-bucket statistics (Go's Bucket.Stats()) and file-level figures: page use,
    /// free runs, fill, and an estimate of a defragmented copy's size. On etcd files also
    /// the MVCC figures: revisions, keys, prefixes, a revision histogram, capacity planning.
    Analyze(Box<AnalyzeArgs>),
    /// Print a shell completion script: `boltpack completions bash > /etc/bash_completion.d/boltpack`
    /// (zsh: into a folder on $fpath as _boltpack; fish: ~/.config/fish/completions/boltpack.fish).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// One page decoded: header and elements (values in hex).
    Page {
        #[command(flatten)]
        db: DbArg,
        /// The page id (as `pages` lists them).
        id: u64,
        /// Show at most this many bytes of each value.
        #[arg(long, default_value_t = 256)]
        max_value: usize,
    },
}

#[derive(clap::Args)]
struct CompactArgs {
    /// The source db (read-only).
    #[arg(required_unless_present = "data_dir")]
    src: Option<PathBuf>,
    /// A stopped etcd member's data dir: compact DIR/member/snap/db in place, keeping the
    /// original beside the data dir (DIR.boltpack-backup-<time>.db) unless --no-backup or
    /// --backup. Defragments only, unless --revision. Refused while etcd runs on it.
    #[arg(long, conflicts_with_all = ["src", "output"])]
    data_dir: Option<PathBuf>,
    /// With --data-dir: do not keep the original db.
    #[arg(long, requires = "data_dir", conflicts_with = "backup")]
    no_backup: bool,
    /// With --data-dir: keep the original db here (a file, or a folder for the default
    /// name), outside the data dir.
    #[arg(long, value_name = "PATH", requires = "data_dir")]
    backup: Option<PathBuf>,
    /// The copy (written to a temp file in its folder with the source's permission bits,
    /// fsynced, verified, renamed).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// etcd files: compact MVCC history at this revision (also --rev).
    #[arg(long, visible_alias = "rev", conflicts_with = "keep_revisions")]
    revision: Option<i64>,
    /// etcd files: compact at current revision - N.
    #[arg(long)]
    keep_revisions: Option<i64>,
    /// A tombstone exactly at the revision: keep (etcd >= 3.4.34 / 3.5.16 / 3.6, so
    /// watchers at R still see the delete) or drop (older etcd).
    #[arg(long, value_enum, default_value = "keep")]
    tombstone_at_rev: TombstoneArg,
    /// End the copy with `etcdctl snapshot save`'s SHA-256 trailer, so `snapshot restore`
    /// takes it without --skip-hash-check. auto: when the source has a valid one (an
    /// invalid one is an error: say yes or no to go on).
    #[arg(long, value_enum, default_value = "auto")]
    snapshot_trailer: TrailerArg,
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
    /// etcd: leave the NOSPACE alarms out of the copy, so the restarted member accepts
    /// writes at once (the offline `etcdctl alarm disarm`). With --revision and
    /// --data-dir it is the whole "database space exceeded" recovery in one step.
    #[arg(long)]
    disarm: bool,
    /// Write nothing; print the exact size the copy would have.
    #[arg(long)]
    dry_run: bool,
    /// Replace an existing output file (never one a running process holds).
    #[arg(long)]
    force: bool,
    /// Skip re-reading and checking the copy before the rename.
    #[arg(long)]
    no_verify: bool,
    /// Do not take the shared lock on SRC for reading (only for a copy known to be quiet).
    /// It never allows replacing a file a running process holds.
    #[arg(long)]
    no_lock: bool,
    #[command(flatten)]
    fmt: Format,
}

#[derive(clap::Args)]
struct GetArgs {
    #[command(flatten)]
    db: DbArg,
    /// The key (with --prefix: the prefix; with --from-key: the first key).
    key: String,
    /// The end of the range, excluded (as etcdctl's RANGE_END).
    range_end: Option<String>,
    /// Every key that starts with KEY.
    #[arg(long, conflicts_with_all = ["from_key", "range_end"])]
    prefix: bool,
    /// Every key from KEY on.
    #[arg(long, conflicts_with = "range_end")]
    from_key: bool,
    /// Read at this revision (also --revision); 0, the default, is the current revision.
    #[arg(
        long,
        visible_alias = "revision",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    rev: i64,
    /// Keys only, no values.
    #[arg(long)]
    keys_only: bool,
    /// Say what Kubernetes object each value holds (apiVersion and kind, from the protobuf
    /// envelope or the JSON object), instead of its bytes; JSON objects are printed too.
    #[arg(long, conflicts_with = "keys_only")]
    decode: bool,
    /// At most this many keys (0: all); `count` still counts them all.
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Output format: simple / table (etcdctl's simple: key and value lines) or json
    /// (etcdctl's JSON: base64 keys and values).
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
    write_out: WriteOut,
}

#[derive(clap::Args)]
struct DiffArgs {
    /// The older backup.
    old: PathBuf,
    /// The newer backup.
    new: PathBuf,
    /// Do not take the shared locks (only for copies you know are quiet).
    #[arg(long)]
    no_lock: bool,
    /// Compare even when the two share no member (backups of different clusters).
    #[arg(long)]
    any_cluster: bool,
    /// Group Kubernetes objects by resource and namespace.
    #[arg(long)]
    by_namespace: bool,
    /// Group non-Kubernetes keys by their first N path segments.
    #[arg(long, default_value_t = 1)]
    prefix_depth: usize,
    /// kube-apiserver's --etcd-prefix when it is not /registry; repeatable.
    #[arg(long, value_name = "PREFIX")]
    k8s_prefix: Vec<String>,
    /// How many keys the top-growth list shows.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[command(flatten)]
    fmt: Format,
}

#[derive(clap::Args)]
struct SalvageArgs {
    #[command(flatten)]
    db: DbArg,
    /// The copy (atomic, re-read and verified, never more readable than SRC).
    #[arg(short, long)]
    output: PathBuf,
    /// Replace an existing output file (never one a running process holds).
    #[arg(long)]
    force: bool,
    /// The compact revision to assume when the `meta` bucket is lost (0: never
    /// compacted): revisions above it are then taken from pages outside the tree. With
    /// `meta` readable, the higher of the two counts.
    #[arg(long, value_name = "R")]
    compact_revision: Option<i64>,
    #[command(flatten)]
    fmt: Format,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    fmt: Format,
    /// Also write a self-contained HTML report (inline SVG charts) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Permission bits of the --html report, in octal. It names keys: owner-only by default.
    #[arg(long, value_name = "MODE", default_value = "600", value_parser = parse_mode)]
    report_mode: u32,
    /// etcd: group non-Kubernetes keys by their first N path segments.
    #[arg(long, default_value_t = 1)]
    prefix_depth: usize,
    /// etcd: group Kubernetes objects by resource and namespace.
    #[arg(long)]
    by_namespace: bool,
    /// etcd: kube-apiserver's --etcd-prefix when it is not /registry (OpenShift's
    /// /kubernetes.io and /openshift.io are known too); repeatable.
    #[arg(long, value_name = "PREFIX")]
    k8s_prefix: Vec<String>,
    /// etcd: the member's --quota-backend-bytes, for the headroom figures: bytes or a size
    /// with a unit (8GiB, 8G, 2147483648). Default: etcd's 2 GiB, and the summary says it
    /// is assumed.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    quota_bytes: Option<u64>,
    /// etcd: a tombstone exactly at the candidate revision: keep (etcd >= 3.4.34 /
    /// 3.5.16 / 3.6) or drop (older etcd), as in `compact`.
    #[arg(long, value_enum, default_value = "keep")]
    tombstone_at_rev: TombstoneArg,
    /// etcd: how many keys the top lists show.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// `-w` / `--write-out`, as etcdctl's: `table` (for people; `simple` is the same) or
/// `json`. `--json` stays as the short way to say `-w json`.
#[derive(clap::Args, Clone, Copy)]
struct Format {
    /// Output format: table (for people; simple is the same) or json, as etcdctl's -w;
    /// analyze also prometheus.
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: WriteOut,
    /// Same as -w json.
    #[arg(long)]
    json: bool,
}

impl Format {
    fn json(self) -> bool {
        self.json || self.write_out == WriteOut::Json
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WriteOut {
    #[value(alias = "simple")]
    Table,
    Json,
    /// The Prometheus text format (analyze only), for node_exporter's textfile collector.
    Prometheus,
}

/// `-w prometheus` where a command has no metrics.
fn no_metrics(fmt: Format, cmd: &str) -> Result<(), Error> {
    if fmt.write_out == WriteOut::Prometheus {
        return Err(Error::Usage(format!(
            "-w prometheus is for analyze; {cmd} prints table or json"
        )));
    }
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TrailerArg {
    Auto,
    Yes,
    No,
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
        #[command(flatten)]
        fmt: Format,
    },
}

/// A progress bar on stderr for copies of large files, only when stderr is a terminal.
/// Its length starts as the source file's size, then follows the writer's estimate of
/// the copy's size ([`Progress::Total`]).
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
    not_a_db(&a.db)?;
    Db::open(&a.db, OpenOptions { lock: !a.no_lock })
}

/// The usual ways to name the wrong thing, each with the way out: a data dir or member dir
/// instead of its db, an etcd WAL file, a raft snapshot (`.snap`) file.
fn not_a_db(path: &std::path::Path) -> Result<(), Error> {
    let shown = path.display();
    if path.is_dir() {
        // A data dir holds member/snap/db; a member dir (DATA_DIR/member) holds snap/db.
        let data_dir = if path.join("member/snap/db").is_file() {
            Some(path.to_path_buf())
        } else if path.join("snap/db").is_file() {
            path.parent().map(|p| p.to_path_buf())
        } else {
            None
        };
        return Err(Error::Usage(match data_dir {
            Some(dir) => format!(
                "{shown} is a directory of an etcd member: pass {} to read its db, or \
                 `compact --data-dir {}` to compact it in place",
                dir.join("member/snap/db").display(),
                dir.display()
            ),
            None => format!(
                "{shown} is a directory: pass a db file (a member's is DATA_DIR/member/snap/db)"
            ),
        }));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.ends_with(".wal") {
        return Err(Error::Usage(format!(
            "{shown} is an etcd WAL file (the raft log), not a bbolt db: the member's db is \
             DATA_DIR/member/snap/db"
        )));
    }
    if name.ends_with(".snap") && !name.ends_with(".snap.db") {
        return Err(Error::Usage(format!(
            "{shown} is a raft snapshot file (member/snap/*.snap), not a bbolt db: the \
             member's db is the file `db` beside it"
        )));
    }
    Ok(())
}

/// Standard output of a command. When its reader goes away (`boltpack dump DB | head -1`),
/// the command ends quietly with the exit code it had settled on before printing (`code`),
/// as ripgrep and fd do: a closed pipe is not an error in a `set -o pipefail` script.
struct Out {
    w: BufWriter<std::io::StdoutLock<'static>>,
    /// The exit code when stdout closes early: set by a command before it prints.
    code: u8,
}

impl Out {
    fn new() -> Out {
        Out {
            w: BufWriter::new(std::io::stdout().lock()),
            code: 0,
        }
    }

    fn text(&mut self, s: &str) -> Result<(), Error> {
        self.w.write_all(s.as_bytes()).map_err(stdout_err)
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        self.w.write_all(b).map_err(stdout_err)
    }

    fn json(&mut self, v: &dyn erased::Json) -> Result<(), Error> {
        v.write(&mut self.w).map_err(stdout_err)
    }
}

fn stdout_err(source: std::io::Error) -> Error {
    Error::Write(source)
}

/// The error a closed stdout gives (EPIPE: Rust ignores SIGPIPE, so the write fails).
fn is_closed_stdout(e: &Error) -> bool {
    matches!(e, Error::Write(source) if source.kind() == std::io::ErrorKind::BrokenPipe)
}

fn tombstone_rule(a: TombstoneArg) -> TombstoneAtRev {
    match a {
        TombstoneArg::Keep => TombstoneAtRev::Keep,
        TombstoneArg::Drop => TombstoneAtRev::Drop,
    }
}

fn cmd_compact(c: CompactArgs, out: &mut Out) -> Result<u8, Error> {
    no_metrics(c.fmt, "compact")?;
    let mvcc = (c.revision.is_some() || c.keep_revisions.is_some()).then_some(MvccRequest {
        revision: c.revision,
        keep_revisions: c.keep_revisions,
        rule: tombstone_rule(c.tombstone_at_rev),
    });
    let src = match (&c.src, &c.data_dir) {
        (_, Some(dir)) => dir.join("member/snap/db"),
        (Some(src), None) => src.clone(),
        (None, None) => unreachable!("clap requires SRC or --data-dir"),
    };
    if let Some(src) = &c.src {
        not_a_db(src)?;
    }
    let bar = progress_bar(&src, c.dry_run);
    let on_progress = |p: Progress| match p {
        Progress::Written(n) => bar.set_position(n),
        // The estimate replaces the source's size as soon as there is one; the bar's
        // length becomes exact when the last page is written.
        Progress::Total(n) => bar.set_length(n.max(bar.position())),
        Progress::Verifying => {
            bar.set_length(bar.position());
            bar.set_message("verifying the copy");
        }
    };
    let report = cmd::compact::run(&CompactRequest {
        src: c.src.as_deref(),
        dst: c.output.as_deref(),
        data_dir: c.data_dir.as_deref(),
        opts: CompactOptions {
            fill_percent: c.fill_percent,
            page_size: c.page_size,
            freelist: c.freelist.map(|f| match f {
                FreelistArg::Sync => FreelistMode::Sync,
                FreelistArg::None => FreelistMode::None,
            }),
        },
        mvcc,
        lock: !c.no_lock,
        force: c.force,
        verify: !c.no_verify,
        dry_run: c.dry_run,
        backup: match (c.no_backup, c.backup) {
            (true, _) => BackupChoice::None,
            (false, Some(p)) => BackupChoice::At(p),
            (false, None) => BackupChoice::BesideDataDir,
        },
        trailer: match c.snapshot_trailer {
            TrailerArg::Auto => TrailerChoice::Auto,
            TrailerArg::Yes => TrailerChoice::Yes,
            TrailerArg::No => TrailerChoice::No,
        },
        disarm: c.disarm,
        progress: Some(&on_progress),
    })?;
    bar.finish_and_clear();
    if c.fmt.json() {
        out.json(&Doc::of(&report.src.display().to_string(), &report))?;
    } else {
        out.text(&report.render())?;
    }
    Ok(0)
}

fn cmd_hashkv(
    db: DbArg,
    rev: i64,
    etcd_version: &str,
    json: bool,
    out: &mut Out,
) -> Result<u8, Error> {
    let rules = boltpack::etcd::Rules::for_version(etcd_version).map_err(Error::Usage)?;
    let path = db.db.display().to_string();
    let db = open(&db)?;
    match with_read_bar(&db, "hashkv", || boltpack::etcd::hash_kv(&db, rev, &rules)) {
        Ok(h) if json => out.json(&Doc::of(&path, &h))?,
        Ok(h) => out.text(&boltpack_report::etcd::render_hashkv(&h))?,
        Err(boltpack::etcd::HashKvError::Read(e)) => return Err(e),
        Err(e) => {
            eprintln!("boltpack: {e}");
            return Ok(EXIT_PROBLEMS);
        }
    }
    Ok(0)
}

fn cmd_get(a: GetArgs, out: &mut Out) -> Result<u8, Error> {
    use boltpack::etcd::KeyRange;
    let db = open(&a.db)?;
    let key = a.key.as_bytes();
    let range = match (&a.range_end, a.prefix, a.from_key) {
        (_, true, _) => KeyRange::prefix(key),
        (_, _, true) => KeyRange::From(key.to_vec()),
        (Some(end), _, _) => KeyRange::from_pair(key, end.as_bytes()),
        (None, _, _) => KeyRange::Key(key.to_vec()),
    };
    match with_read_bar(&db, "get", || {
        boltpack::etcd::get(&db, &range, a.rev, a.limit)
    }) {
        Ok(_) if a.write_out == WriteOut::Prometheus => {
            return Err(Error::Usage(
                "-w prometheus is for analyze; get prints simple or json".into(),
            ));
        }
        Ok(r) if a.write_out == WriteOut::Json => out.json(&boltpack_report::etcd::GetJson::of(
            &r,
            a.keys_only,
            a.decode,
        ))?,
        Ok(r) => out.bytes(&boltpack_report::etcd::render_get_simple(
            &r,
            a.keys_only,
            a.decode,
        ))?,
        Err(boltpack::etcd::GetError::Read(e)) => return Err(e),
        Err(e) => {
            eprintln!("boltpack: {e}");
            return Ok(EXIT_PROBLEMS);
        }
    }
    Ok(0)
}

/// `diff -w json`: the schema version and both paths, then the comparison.
#[derive(serde::Serialize)]
struct DiffJson<'a> {
    schema_version: u32,
    old_path: String,
    new_path: String,
    #[serde(flatten)]
    diff: &'a boltpack::analyze::etcd::Diff,
}

fn cmd_diff(a: DiffArgs, out: &mut Out) -> Result<u8, Error> {
    no_metrics(a.fmt, "diff")?;
    let opts = OpenOptions { lock: !a.no_lock };
    not_a_db(&a.old)?;
    not_a_db(&a.new)?;
    let (old, new) = (Db::open(&a.old, opts)?, Db::open(&a.new, opts)?);
    let dopts = boltpack::analyze::etcd::DiffOptions {
        prefix_depth: a.prefix_depth,
        by_namespace: a.by_namespace,
        k8s_prefixes: k8s_prefixes(&a.k8s_prefix),
        top: a.top,
    };
    let d = match with_read_bar(&new, "diff", || {
        boltpack::analyze::etcd::diff(&old, &new, &dopts, a.any_cluster)
    }) {
        Ok(d) => d,
        Err(boltpack::analyze::etcd::DiffError::Read(e)) => return Err(e),
        Err(e) => {
            return Err(Error::Usage(format!(
                "{e}: pass --any-cluster to compare them anyway"
            )));
        }
    };
    let (op, np) = (a.old.display().to_string(), a.new.display().to_string());
    if a.fmt.json() {
        out.json(&DiffJson {
            schema_version: JSON_SCHEMA_VERSION,
            old_path: op,
            new_path: np,
            diff: &d,
        })?;
    } else {
        out.text(&boltpack_report::etcd::render_diff(&d, &op, &np))?;
    }
    Ok(0)
}

/// `salvage -w json`.
#[derive(serde::Serialize)]
struct SalvageJson<'a> {
    schema_version: u32,
    src: String,
    dst: String,
    #[serde(flatten)]
    report: &'a boltpack::salvage::SalvageReport,
    summary: &'a boltpack::writer::CompactSummary,
}

fn cmd_salvage(a: SalvageArgs, out: &mut Out) -> Result<u8, Error> {
    no_metrics(a.fmt, "salvage")?;
    not_a_db(&a.db.db)?;
    // Both metas, or the root bucket's page, unusable: found again by scanning.
    let (db, rebuilt) = boltpack::salvage::open(
        &a.db.db,
        OpenOptions {
            lock: !a.db.no_lock,
        },
    )?;
    let src_meta = std::fs::metadata(&a.db.db).map_err(|source| Error::Io {
        path: a.db.db.clone(),
        source,
    })?;
    let file_out = boltpack::writer::FileOutput {
        force: a.force,
        verify: true,
        perms: boltpack::writer::Perms::copy_of(&src_meta),
        trailer: false,
        progress: None,
    };
    let (report, summary) = with_read_bar(&db, "salvage", || {
        let opts = CompactOptions::default();
        let salvage = boltpack::salvage::SalvageOptions {
            compact_revision: a.compact_revision,
        };
        boltpack::salvage::salvage_file(&db, rebuilt.as_ref(), salvage, &a.output, &opts, &file_out)
    })?;
    out.code = if report.complete { 0 } else { EXIT_PARTIAL };
    if a.fmt.json() {
        out.json(&SalvageJson {
            schema_version: JSON_SCHEMA_VERSION,
            src: a.db.db.display().to_string(),
            dst: a.output.display().to_string(),
            report: &report,
            summary: &summary,
        })?;
    } else {
        out.text(&boltpack_report::salvage::render(
            &report, &summary, &a.output,
        ))?;
    }
    Ok(out.code)
}

fn cmd_snapshot_status(db: DbArg, json: bool, out: &mut Out) -> Result<u8, Error> {
    let path = db.db.display().to_string();
    let db = open(&db)?;
    let report = with_read_bar(&db, "snapshot status", || {
        boltpack_report::etcd::SnapshotReport::gather(&db)
    })?;
    let failure = report.failure();
    out.code = if failure.is_some() { EXIT_PROBLEMS } else { 0 };
    if json {
        out.json(&Doc::of(&path, &report))?;
    } else {
        out.text(&report.render())?;
    }
    if let Some(why) = failure {
        eprintln!("boltpack: {why}");
    }
    Ok(out.code)
}

fn cmd_info(db: DbArg, json: bool, out: &mut Out) -> Result<u8, Error> {
    let path = db.db.display().to_string();
    let db = open(&db)?;
    let map = PageMap::build(&db);
    let info = Info::gather(&db, &map);
    if json {
        out.json(&Doc::of(&path, &info))?;
    } else {
        out.text(&info.render())?;
    }
    Ok(0)
}

/// `check -w json`: whether the file is clean, then every problem found.
#[derive(serde::Serialize)]
struct CheckJson<'a> {
    /// No problems found (exit code 0).
    ok: bool,
    problems: &'a [boltpack::reader::Problem],
}

/// `pages -w json`: one element per page id below the high-water mark.
#[derive(serde::Serialize)]
struct PagesJson<'a, T: serde::Serialize> {
    pages: &'a [T],
}

fn cmd_check(arg: DbArg, json: bool, out: &mut Out) -> Result<u8, Error> {
    let path = arg.db.display().to_string();
    let db = open(&arg)?;
    let problems = with_read_bar(&db, "check", || boltpack::check::check(&db));
    out.code = if problems.is_empty() {
        0
    } else {
        EXIT_PROBLEMS
    };
    if json {
        let body = CheckJson {
            ok: problems.is_empty(),
            problems: &problems,
        };
        out.json(&Doc::of(&path, &body))?;
    } else if problems.is_empty() {
        out.text(&format!("ok: {} pages checked, no problems\n", db.hwm()))?;
    } else {
        for p in &problems {
            out.text(&format!("{p}\n"))?;
        }
        out.text(&format!(
            "{}\n",
            boltpack_report::analyze::plural(problems.len(), "problem")
        ))?;
    }
    Ok(out.code)
}

fn cmd_dump(db: DbArg, bucket: Vec<String>, opts: DumpOptions, out: &mut Out) -> Result<u8, Error> {
    let db = open(&db)?;
    let path: Vec<Vec<u8>> = bucket.into_iter().map(String::into_bytes).collect();
    dump(&db, &path, opts, &mut out.w)?;
    Ok(0)
}

fn cmd_pages(db: DbArg, json: bool, out: &mut Out) -> Result<u8, Error> {
    let path = db.db.display().to_string();
    let db = open(&db)?;
    let map = PageMap::build(&db);
    let lines = page_lines(&db, &map);
    if json {
        out.json(&Doc::of(&path, &PagesJson { pages: &lines }))?;
    } else {
        out.text(&render_page_lines(&lines))?;
    }
    Ok(0)
}

/// `--report-mode`: octal permission bits, at most 0o777.
fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal mode from 000 to 777 (e.g. 600)"))
}

/// Write a report naming keys atomically, created with `mode` (0600 by default): it is
/// never readable by more people than that, not even while it is written.
fn write_report(path: &std::path::Path, mode: u32, bytes: &[u8]) -> Result<(), Error> {
    let perms = boltpack::writer::Perms { mode, owner: None };
    let mut f = boltpack::writer::AtomicFile::create(path, true, perms)?;
    let tmp = f.tmp_path().to_path_buf();
    f.file()
        .write_all(bytes)
        .map_err(|source| Error::Io { path: tmp, source })?;
    f.commit()
}

/// A bar for `analyze`'s pass over the `key` bucket: files over 64 MiB, stderr a terminal.
/// Run `f` with a progress bar on stderr (only when it is a terminal and the file is over
/// 64 MiB): the bytes of pages read so far against the used size of the file, polled
/// from [`Db::bytes_read`] every 100 ms on a thread of its own.
/// The file is read ahead meanwhile ([`Db::with_read_ahead`]): a cold file streams in
/// physical order instead of one fault at a time in tree order.
fn with_read_bar<T>(db: &Db, what: &str, f: impl FnOnce() -> T) -> T {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicBool, Ordering};
    let f = || db.with_read_ahead(f);
    if db.file_size() <= 64 << 20 || !std::io::stderr().is_terminal() {
        return f();
    }
    let total = db.hwm().saturating_mul(u64::from(db.page_size())).max(1);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                bar.set_position(db.bytes_read().min(total));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        let r = f();
        done.store(true, Ordering::Relaxed);
        r
    })
}

fn analyze_bar(db: &Db) -> Option<boltpack::analyze::etcd::PassProgress> {
    use std::io::IsTerminal;
    if db.file_size() <= 64 << 20 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} revisions ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("analyze: key bucket");
    Some(std::sync::Arc::new(move |done, total| {
        bar.set_length(total);
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
        }
    }))
}

/// `analyze --json`: the summary first, then every figure of the analysis (its fields at
/// the top level, as before the summary existed).
#[derive(serde::Serialize)]
struct AnalyzeJson<'a> {
    schema_version: u32,
    path: &'a str,
    summary: &'a Summary,
    #[serde(flatten)]
    analysis: &'a boltpack::analyze::Analysis,
}

/// Bumped when a JSON document loses or changes a field (adding one does not).
const JSON_SCHEMA_VERSION: u32 = 2;

/// Now, as `2026-12-03 06:00:00 UTC` (civil date from the Unix time: days to
/// year/month/day by Howard Hinnant's algorithm, so no date crate is needed).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The known Kubernetes prefixes, then the user's, each ending in `/`.
fn k8s_prefixes(extra: &[String]) -> Vec<String> {
    let mut all: Vec<String> = boltpack::analyze::etcd::K8S_PREFIXES
        .iter()
        .map(|p| p.to_string())
        .collect();
    for p in extra {
        let p = if p.ends_with('/') {
            p.clone()
        } else {
            format!("{p}/")
        };
        if !all.contains(&p) {
            all.insert(0, p);
        }
    }
    all
}

fn parse_size(s: &str) -> Result<u64, String> {
    boltpack_report::units::parse_size(s)
}

fn cmd_analyze(a: AnalyzeArgs, out: &mut Out) -> Result<u8, Error> {
    let db = open(&a.db)?;
    let opts = boltpack::analyze::etcd::EtcdOptions {
        prefix_depth: a.prefix_depth,
        by_namespace: a.by_namespace,
        k8s_prefixes: k8s_prefixes(&a.k8s_prefix),
        quota_bytes: a
            .quota_bytes
            .unwrap_or(boltpack::analyze::etcd::DEFAULT_QUOTA_BYTES),
        rule: tombstone_rule(a.tombstone_at_rev),
        top: a.top,
        progress: analyze_bar(&db),
        ..Default::default()
    };
    let analysis = db.with_read_ahead(|| boltpack::analyze::Analysis::gather_with(&db, &opts))?;
    let summary = Summary::of(&a.db.db, &analysis, a.quota_bytes.is_none());
    if let Some(path) = &a.html {
        let made = boltpack_report::html::Made {
            path: &summary.path,
            time: &utc_now(),
            version: env!("CARGO_PKG_VERSION"),
        };
        let html = boltpack_report::html::render(&analysis, &summary, &made);
        write_report(path, a.report_mode, html.as_bytes())?;
    }
    if a.fmt.write_out == WriteOut::Prometheus {
        out.text(&boltpack_report::prometheus::render(&analysis, &summary))?;
    } else if a.fmt.json() {
        out.json(&AnalyzeJson {
            schema_version: JSON_SCHEMA_VERSION,
            path: &summary.path,
            summary: &summary,
            analysis: &analysis,
        })?;
    } else {
        out.text(&boltpack_report::analyze::render(&analysis, &summary))?;
    }
    Ok(0)
}

fn cmd_page(db: DbArg, id: u64, max_value: usize, out: &mut Out) -> Result<u8, Error> {
    let db = open(&db)?;
    let v = page_detail(&db, id, max_value)?;
    out.json(&v)?;
    Ok(0)
}

fn dispatch(cmd: Cmd, out: &mut Out) -> Result<u8, Error> {
    match cmd {
        Cmd::Compact(c) => cmd_compact(*c, out),
        Cmd::Hashkv {
            db,
            rev,
            etcd_version,
            fmt,
        } => {
            no_metrics(fmt, "hashkv")?;
            cmd_hashkv(db, rev, &etcd_version, fmt.json(), out)
        }
        Cmd::Snapshot {
            cmd: SnapshotCmd::Status { db, fmt },
        } => {
            no_metrics(fmt, "snapshot status")?;
            cmd_snapshot_status(db, fmt.json(), out)
        }
        Cmd::Info { db, fmt } => {
            no_metrics(fmt, "info")?;
            cmd_info(db, fmt.json(), out)
        }
        Cmd::Check { db, fmt } => {
            no_metrics(fmt, "check")?;
            cmd_check(db, fmt.json(), out)
        }
        Cmd::Dump {
            db,
            bucket,
            etcd,
            hash_values,
        } => cmd_dump(db, bucket, DumpOptions { etcd, hash_values }, out),
        Cmd::Pages { db, fmt } => {
            no_metrics(fmt, "pages")?;
            cmd_pages(db, fmt.json(), out)
        }
        Cmd::Analyze(a) => cmd_analyze(*a, out),
        Cmd::Get(a) => cmd_get(*a, out),
        Cmd::Diff(a) => cmd_diff(*a, out),
        Cmd::Salvage(a) => cmd_salvage(*a, out),
        Cmd::Page { db, id, max_value } => cmd_page(db, id, max_value, out),
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "boltpack", &mut buf);
            out.text(&String::from_utf8_lossy(&buf))?;
            Ok(0)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Error> {
    let mut out = Out::new();
    let done = dispatch(cli.cmd, &mut out).and_then(|code| {
        out.w.flush().map_err(stdout_err)?;
        Ok(code)
    });
    match done {
        Err(e) if is_closed_stdout(&e) => Ok(out.code),
        done => done,
    }
}

/// A JSON document: the schema version and the file's path, then the command's fields.
#[derive(serde::Serialize)]
struct Doc<'a, T: serde::Serialize> {
    schema_version: u32,
    path: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

impl<'a, T: serde::Serialize> Doc<'a, T> {
    fn of(path: &'a str, body: &'a T) -> Doc<'a, T> {
        Doc {
            schema_version: JSON_SCHEMA_VERSION,
            path,
            body,
        }
    }
}

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

/// What to pass to get past an error, in this command's flags (the library names none).
fn hint(e: &Error) -> &'static str {
    match e {
        Error::Locked { .. } => "; pass --no-lock only for a copy you know is quiet",
        Error::Exists { .. } => ": pass --force to replace it",
        Error::BadTrailer { .. } => {
            ". Pass --snapshot-trailer no to write the copy without one, or yes to give it a \
             fresh one"
        }
        _ => "",
    }
}

/// The exit code of an error (README, "Exit codes").
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Locked { .. } | Error::LockedTarget { .. } => EXIT_LOCKED,
        Error::Io { .. } | Error::Write(_) => EXIT_IO,
        Error::Usage(_) | Error::Exists { .. } => EXIT_USAGE,
        _ => EXIT_PROBLEMS,
    }
}

fn main() -> ExitCode {
    boltpack::reader::map_large_allocations();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("boltpack: {e}{}", hint(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every command says what it is in `--help`.
    #[test]
    fn every_argument_has_a_help_line() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() {
                    missing.push(format!("{path}: {id}"));
                }
            }
            for sc in c.get_subcommands() {
                walk(sc, &format!("{path} {}", sc.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "boltpack", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
