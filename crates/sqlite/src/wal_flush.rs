//! Starts the write-back of the WAL's new frames soon after each commit, off the writer.
//!
//! With `synchronous = NORMAL` a commit only writes its frames into the page cache. The
//! kernel writes them back when it likes, so between checkpoints the WAL gathers dirty
//! pages, and the first commit after the WAL restarts from its beginning syncs the WAL's
//! new header (SQLite does that even at NORMAL, against a torn restart): that fsync
//! writes back everything still dirty first, and every accept in the writer's batch
//! waits for it. Asking the kernel to start writing the frames back right after they are
//! committed keeps that fsync short. PostgreSQL flushes its WAL the same way
//! (`wal_writer_flush_after`). Durability does not change: nothing waits for this.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// How long the flusher rests after starting a write-back: commits arrive every few
/// hundred microseconds under load, and one call covers all frames written so far.
const FLUSH_PAUSE: Duration = Duration::from_millis(2);

/// Starts the flusher thread for the WAL of the database at `database`; it wakes on each
/// signal from `commits` and ends when the writer does.
pub(crate) fn start(database: PathBuf, commits: mpsc::Receiver<()>) {
    let mut wal = database.into_os_string();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    std::thread::Builder::new()
        .name("herald-sqlite-flush".into())
        .spawn(move || {
            // Opened at the first commit, when the WAL exists, and kept: SQLite deletes
            // the WAL only when the last connection closes, at shutdown, and flushing a
            // deleted file does no harm.
            let mut file = None;
            while commits.recv().is_ok() {
                if file.is_none() {
                    file = File::open(&wal).ok();
                }
                if let Some(file) = &file {
                    start_write_back(file);
                }
                std::thread::sleep(FLUSH_PAUSE);
            }
        })
        .expect("spawn the SQLite WAL flusher thread");
}

/// Starts writing back the file's dirty pages, without waiting for them or for the disk.
#[cfg(target_os = "linux")]
fn start_write_back(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor for the whole call; offset 0 and length 0 mean the whole file.
    let started =
        unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if started != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not start the WAL's write-back");
    }
}

/// Elsewhere there is no call that starts a write-back without waiting for it.
#[cfg(not(target_os = "linux"))]
fn start_write_back(_file: &File) {}
