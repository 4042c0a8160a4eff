//! The tiny test image, built from Debian's busybox-static with `docker import`: no registry is
//! reachable, so nothing is ever pulled. It carries image defaults (env, command, volume, port,
//! label, workdir, healthcheck) so the tests see that guestlist does not record them.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The shared image: imported once, then reused by later test runs. Tests never retag it.
pub fn test_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    const TAG: &str = "guestlist-test:1";
    IMAGE
        .get_or_init(|| {
            if super::docker_output(&["image", "inspect", TAG])
                .status
                .success()
            {
                return TAG.to_string();
            }
            import(TAG, &[])
        })
        .clone()
}

/// An image reference as the engine reports it in `Config.Image`: Podman qualifies a short name
/// with the registry it would pull from.
pub fn as_reported(reference: &str) -> String {
    match super::podman() && !reference.contains('/') {
        true => format!("docker.io/library/{reference}"),
        false => reference.to_string(),
    }
}

/// Import the busybox image under `tag` with extra `--change` instructions; returns the tag.
/// Each import makes a new image id, which the image-identity tests rely on.
pub fn import(tag: &str, extra_changes: &[&str]) -> String {
    let podman = super::podman();
    import_to(None, podman, tag, extra_changes)
}

/// `import` into the (Docker) engine at `host` instead of the one under test.
pub fn import_into(host: &str, tag: &str, extra_changes: &[&str]) -> String {
    import_to(Some(host), false, tag, extra_changes)
}

/// `import` through the endpoint at `host` (a proxy in front of the engine under test).
pub fn import_via(host: &str, tag: &str, extra_changes: &[&str]) -> String {
    import_to(Some(host), super::podman(), tag, extra_changes)
}

fn import_to(host: Option<&str>, podman: bool, tag: &str, extra_changes: &[&str]) -> String {
    let root = tempfile::tempdir().expect("temporary directory");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin directory");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc directory");
    std::fs::create_dir_all(root.path().join("tmp")).expect("tmp directory");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox not found: install busybox-static (.ci/provision does)");
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    for applet in [
        "sh", "sleep", "cat", "echo", "ls", "true", "id", "hostname", "env", "touch",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
    }
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(
        root.path().join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\n",
    )
    .expect("group");

    let tar = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["-c", "."])
        .output()
        .expect("run tar");
    assert!(tar.status.success(), "tar failed");

    let mut changes = vec![
        "ENV IMG_ENV=from-image PATH=/bin",
        "CMD [\"sleep\", \"3600\"]",
        "VOLUME /vol",
        "EXPOSE 7000",
        "LABEL img.label=from-image",
        "WORKDIR /tmp",
    ];
    // Podman 4.3 imports no HEALTHCHECK; its images carry none.
    if !podman {
        changes.push("HEALTHCHECK --interval=300s CMD true");
    }
    changes.extend_from_slice(extra_changes);
    let mut args = vec!["import".to_string()];
    for change in changes {
        args.push("--change".into());
        args.push(change.into());
    }
    args.push("-".into());
    args.push(tag.into());
    let mut command = Command::new("docker");
    if let Some(host) = host {
        command.env("DOCKER_HOST", host);
    }
    let mut child = command
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run docker import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&tar.stdout)
        .expect("write image tarball");
    assert!(
        child.wait().expect("docker import").success(),
        "docker import failed"
    );
    tag.to_string()
}
