//! An engine of a test's own: a dockerd in a network and mount namespace of its own, with its own
//! data root, exec root (and so its own containerd), socket and cgroup parent, started by
//! `.ci/dockerd-in-root` from the host's binaries or from a Debian root that `.ci/provision`
//! built (Docker 26 from trixie, 28 from forky). A test may do to it what it must never do to
//! the shared engine: make it a swarm manager, kill it, upgrade it. Only `lo` is up in its
//! network namespace: nothing it runs reaches any network, and it never touches the host's
//! firewall rules or bridges.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where an engine's binaries come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binaries {
    /// The host's Docker 20.10.
    Host,
    /// Docker 26.1 from the Debian trixie root.
    Trixie,
    /// Docker 28.5 from the Debian forky root.
    Forky,
}

impl Binaries {
    fn root(self) -> PathBuf {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        match self {
            Binaries::Host => PathBuf::from("/"),
            Binaries::Trixie => manifest.join("target/engines/trixie"),
            Binaries::Forky => manifest.join("target/engines/forky"),
        }
    }
}

pub struct OwnEngine {
    /// Socket, pid file, exec and data root, daemon.json and the log.
    dir: PathBuf,
    /// Kept by the engine that made it: removed when that one is dropped.
    _owned: Option<tempfile::TempDir>,
    /// `unshare`, which waits for the engine's namespace.
    unshare: Child,
    /// Its mount namespace, to find every process it left behind.
    namespace: Option<Namespace>,
}

impl OwnEngine {
    /// The host's dockerd, with default settings; it answers in about 3 s here.
    pub fn start() -> OwnEngine {
        OwnEngine::start_from(Binaries::Host, "{}")
    }

    /// A dockerd from `binaries` with `daemon_json` on a data root of its own.
    pub fn start_from(binaries: Binaries, daemon_json: &str) -> OwnEngine {
        let dir = tempfile::Builder::new()
            .prefix("guestlist-engine")
            .tempdir()
            .expect("a directory for the engine");
        let path = dir.path().to_path_buf();
        OwnEngine::launch(binaries, path, Some(dir), daemon_json)
    }

    /// A dockerd from `binaries` on the data root `previous` used (stopped first): an upgrade,
    /// or a change of its settings. The directory now lives as long as the new engine.
    pub fn take_over(previous: OwnEngine, binaries: Binaries, daemon_json: &str) -> OwnEngine {
        let (dir, owned) = previous.stop();
        OwnEngine::launch(binaries, dir, owned, daemon_json)
    }

    fn launch(
        binaries: Binaries,
        dir: PathBuf,
        owned: Option<tempfile::TempDir>,
        daemon_json: &str,
    ) -> OwnEngine {
        let root = binaries.root();
        assert!(
            binaries == Binaries::Host || root.join(".guestlist-ready").exists(),
            "no Docker root at {}: run .ci/provision",
            root.display()
        );
        std::fs::write(dir.join("daemon.json"), daemon_json).expect("daemon.json");
        let unshare = spawn(&root, &dir);
        let mut engine = OwnEngine {
            dir,
            _owned: owned,
            unshare,
            namespace: None,
        };
        // Now and then, under a loaded suite, a fresh dockerd starts its containerd and never
        // hears from it (nothing more in its log). Started again, it comes up: one more try
        // before the test fails, with the first log kept for whoever reads the failure.
        if !engine.answers_within(Duration::from_secs(60)) {
            let first = engine.log();
            eprintln!(
                "the test's own dockerd did not answer within 60 s; starting it again:\n{first}"
            );
            engine.kill_everything();
            for stale in ["dockerd.pid", "exec/containerd/containerd.pid"] {
                let _ = std::fs::remove_file(engine.dir.join(stale));
            }
            engine.unshare = spawn(&root, &engine.dir);
            assert!(
                engine.answers_within(Duration::from_secs(90)),
                "the test's own dockerd did not answer, started twice:\n{first}\n---\n{}",
                engine.log()
            );
        }
        let pid = engine.dockerd_pid().expect("dockerd.pid");
        engine.namespace = Some(Namespace::of(pid).expect("its mount namespace"));
        engine
    }

    fn answers_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.answers() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        true
    }

    fn wait_until_it_answers(&self) {
        assert!(
            self.answers_within(Duration::from_secs(60)),
            "the test's own dockerd did not answer within 60 s:\n{}",
            self.log()
        );
    }

    /// The running dockerd's pid.
    pub fn dockerd_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("dockerd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Start dockerd again after it was killed, in the same namespaces, and wait for it. The
    /// containerd it started died with it; this machine's init reaps such orphans late, and
    /// dockerd 20.10 takes the zombie named in containerd's pid file for a live containerd and
    /// waits for it in vain. Under systemd the dead process is gone at once, as the pid file's
    /// removal makes it here.
    pub fn restart_dockerd(&self) {
        let pid_file = self.dir.join("exec/containerd/containerd.pid");
        let alive = || {
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|pid| {
                    std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok()
                })
                .is_some_and(|status| {
                    !status
                        .lines()
                        .any(|l| l.starts_with("State:") && l.contains('Z'))
                })
        };
        // It is killed with dockerd, but its end can take a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !alive() {
            let _ = std::fs::remove_file(&pid_file);
        }
        std::fs::write(self.dir.join("start"), "").expect("ask for a start");
        self.wait_until_it_answers();
    }

    /// Shut dockerd down as systemd would (SIGTERM: it stops the containers, as without
    /// live-restore) and wait; then end everything else in its namespace. Returns its directory.
    fn stop(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        std::fs::write(self.dir.join("stop"), "").expect("ask for the end");
        if let Some(pid) = self.dockerd_pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill_everything();
        (self.dir.clone(), self._owned.take())
    }

    /// Write a new daemon.json and have dockerd reload it (SIGHUP), as `systemctl reload
    /// docker` does.
    pub fn reload(&self, daemon_json: &str) {
        std::fs::write(self.dir.join("daemon.json"), daemon_json).expect("daemon.json");
        let pid = self.dockerd_pid().expect("dockerd.pid").to_string();
        let sent = Command::new("kill").args(["-HUP", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "cannot signal dockerd");
    }

    /// Its directory (data root, exec root with containerd's socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup its containers run under; a process put there ends with the engine.
    pub fn cgroup_parent(&self) -> String {
        cgroup_parent(&self.dir)
    }

    /// `unix:///...`, for `--host` and `DOCKER_HOST`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// Its socket, for a proxy in front of it.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
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

    /// Whether its whole log (not only the tail `log` shows) contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.dir.join("dockerd.log"))
            .unwrap_or_default()
            .contains(needle)
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Every process in its mount namespace (dockerd, containerd, shims, containers). Never
    /// panics.
    fn kill_everything(&mut self) {
        let _ = std::fs::write(self.dir.join("stop"), "");
        if self.namespace.is_none() {
            self.namespace = self.dockerd_pid().and_then(Namespace::of);
        }
        if let Some(namespace) = &self.namespace {
            for _ in 0..5 {
                let mut left = 0;
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                        continue;
                    };
                    if namespace.holds(pid) {
                        left += 1;
                        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                    }
                }
                if left == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // The containers have mount namespaces of their own, and outlive their shims.
        kill_cgroup(&cgroup_parent(&self.dir));
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        // Let the namespace go only now: its number is free for the next namespace made.
        self.namespace = None;
    }
}

/// A mount namespace, held open. A namespace's inode number is given again to a new one once
/// the last process and handle leave it; held, this one's cannot be. Compared by number alone,
/// a later round of `kill_everything` found a container another engine was starting in a
/// namespace that had just been given the number, and killed it (CI: just-started containers
/// exited 137, and `runc init` lost its `/proc/N/ns/net`).
struct Namespace {
    _held: std::fs::File,
    device: u64,
    inode: u64,
}

impl Namespace {
    fn of(pid: u32) -> Option<Namespace> {
        use std::os::unix::fs::MetadataExt;
        let held = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()?;
        let meta = held.metadata().ok()?;
        Some(Namespace {
            device: meta.dev(),
            inode: meta.ino(),
            _held: held,
        })
    }

    fn holds(&self, pid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
            .is_ok_and(|m| m.dev() == self.device && m.ino() == self.inode)
    }
}

/// The cgroup its containers run under: one per engine directory, so that the end of one engine
/// kills no container of another.
fn cgroup_parent(dir: &Path) -> String {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    format!("guestlist-test-{name}")
}

/// Kill every process under the cgroup `parent` (cgroup v1: in each controller; v2: the one
/// tree), then remove the emptied cgroups. Never panics.
fn kill_cgroup(parent: &str) {
    let mut trees: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|controller| controller.path().join(parent))
        .collect();
    trees.push(Path::new("/sys/fs/cgroup").join(parent));
    trees.retain(|tree| tree.is_dir());
    for _ in 0..5 {
        let pids: Vec<String> = trees
            .iter()
            .flat_map(|tree| cgroups_under(tree))
            .filter_map(|cgroup| std::fs::read_to_string(cgroup.join("cgroup.procs")).ok())
            .flat_map(|procs| procs.lines().map(str::to_string).collect::<Vec<_>>())
            .collect();
        if pids.is_empty() {
            break;
        }
        let _ = Command::new("kill").arg("-9").args(&pids).status();
        std::thread::sleep(Duration::from_millis(200));
    }
    for tree in &trees {
        // Deepest first: a cgroup with children cannot be removed.
        for cgroup in cgroups_under(tree).iter().rev() {
            let _ = std::fs::remove_dir(cgroup);
        }
    }
}

/// `tree` and every cgroup below it, parents before children.
fn cgroups_under(tree: &Path) -> Vec<PathBuf> {
    let mut found = vec![tree.to_path_buf()];
    let mut next = 0;
    while next < found.len() {
        let children = std::fs::read_dir(&found[next])
            .into_iter()
            .flatten()
            .flatten();
        let dirs: Vec<PathBuf> = children
            .filter(|c| c.file_type().is_ok_and(|t| t.is_dir()))
            .map(|c| c.path())
            .collect();
        found.extend(dirs);
        next += 1;
    }
    found
}

/// `.ci/dockerd-in-root` for `root` on `dir`, restartable, logging into `dir/dockerd.log`.
fn spawn(root: &Path, dir: &Path) -> Child {
    let _ = std::fs::remove_file(dir.join("stop"));
    let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/dockerd-in-root");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dockerd.log"))
        .expect("log file");
    Command::new(launcher)
        .arg(root)
        .arg(dir)
        .args(["--iptables=false", "--cgroup-parent", &cgroup_parent(dir)])
        .env("DOCKERD_RESTARTABLE", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("cannot run .ci/dockerd-in-root")
}

impl Drop for OwnEngine {
    fn drop(&mut self) {
        self.kill_everything();
    }
}
