//! The exclusive lock beside the state file (`state.json` → `state.lock`). Every command that
//! changes the host or the state holds it, so overlapping cron runs, a manual `enforce` while
//! `watch` runs, or a `snapshot` during a pass never act at once: the second waits, then plans
//! from what the first left.
//!
//! An advisory `flock` on an open file: the kernel drops it when the holder exits, however it
//! exits (SIGKILL included), so a stale lock file never blocks anyone. The holder's pid is
//! written into it only to tell the waiter whom it waits for.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::error::Hint;

/// How often a waiter tries again. Passes take tens of milliseconds to seconds; 50 ms adds
/// little to the wait and costs nothing.
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// Held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Take the lock at `path`, waiting up to `timeout` for another holder to finish.
/// `waiting` is called once if the lock is busy, with the holder's pid when known.
pub async fn acquire(
    path: &Path,
    timeout: Duration,
    waiting: impl FnOnce(Option<u32>),
) -> Result<Lock> {
    let mut file = open(path)?;
    let deadline = Instant::now() + timeout;
    let mut waiting = Some(waiting);
    loop {
        match file.try_lock() {
            Ok(()) => {
                // The pid is a courtesy for waiters; failing to write it must not fail the pass.
                let _ = file
                    .set_len(0)
                    .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()));
                return Ok(Lock { _file: file });
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        if let Some(tell) = waiting.take() {
            tell(holder(&mut file));
        }
        if Instant::now() >= deadline {
            let who = match holder(&mut file) {
                Some(pid) => format!("process {pid}"),
                None => "another guestlist".into(),
            };
            return Err(anyhow!(
                "{who} still holds {} after {}",
                path.display(),
                humantime::format_duration(timeout)
            ))
            .context(Hint(format!(
                "another pass is running against this state file; wait for it, check {who}, or \
                 raise --lock-timeout (now {})",
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::ops::files::create_private_dir(dir).map_err(|e| elsewhere(e, dir))?;
        // In a directory others can write, the lock file could be a planted symlink that
        // opening (and truncating) as root would follow.
        crate::ops::files::trusted(dir, "state directory")?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))
        .map_err(|e| elsewhere(e, &crate::ops::files::directory_of(path)))
}

/// The lock cannot be made where it is asked for: a directory that is read-only (a
/// Kubernetes ConfigMap, a read-only mount) or not this user's to write. Say so, and where
/// else it can live.
fn elsewhere(err: anyhow::Error, dir: &Path) -> anyhow::Error {
    use std::io::ErrorKind;
    let kind = err
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let why = match kind {
        Some(ErrorKind::ReadOnlyFilesystem) => "is on a read-only file system",
        Some(ErrorKind::PermissionDenied) => "is not writable by this user",
        _ => return err,
    };
    err.context(format!(
        "the lock lives beside the state file, and {} {why}",
        dir.display()
    ))
    .context(Hint(
        "pass --run-dir DIR (or set GUESTLIST_RUN_DIR) to keep the lock and the restart history \
         in a directory this user can write; snapshot, forget and restore write the state file \
         itself too, so they need its directory writable"
            .into(),
    ))
}

/// The pid the current holder wrote, if it wrote one yet.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_second_taker_waits_names_the_holder_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.lock");
        let rt = runtime();
        let first = rt
            .block_on(acquire(&state, Duration::ZERO, |_| panic!("free lock")))
            .unwrap();
        let mut told = None;
        let started = Instant::now();
        let err = rt
            .block_on(acquire(&state, Duration::from_millis(200), |pid| {
                told = Some(pid)
            }))
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(told, Some(Some(std::process::id())));
        let message = format!("{err:#}");
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("--lock-timeout"), "{message}");

        drop(first);
        rt.block_on(acquire(&state, Duration::ZERO, |_| panic!("released lock")))
            .unwrap();
    }
}
