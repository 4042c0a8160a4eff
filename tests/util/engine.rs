//! An engine of a test's own: the host's dockerd in a network and mount namespace of its own,
//! with its own data root, exec root (and so its own containerd), socket and cgroup parent. A
//! test may do to it what it must never do to the shared engine (make it a swarm manager, kill
//! it). Only `lo` is up in its network namespace: nothing it runs reaches any network, and it
//! never touches the host's firewall rules or bridges.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct OwnEngine {
    dir: tempfile::TempDir,
    /// `unshare`, which waits for the engine.
    unshare: Child,
    /// The dockerd process (it runs as the namespace's first process's exec).
    pid: u32,
    /// Its mount namespace (`/proc/PID/ns/mnt`), to find every process it left behind.
    namespace: PathBuf,
}

impl OwnEngine {
    /// Start one and wait until it answers (it takes about 3 s here).
    pub fn start() -> OwnEngine {
        let dir = tempfile::Builder::new()
            .prefix("guestlist-engine")
            .tempdir()
            .expect("a directory for the engine");
        let root = dir.path();
        std::fs::write(root.join("daemon.json"), "{}").expect("daemon.json");
        // A tmpfs on /run hides the host's containerd socket (dockerd then starts its own)
        // and the host's engine sockets; the mount is private to the namespace.
        let script = format!(
            "mount --make-rprivate / && ip link set lo up && mount -t tmpfs tmpfs /run && \
             exec dockerd --config-file {root}/daemon.json --data-root {root}/data \
             --exec-root {root}/exec --pidfile {root}/dockerd.pid -H unix://{root}/docker.sock \
             --iptables=false --cgroup-parent guestlist-test-{pid}",
            root = root.display(),
            pid = std::process::id()
        );
        let log = std::fs::File::create(root.join("dockerd.log")).expect("log file");
        let child = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--fork",
                "--kill-child",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cannot run unshare (util-linux)");
        let unshare = child.id();
        let mut engine = OwnEngine {
            pid: 0,
            namespace: PathBuf::new(),
            dir,
            unshare: child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine.answers() {
            assert!(
                Instant::now() < deadline,
                "the test's own dockerd did not answer within 60 s (unshare pid {unshare}):\n{}",
                engine.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let pid = std::fs::read_to_string(engine.dir.path().join("dockerd.pid"))
            .expect("dockerd.pid")
            .trim()
            .parse()
            .expect("a pid");
        engine.pid = pid;
        engine.namespace = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("its mnt ns");
        engine
    }

    /// `unix:///...`, for `--host` and `DOCKER_HOST`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn answers(&self) -> bool {
        self.docker_output(&["version", "--format", "{{.Server.Version}}"])
            .status
            .success()
    }

    pub fn docker_output(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", self.url())
            .args(args)
            .output()
            .expect("cannot run the docker CLI")
    }

    /// Run the docker CLI against this engine; panic with its stderr when it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_output(args);
        assert!(
            out.status.success(),
            "docker {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The tiny test image, imported into this engine under `tag`.
    pub fn import_image(&self, tag: &str) {
        super::image::import_into(&self.url(), tag, &[]);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for OwnEngine {
    /// Kill the engine and everything it started (containerd, shims, containers): every process
    /// in its mount namespace. Never panics.
    fn drop(&mut self) {
        if self.pid == 0 {
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
            return;
        }
        for _ in 0..3 {
            let mut left = 0;
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
                    .ok()
                    .as_ref()
                    == Some(&self.namespace)
                {
                    left += 1;
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}
