//! Atomic output: a temp file in the destination's folder, fsync, rename, fsync of the
//! folder. The destination is never half-written; a crash leaves only a temp file, which
//! the next run removes.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const TMP_TAG: &str = ".boltpack-tmp-";

/// How many bytes of the copy go out between two nudges of the write-behind thread.
pub const WRITE_BEHIND_STEP: u64 = 16 << 20;

/// Write-behind: a thread that fdatasyncs `file` each time it is nudged, so the disk
/// writes the copy while the copy is still being built and the final fsync only waits for
/// the tail. Left alone, the kernel keeps it all in the page cache until that fsync (a
/// 1 GiB copy stays below the 10% background dirty ratio of a 24 GiB machine) and the disk
/// idles while the copy is built. The thread ends when the sender is dropped.
///
/// The thread's first error is its result: fsync reports a writeback error once per open
/// file, so an error seen here would not be seen again by the final fsync.
pub fn spawn_write_behind<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    file: File,
) -> (
    std::sync::mpsc::SyncSender<()>,
    std::thread::ScopedJoinHandle<'s, std::io::Result<()>>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let h = scope.spawn(move || {
        for () in rx {
            file.sync_data()?;
        }
        Ok(())
    });
    (tx, h)
}

pub struct AtomicFile {
    tmp: PathBuf,
    dst: PathBuf,
    file: Option<File>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `.NAME.boltpack-tmp-PID` next to `dst`.
fn tmp_name(dst: &Path, pid: u32) -> Option<PathBuf> {
    let name = dst.file_name()?.to_str()?;
    Some(dst.with_file_name(format!(".{name}{TMP_TAG}{pid}")))
}

/// Remove temp files of earlier runs that died (their pid is gone).
fn remove_stale(dst: &Path) {
    let (Some(dir), Some(name)) = (dst.parent(), dst.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{name}{TMP_TAG}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let fname = e.file_name();
        let Some(pid) = fname.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl AtomicFile {
    /// Refuses an existing `dst` unless `force`; `dst`'s folder must exist.
    pub fn create(dst: &Path, force: bool) -> Result<AtomicFile> {
        if dst.exists() && !force {
            return Err(Error::Usage(format!(
                "{} already exists: pass --force to replace it",
                dst.display()
            )));
        }
        if dst.is_dir() {
            return Err(Error::Usage(format!("{} is a directory", dst.display())));
        }
        remove_stale(dst);
        let tmp = tmp_name(dst, std::process::id())
            .ok_or_else(|| Error::Usage(format!("{}: not a file name", dst.display())))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        Ok(AtomicFile {
            tmp,
            dst: dst.to_path_buf(),
            file: Some(file),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until commit")
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// fsync the data (the caller has written it all), rename over `dst`, fsync the folder.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("open until commit");
        file.sync_all().map_err(io(&self.tmp))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dst).map_err(io(&self.dst))?;
        let dir = match self.dst.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
