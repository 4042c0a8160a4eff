//! A `guestlist watch` running in the background for one test, and a unix-socket proxy in front
//! of the engine that a test can cut and restore.

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Wait until `condition` holds, checking every 50 ms; panic with `what` after `within`.
pub fn eventually(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

pub struct Watcher {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Watcher {
    /// Start a prepared `guestlist watch` command and wait until it says it is watching.
    pub fn spawn(command: Command) -> Watcher {
        Watcher::spawn_until(command, "watching")
    }

    /// Start a prepared guestlist command that runs until stopped (`watch`, `guard`) and wait
    /// until it logs `ready`.
    pub fn spawn_until(mut command: Command, ready: &str) -> Watcher {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot start guestlist watch");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let watcher = Watcher { child, log };
        watcher.wait_for_log(ready, Duration::from_secs(20));
        watcher
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        // Also read in drop, where a panic would abort the test binary.
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wait until a log line contains `needle`; returns that line.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "watch did not log {needle:?} within {within:?}; it logged:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send SIGTERM and wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("-TERM")
    }

    /// Send a signal (`-TERM`, `-INT`) and wait for the exit.
    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success(), "cannot signal watch");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "watch ignored SIGTERM");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that failed while watching shows what the watch saw.
        if thread::panicking() {
            eprintln!("guestlist watch logged:\n{}", self.log());
        }
    }
}

/// A unix socket that forwards every connection to the engine's socket until it is cut.
pub struct SocketProxy {
    pub path: PathBuf,
    target: PathBuf,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<UnixStream>>>,
}

impl SocketProxy {
    pub fn start(path: &Path) -> SocketProxy {
        let host = std::env::var("DOCKER_HOST").unwrap_or_default();
        let target = match host.strip_prefix("unix://") {
            Some(p) => PathBuf::from(p),
            None if host.is_empty() => PathBuf::from("/var/run/docker.sock"),
            None => panic!("the socket proxy test needs a unix DOCKER_HOST, not {host}"),
        };
        let mut proxy = SocketProxy {
            path: path.to_path_buf(),
            target,
            open: Arc::new(AtomicBool::new(false)),
            connections: Arc::default(),
        };
        proxy.restore();
        proxy
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Accept and forward connections again.
    pub fn restore(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("cannot bind the proxy socket");
        self.open.store(true, Ordering::SeqCst);
        let (open, connections, target) = (
            Arc::clone(&self.open),
            Arc::clone(&self.connections),
            self.target.clone(),
        );
        thread::spawn(move || {
            for client in listener.incoming() {
                if !open.load(Ordering::SeqCst) {
                    break;
                }
                let (Ok(client), Ok(engine)) = (client, UnixStream::connect(&target)) else {
                    continue;
                };
                let mut all = connections.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(engine.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), engine.try_clone().unwrap());
                pipe(engine, client);
            }
        });
    }

    /// Drop every connection and stop listening, as a daemon restart would.
    pub fn cut(&mut self) {
        self.open.store(false, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
        // Also runs in drop: a poisoned lock must not panic there.
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for stream in connections.drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(mut from: UnixStream, mut to: UnixStream) {
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
