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

/// Who may read the output: it is created with `mode` (so it is never readable by more
/// people than that, not even for a moment), and with `owner` it is given that owner and
/// group and exactly `mode` (umask undone) before any byte is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    /// Permission bits (`0o777` at most).
    pub mode: u32,
    /// `(uid, gid)` to give the file: a replaced member db keeps etcd's user.
    pub owner: Option<(u32, u32)>,
}

impl Perms {
    /// A report naming keys: owner only.
    pub const PRIVATE: Perms = Perms {
        mode: 0o600,
        owner: None,
    };

    /// A copy of `src`: its permission bits, narrowed further by the umask.
    pub fn copy_of(src: &std::fs::Metadata) -> Perms {
        use std::os::unix::fs::PermissionsExt;
        Perms {
            mode: src.permissions().mode() & 0o777,
            owner: None,
        }
    }

    /// A replacement for `original`: its bits exactly, its owner and group.
    pub fn replacing(original: &std::fs::Metadata) -> Perms {
        use std::os::unix::fs::MetadataExt;
        Perms {
            owner: Some((original.uid(), original.gid())),
            ..Perms::copy_of(original)
        }
    }

    /// Create `path` (it must not exist) with these permissions.
    pub fn create_new(self, path: &Path) -> std::io::Result<File> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .open(path)?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            file.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        }
        Ok(file)
    }
}

/// Refuse to replace a file that a running process holds for writing (a live member's db or
/// WAL): that process would go on with a file nobody else sees. No flag overrides this.
pub fn refuse_if_held(path: &Path) -> Result<()> {
    match crate::reader::write_locked(path) {
        Ok(false) => Ok(()),
        Ok(true) => Err(Error::LockedTarget {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An I/O error while writing `dst` through its temp file `tmp`: the error names the
/// user's path, and says which file was being written (it is removed on failure).
pub(crate) fn tmp_error(dst: &Path, tmp: &Path, what: &str, source: std::io::Error) -> Error {
    let name = tmp
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Error::Io {
        path: dst.to_path_buf(),
        source: std::io::Error::new(
            source.kind(),
            format!("{what} through its temp file {name} (removed): {source}"),
        ),
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
    /// Refuses an existing `dst` unless `force`, and always one that a process holds for
    /// writing; `dst`'s folder must exist. The temp file gets `perms` from the start.
    pub fn create(dst: &Path, force: bool, perms: Perms) -> Result<AtomicFile> {
        if dst.is_dir() || dst.as_os_str().to_string_lossy().ends_with('/') {
            return Err(Error::Usage(format!(
                "{} is a directory: name the copy's file (e.g. {})",
                dst.display(),
                dst.join("db").display()
            )));
        }
        if dst.exists() && !force {
            return Err(Error::Exists {
                path: dst.to_path_buf(),
            });
        }
        refuse_if_held(dst)?;
        remove_stale(dst);
        let tmp = tmp_name(dst, std::process::id())
            .ok_or_else(|| Error::Usage(format!("{}: not a file name", dst.display())))?;
        let file = perms.create_new(&tmp).map_err(|e| Error::Io {
            path: dst.to_path_buf(),
            source: std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create the copy: its temp file goes beside it, in {}: {e}",
                    match dst.parent() {
                        Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
                        _ => ".".to_string(),
                    }
                ),
            ),
        })?;
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
    /// A `dst` that a process has opened for writing since [`AtomicFile::create`] is still
    /// refused here, just before the rename.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("open until commit");
        file.sync_all()
            .map_err(|e| tmp_error(&self.dst, &self.tmp, "syncing the copy", e))?;
        drop(file);
        refuse_if_held(&self.dst)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The temp file has its final, narrow mode from the moment it exists: no window in
    /// which another user could open it.
    #[test]
    fn the_temp_file_is_created_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("db");
        let mut af = AtomicFile::create(&dst, false, Perms::PRIVATE).unwrap();
        let created = std::fs::metadata(af.tmp_path()).unwrap();
        assert_eq!(created.len(), 0, "nothing written yet");
        assert_eq!(
            created.permissions().mode() & 0o077,
            0,
            "no group or other bits"
        );
        std::io::Write::write_all(af.file(), b"x").unwrap();
        af.commit().unwrap();
        let done = std::fs::metadata(&dst).unwrap();
        assert_eq!(done.permissions().mode() & 0o777, 0o600);
    }
}
