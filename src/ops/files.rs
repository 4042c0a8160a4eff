//! Operations side: the files guestlist keeps (state, audit log, lock, restart history,
//! metrics textfile) are written whole or not at all, and read only from places no other user
//! can write.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Replace `path` with `contents` atomically, readable by the owner only, creating its
/// directory (0700) when needed: a crash leaves the old file or the new one, never half.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = directory_of(path);
    create_private_dir(&dir)?;
    trusted(&dir, "state directory")?;
    write_atomic(path, contents, 0o600)
}

/// `write_private` for the state file: when `path` is a symlink, the file it points to is
/// replaced (renamed over, the link itself would be, and the list would silently split in
/// two), provided every link on the way is in a directory only this user or root can write.
pub fn write_private_through(path: &Path, contents: &[u8]) -> Result<()> {
    let (file, links) = follow(path)?;
    for link in &links {
        trusted(&directory_of(link), "state directory")?;
    }
    write_private(&file, contents)
}

/// Replace `path` atomically with `contents` and permissions `mode`, in an existing directory:
/// temporary file beside it, fsync, rename, directory fsync. A reader sees the old file or the
/// new one, never a mix; a crash never leaves an empty file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = directory_of(path);
    // Created 0600 with a random name in the same directory, so the rename is atomic and
    // nobody reads it half-written.
    let mut file = tempfile::NamedTempFile::new_in(&dir)?;
    file.write_all(contents)?;
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))?;
    Ok(())
}

/// The directory a file is in; `.` for a bare file name.
pub fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Refuse, as ssh does with its keys, a file or directory that another user could have
/// written: whoever can write the list decides what runs on the host, with the engine's
/// (root) power. Owned by this user or root, and writable by nobody else.
pub fn trusted(path: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        bail!(
            "refusing {what} {}: it is owned by uid {}, not by this user (uid {me}) or root; \
             whoever can write it decides what runs on this host (chown it, or use --state)",
            path.display(),
            meta.uid()
        );
    }
    let mode = meta.mode() & 0o777;
    // Mode bits do not matter where no one can write: a Kubernetes ConfigMap's directories
    // are 1777, but the volume is mounted read-only.
    let read_only = rustix::fs::statvfs(path)
        .is_ok_and(|fs| fs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    if mode & 0o022 != 0 && !read_only {
        bail!(
            "refusing {what} {}: it is writable by {} (mode {mode:03o}); whoever can write it \
             decides what runs on this host (fix with `chmod go-w {}`)",
            path.display(),
            if mode & 0o020 != 0 && mode & 0o002 != 0 {
                "group and others"
            } else if mode & 0o020 != 0 {
                "its group"
            } else {
                "others"
            },
            path.display()
        );
    }
    Ok(())
}

/// Refuse the state file at `path` if anyone but this user or root could have written it or
/// could point it elsewhere: the file, its directory, and when `path` is a symlink (a
/// Kubernetes ConfigMap's files are), every link on the way and the directory it is in. A link
/// that leads nowhere is named as such, rather than taken for a missing state file (whose
/// next step, `snapshot`, would replace the link). Nothing to check if there is no file.
pub fn trusted_state(path: &Path) -> Result<()> {
    let (file, links) = follow(path)?;
    if !file.exists() {
        return Ok(());
    }
    let link = || format!("{} is a symlink to {}", path.display(), file.display());
    if links.is_empty() {
        trusted(&file, "state file")?;
        return trusted(&directory_of(&file), "state directory");
    }
    for met in &links {
        trusted(&directory_of(met), "state directory").with_context(link)?;
    }
    trusted(&file, "state file").with_context(link)?;
    trusted(&directory_of(&file), "state directory").with_context(link)
}

/// The file `path` names in the end, following symbolic links one at a time, and the links
/// met on the way (`path` first when it is one). A path that does not exist is its own end; a
/// link whose target does not exist is an error that names both.
pub fn follow(path: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let mut at = path.to_path_buf();
    let mut links = Vec::new();
    // As many as the kernel follows (MAXSYMLINKS) before it gives up with ELOOP.
    for _ in 0..40 {
        let target = match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => fs::read_link(&at)
                .with_context(|| format!("cannot read the symlink {}", at.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !links.is_empty() => bail!(
                "{} is a symlink to {}, which does not exist; point the link at the state \
                 file, or pass --state with the file's own path",
                path.display(),
                at.display()
            ),
            _ => return Ok((at, links)),
        };
        let next = match at.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
        links.push(std::mem::replace(&mut at, next));
    }
    bail!(
        "{} is a symlink that leads to itself or too far (more than 40 links)",
        path.display()
    )
}

/// Create `dir` and its parents, 0700, unless it exists.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))
}
