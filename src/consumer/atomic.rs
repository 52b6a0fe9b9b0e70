//! [`write_atomically`]: a file replaced so that a reader (or a crash) sees the old file or the
//! new one, never a mix, and what killed writes left beside it cleaned up.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old file or the new one,
/// never a mix: write a temporary file beside it (`.NAME.<random>.snapsync-tmp`), sync it,
/// rename it over `path`, sync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, bytes, true)
}

/// [`write_atomically`], but only when nothing is at `path`: the rename fails (an error of
/// kind `AlreadyExists`, the file left as it is) if a file appeared there meanwhile, so a
/// check beforehand cannot be raced into an overwrite.
pub fn write_new_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, bytes, false)
}

fn write_with(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::io(path, std::io::Error::other("not a file name")))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    // The temporary's name is random and it is created with O_CREAT|O_EXCL, so nothing
    // planted in the directory (a symlink at a name we would pick, say) can redirect the
    // write: an existing name is skipped, never opened. Mode 0666 less the umask, as a plain
    // create would give (a temporary file's default is 0600).
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".snapsync-tmp");
    #[cfg(unix)]
    builder
        .permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o666));
    let result = (|| {
        // Removed on every error path when dropped.
        let mut tmp = builder.tempfile_in(&dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        let written_at = tmp.as_file().metadata()?.modified().ok();
        // rename(2) replaces the directory entry at `path`: if `path` is a symlink, the
        // symlink itself becomes this regular file and whatever it pointed at is untouched.
        // That is intended: `--out` names the file snapsync owns, not a way to write
        // somewhere else.
        if replace {
            tmp.persist(path).map_err(|e| e.error)?;
        } else {
            tmp.persist_noclobber(path).map_err(|e| e.error)?;
        }
        // The rename is durable once the directory is synced (best effort: not every
        // platform can open a directory).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        if let (Some(at), Some(prefix)) = (written_at, prefix.to_str()) {
            remove_stale_temporaries(&dir, prefix, at);
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| Error::io(path, e))
}

/// A temporary this much older than the one just written is a leftover of a killed write.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes what killed writes of the same file left in `dir`: regular files named
/// `PREFIX…snapsync-tmp` (`.NAME.<random>.snapsync-tmp`, and `.NAME.snapsync-tmp` of earlier
/// releases) last modified an hour or more before `now` — the modification time of the
/// temporary just written, so the file system's clock, not ours, says what is old. Younger
/// ones may be another process's write in progress; symlinks are never snapsync's (and
/// `remove_file` would only unlink the link). Best effort: a failure here loses nothing.
fn remove_stale_temporaries(dir: &Path, prefix: &str, now: std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(prefix) || !name.ends_with(".snapsync-tmp") {
            continue;
        }
        let stale = entry
            .metadata()
            .ok()
            .filter(|m| m.file_type().is_file())
            .and_then(|m| m.modified().ok())
            .is_some_and(|t| {
                now.duration_since(t)
                    .is_ok_and(|age| age >= STALE_TEMPORARY)
            });
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
