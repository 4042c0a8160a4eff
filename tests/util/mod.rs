//! Test harness: a `Sandbox` per test with its own label scope, name prefix and state directory,
//! cleaned up on drop (so also when the test panics). Integration tests talk to the real engine
//! at DOCKER_HOST or the default socket; when none answers they fail saying so.

pub mod engine;
pub mod image;
pub mod proxy;
pub mod raw;
pub mod receiver;
pub mod watch;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The label key every test container carries; its value is the sandbox prefix.
pub const LABEL: &str = "guestlist.test";

/// Run the docker CLI; panic with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let mut out = docker_output(args);
    // Under a loaded suite runc now and then loses its init process while starting a
    // container ("writing syncT procResume: ... broken pipe"). That is the engine failing the
    // test's setup, not what any test checks: the half-created container is removed and the
    // run tried again, twice at most. Callers of `docker` expect success, so a start that fails
    // for good fails all the same.
    let name = args
        .iter()
        .position(|a| *a == "--name")
        .and_then(|i| args.get(i + 1));
    for _ in 0..2 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (Some(name), Some(&"run")) = (name, args.first()) else {
            break;
        };
        if out.status.success() || !stderr.contains("OCI runtime create failed") {
            break;
        }
        eprintln!("docker run of {name} failed in the runtime, trying again: {stderr}");
        let _ = docker_output(&["rm", "-f", name]);
        out = docker_output(args);
    }
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn docker_output(args: &[&str]) -> Output {
    ensure_engine();
    Command::new("docker")
        .args(args)
        .output()
        .expect("cannot run the docker CLI: is it installed? (.ci/provision installs it)")
}

/// Whether the engine under test is Podman, through its Docker-compatible API.
pub fn podman() -> bool {
    static PODMAN: OnceLock<bool> = OnceLock::new();
    *PODMAN.get_or_init(|| {
        docker(&[
            "version",
            "--format",
            "{{range .Server.Components}}{{.Name}};{{end}}",
        ])
        .contains("Podman")
    })
}

/// The engine's API version (`1.41`), as (major, minor).
pub fn api_version() -> (u32, u32) {
    static API: OnceLock<(u32, u32)> = OnceLock::new();
    *API.get_or_init(|| {
        let version = docker(&["version", "--format", "{{.Server.APIVersion}}"]);
        let (major, minor) = version.split_once('.').expect("an API version");
        (
            major.parse().expect("a number"),
            minor.parse().expect("a number"),
        )
    })
}

/// Docker Compose for this engine. Debian's docker-compose 1.29 fails on Docker 25 and later
/// (images lost their `ContainerConfig`); there the suite uses Compose 2 from the Docker 26 root
/// that .ci/provision builds. Compose 2 links only libc, so it runs on the host.
pub fn compose() -> Command {
    if api_version() < (1, 44) {
        return Command::new("docker-compose");
    }
    let v2 = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/engines/trixie/usr/libexec/docker/cli-plugins/docker-compose");
    assert!(
        v2.exists(),
        "no Compose 2 at {}: run .ci/provision",
        v2.display()
    );
    Command::new(v2)
}

/// The name Compose gives the first container of `service` in `project`.
pub fn compose_container(project: &str, service: &str) -> String {
    match api_version() < (1, 44) {
        true => format!("{project}_{service}_1"),
        false => format!("{project}-{service}-1"),
    }
}

/// `docker run` options every test container needs on this engine, unless `options` set them.
/// Podman raises the open-files and process limits of a container to its own defaults, which
/// this sandbox (no CAP_SYS_RESOURCE) cannot grant: its containers get limits it can.
pub fn engine_options(options: &[&str]) -> Vec<&'static str> {
    if !podman() {
        return Vec::new();
    }
    let given = |name: &str| options.iter().any(|o| o.starts_with(name));
    let mut extra = Vec::new();
    if !given("nofile=") {
        extra.extend(["--ulimit", "nofile=20000:20000"]);
    }
    if !given("nproc=") {
        extra.extend(["--ulimit", "nproc=20000:20000"]);
    }
    extra
}

/// Run Podman's own CLI (rootful, the store the API socket serves); panic when it fails.
pub fn podman_cli(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .output()
        .expect("cannot run podman");
    assert!(
        out.status.success(),
        "podman {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The engine's unix socket on this machine.
pub fn engine_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(String::from))
        .unwrap_or_else(|| "/var/run/docker.sock".into())
}

/// Fail loudly, once, when no engine answers: a skipped integration test proves nothing.
fn ensure_engine() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let out = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(e) = result {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        panic!("no Docker engine answers at {host}: {e}\nstart one with .ci/provision");
    }
}

/// A plain HTTP/1.0 GET; returns the status line and the body.
pub fn http_get(address: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the metrics port");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// `127.0.0.1:PORT` with a port nobody listens on now.
pub fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

pub struct Sandbox {
    /// Unique per test: container, network and volume names start with it.
    pub prefix: String,
    data: tempfile::TempDir,
    networks: std::cell::RefCell<Vec<String>>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        ensure_engine();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Sandbox {
            prefix: format!("gl{}x{n}", std::process::id()),
            data: tempfile::tempdir().expect("cannot create a temporary directory"),
            networks: Default::default(),
        }
    }

    /// A name inside this sandbox.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// The scope selector that confines guestlist to this sandbox.
    pub fn scope(&self) -> String {
        format!("label={LABEL}={}", self.prefix)
    }

    pub fn state_path(&self) -> PathBuf {
        self.data.path().join("guestlist").join("state.json")
    }

    /// Change the state file by hand, as an operator editing it would.
    pub fn edit_state(&self, change: impl FnOnce(&mut Value)) {
        let path = self.state_path();
        let mut state: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("state")).expect("state JSON");
        change(&mut state);
        std::fs::write(&path, state.to_string()).expect("write state");
    }

    /// A directory for bind mounts and other files of this test.
    pub fn dir(&self) -> &Path {
        self.data.path()
    }

    /// `docker run -d` a container in this sandbox: `options` go before the image, `command`
    /// after it. Returns the container id.
    pub fn run(&self, short: &str, options: &[&str], command: &[&str]) -> String {
        let name = self.name(short);
        let label = format!("{LABEL}={}", self.prefix);
        let image = image::test_image();
        let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
        args.extend(engine_options(options));
        args.extend_from_slice(options);
        args.push(&image);
        args.extend_from_slice(command);
        if podman() && options.contains(&"--device") {
            // The docker CLI parses --device only knowing the server's OS, which Podman's API
            // does not tell it; Podman's own CLI creates the same container in the same store.
            return podman_cli(&args);
        }
        docker(&args)
    }

    /// `docker run -d` from a given image instead of the shared one.
    pub fn run_image(&self, short: &str, image: &str) -> String {
        let name = self.name(short);
        let label = format!("{LABEL}={}", self.prefix);
        let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
        args.extend(engine_options(&[]));
        args.push(image);
        docker(&args)
    }

    /// An image of this sandbox's own (`<prefix>-<short>`), removed on drop. Each call makes a
    /// new image id, so calling it twice with one tag moves the tag.
    pub fn image(&self, short: &str) -> String {
        let tag = format!("{}-{short}", self.prefix);
        let label = format!("LABEL {LABEL}={}", self.prefix);
        image::import(&tag, &[&label])
    }

    /// A user-defined network owned by this sandbox, removed on drop.
    pub fn network(&self, short: &str, options: &[&str]) -> String {
        let name = self.name(short);
        let mut args = vec!["network", "create"];
        args.extend_from_slice(options);
        args.push(&name);
        docker(&args);
        self.networks.borrow_mut().push(name.clone());
        name
    }

    /// The guestlist binary, confined to this sandbox's state directory.
    pub fn guestlist(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("guestlist").expect("guestlist binary");
        cmd.env("XDG_DATA_HOME", self.data.path())
            .env_remove("GUESTLIST_STATE");
        cmd
    }

    /// `guestlist watch` with `args` in the background, confined like `guestlist()`; it is
    /// killed when the returned watcher is dropped.
    pub fn watch(&self, args: &[&str]) -> watch::Watcher {
        watch::Watcher::spawn(self.watch_command(args))
    }

    /// The command line `watch` runs, to adjust (endpoint) before spawning it.
    pub fn watch_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("guestlist"));
        cmd.env("XDG_DATA_HOME", self.data.path())
            .env_remove("GUESTLIST_STATE")
            .arg("watch")
            .args(args);
        cmd
    }

    /// `guestlist snapshot --scope <this sandbox>` plus `extra` arguments; asserts success.
    pub fn snapshot(&self, extra: &[&str]) {
        let scope = self.scope();
        let mut args = vec!["snapshot", "--scope", &scope];
        args.extend_from_slice(extra);
        self.guestlist().args(&args).assert().success();
    }

    /// Start guestlist in the background; `wait` collects how it ended.
    pub fn guestlist_process(&self, args: &[&str]) -> Running {
        let child = Command::new(assert_cmd::cargo::cargo_bin("guestlist"))
            .env("XDG_DATA_HOME", self.data.path())
            .env_remove("GUESTLIST_STATE")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start guestlist");
        Running { child }
    }

    /// Run guestlist with `args` in container `short` of this sandbox (the test image, the
    /// binary mounted into it, see `in_container_options`; `options` go before the image);
    /// wait for it to end and return its exit code and output.
    pub fn guestlist_in_container(
        &self,
        options: &[&str],
        short: &str,
        args: &[&str],
    ) -> (String, String) {
        let mut all = self.in_container_options();
        all.extend(options.iter().map(|o| o.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        self.run(short, &all, args);
        let code = docker(&["wait", &self.name(short)]);
        let logs = docker_output(&["logs", &self.name(short)]);
        let logs = String::from_utf8_lossy(&logs.stdout).into_owned()
            + &String::from_utf8_lossy(&logs.stderr);
        (code, logs)
    }

    /// `docker run` options that make the guestlist binary runnable inside a container of the
    /// test image (`--entrypoint /guestlist`): the binary and the libraries it links mounted
    /// read-only, the engine socket, and this sandbox's data directory as XDG_DATA_HOME. The
    /// binary and libraries are copied into this sandbox's directory first: an engine in
    /// namespaces of its own sees the host's /tmp, not the build tree or the host's /lib.
    pub fn in_container_options(&self) -> Vec<String> {
        let binary = assert_cmd::cargo::cargo_bin("guestlist");
        let ldd = Command::new("ldd").arg(&binary).output().expect("ldd");
        let copies = self.dir().join("in-container");
        let copy = |from: &Path| {
            let to = copies.join(from.strip_prefix("/").unwrap_or(from));
            std::fs::create_dir_all(to.parent().expect("a parent")).expect("a directory");
            if !to.exists() {
                std::fs::copy(from, &to).expect("copy for the container");
            }
            to.display().to_string()
        };
        let mut options = vec![
            "--entrypoint".to_string(),
            "/guestlist".into(),
            "-v".into(),
            format!("{}:/guestlist:ro", copy(&binary)),
            "-v".into(),
            format!("{}:/data", self.dir().display()),
            "-e".into(),
            "XDG_DATA_HOME=/data".into(),
            "-v".into(),
            format!("{}:/var/run/docker.sock", engine_socket()),
        ];
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and `/lib64/ld-linux... (0x...)`
        for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
            if word.starts_with('/') && Path::new(word).exists() {
                options.extend(["-v".into(), format!("{}:{word}:ro", copy(Path::new(word)))]);
            }
        }
        options
    }

    /// Run guestlist and return (exit code, stdout, stderr).
    pub fn gl(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.guestlist().args(args).output().expect("run guestlist");
        let code = out.status.code().unwrap_or(-1);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        (code, stdout, stderr)
    }

    /// Run guestlist and assert its exit code; returns stdout. The failure message shows both
    /// streams and the state of the sandbox's containers.
    pub fn expect(&self, args: &[&str], code: i32) -> String {
        let (got, stdout, stderr) = self.gl(args);
        assert_eq!(
            got,
            code,
            "guestlist {} exited {got}, expected {code}\n--- stdout\n{stdout}--- stderr\n{stderr}--- containers\n{}",
            args.join(" "),
            self.containers()
        );
        stdout
    }

    /// `docker inspect` of a sandbox container.
    pub fn inspect(&self, short: &str) -> Value {
        let json = docker(&["inspect", &self.name(short)]);
        let mut list: Vec<Value> = serde_json::from_str(&json).expect("inspect JSON");
        list.remove(0)
    }

    pub fn id(&self, short: &str) -> String {
        docker(&["inspect", "-f", "{{.Id}}", &self.name(short)])
    }

    pub fn exists(&self, short: &str) -> bool {
        docker_output(&["inspect", &self.name(short)])
            .status
            .success()
    }

    /// The records of the audit log guestlist keeps for this sandbox, oldest first.
    pub fn audit_log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data.path().join("guestlist").join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit record is a JSON line"))
            .collect()
    }

    /// The sandbox's container names, sorted.
    pub fn names(&self) -> Vec<String> {
        let filter = format!("label={LABEL}={}", self.prefix);
        let listed = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
        let mut names: Vec<String> = listed.lines().map(String::from).collect();
        names.sort_unstable();
        names
    }

    /// The sandbox's containers as `name status` lines, for failure messages.
    pub fn containers(&self) -> String {
        let filter = format!("label={LABEL}={}", self.prefix);
        docker(&[
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.Status}}",
        ])
    }
}

/// A guestlist process started in the background.
pub struct Running {
    pub child: Child,
}

/// How a background guestlist ended.
#[derive(Debug)]
pub struct Ended {
    /// The exit code; -1 when a signal ended it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Running {
    pub fn wait(self) -> Ended {
        let out = self.child.wait_with_output().expect("wait for guestlist");
        Ended {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The docker CLI for cleaning up: never panics (a panic in `drop` while a test is already
/// failing aborts the whole test binary); says on stderr what it could not do.
fn docker_cleanup(args: &[&str]) -> String {
    match Command::new("docker").args(args).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => {
            eprintln!(
                "cleanup: docker {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            String::new()
        }
        Err(e) => {
            eprintln!("cleanup: cannot run docker {}: {e}", args.join(" "));
            String::new()
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let filter = format!("label={LABEL}={}", self.prefix);
        let ids = docker_cleanup(&["ps", "-aq", "--filter", &filter]);
        let mut anonymous = self.removed_anonymous_volumes();
        if !ids.is_empty() {
            // `rm -v` spares the anonymous volumes guestlist reattached by name: note them.
            let mut args = vec!["inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}"];
            args.extend(ids.lines());
            let mounts = docker_cleanup(&args);
            anonymous.extend(
                mounts
                    .split_whitespace()
                    .filter(|n| is_anonymous(n))
                    .map(String::from),
            );
            // Podman removes no container while another shares a namespace with it: what is
            // left after a first round goes in a second.
            for _ in 0..3 {
                let left = docker_cleanup(&["ps", "-aq", "--filter", &filter]);
                if left.is_empty() {
                    break;
                }
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(left.lines());
                docker_cleanup(&args);
            }
        }
        for network in self.networks.borrow().iter() {
            docker_cleanup(&["network", "rm", network]);
        }
        // The default network of a compose project named after the sandbox: left by `up`
        // without `down`, such networks used up the engine's address pools over runs.
        let project = format!("label=com.docker.compose.project={}", self.prefix);
        let networks = docker_cleanup(&["network", "ls", "-q", "--filter", &project]);
        for network in networks.lines() {
            docker_cleanup(&["network", "rm", network]);
        }
        let volumes = docker_cleanup(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name={}", self.prefix),
        ]);
        for volume in volumes.lines().filter(|v| v.starts_with(&self.prefix)) {
            docker_cleanup(&["volume", "rm", "-f", volume]);
        }
        // A volume still in use (by another test's container) stays.
        for volume in anonymous {
            docker_cleanup(&["volume", "rm", &volume]);
        }
        let images = docker_cleanup(&["images", "-q", "--filter", &filter]);
        if !images.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(images.lines());
            docker_cleanup(&args);
        }
    }
}

impl Sandbox {
    /// The anonymous volumes of the containers guestlist removed (it never removes volumes),
    /// from the inspects in the audit log; never panics (it runs in drop).
    fn removed_anonymous_volumes(&self) -> std::collections::BTreeSet<String> {
        let log = std::fs::read_to_string(self.data.path().join("guestlist").join("audit.jsonl"));
        let records = log.unwrap_or_default();
        let records = records
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok());
        let mut names = std::collections::BTreeSet::new();
        for record in records {
            for mount in record["inspect"]["Mounts"].as_array().into_iter().flatten() {
                let name = mount["Name"].as_str().unwrap_or_default();
                if mount["Type"] == "volume" && is_anonymous(name) {
                    names.insert(name.to_string());
                }
            }
        }
        names
    }
}

/// Whether a volume name is one the engine generated (64 hex digits).
fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}
