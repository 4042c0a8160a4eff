//! A unix-socket proxy in front of the engine that sees each HTTP request before the engine
//! does: a test can refuse requests (a read-only view of the engine, so that a test of "this
//! must remove nothing" cannot harm the other tests if it fails) or act just before one is
//! forwarded (make a container vanish between guestlist's observation and its action).
//!
//! HTTP/1.1 clients send the next request on a connection only after the previous response, so
//! requests are parsed one by one on the way in while responses stream back untouched.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What to do with one request.
pub enum Verdict {
    Forward,
    /// Answer 403 without bothering the engine.
    Refuse,
    /// Answer with this status without bothering the engine, as something failing in front of
    /// it (or in it) would: a redirect names a `Location`.
    Answer(u16),
}

type Hook = dyn Fn(&str, &str) -> Verdict + Send + Sync;

pub struct HookProxy {
    socket: PathBuf,
    /// Every request seen, as `METHOD /path?query`.
    seen: Arc<Mutex<Vec<String>>>,
    line: Arc<Line>,
}

/// Whether the engine seems away, and the connections to cut when it goes.
#[derive(Default)]
struct Line {
    away: AtomicBool,
    /// The connections open now, by number: each is forgotten when it ends.
    clients: Mutex<std::collections::HashMap<u64, UnixStream>>,
}

impl HookProxy {
    /// Listen at `socket`; `hook(method, path)` decides about each request.
    pub fn start(
        socket: &Path,
        hook: impl Fn(&str, &str) -> Verdict + Send + Sync + 'static,
    ) -> HookProxy {
        HookProxy::start_to(Path::new(&super::engine_socket()), socket, hook)
    }

    /// The same in front of the engine at `upstream` (a socket path).
    pub fn start_to(
        upstream: &Path,
        socket: &Path,
        hook: impl Fn(&str, &str) -> Verdict + Send + Sync + 'static,
    ) -> HookProxy {
        let upstream = upstream.to_path_buf();
        let listener = UnixListener::bind(socket).expect("bind the proxy socket");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hook: Arc<Hook> = Arc::new(hook);
        let log = Arc::clone(&seen);
        let line = Arc::new(Line::default());
        let switch = Arc::clone(&line);
        thread::spawn(move || {
            for (number, client) in (0u64..).zip(listener.incoming().map_while(Result::ok)) {
                if switch.away.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                if let Ok(kept) = client.try_clone() {
                    switch.clients.lock().unwrap().insert(number, kept);
                }
                let (hook, log) = (Arc::clone(&hook), Arc::clone(&log));
                let (upstream, line) = (upstream.clone(), Arc::clone(&switch));
                thread::spawn(move || {
                    serve(client, &upstream, &*hook, &log);
                    line.clients.lock().unwrap().remove(&number);
                });
            }
        });
        HookProxy {
            socket: socket.to_path_buf(),
            seen,
            line,
        }
    }

    /// A proxy that forwards reads (GET, HEAD) and refuses everything else.
    pub fn read_only(socket: &Path) -> HookProxy {
        HookProxy::start(socket, |method, _| match method {
            "GET" | "HEAD" => Verdict::Forward,
            _ => Verdict::Refuse,
        })
    }

    /// The endpoint to give guestlist (`--host`).
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Make the engine seem away, as a stopped dockerd is to its clients: every connection,
    /// the event stream's too, is cut, and new ones are closed at once; `false` brings it back.
    pub fn set_away(&self, away: bool) {
        self.line.away.store(away, Ordering::SeqCst);
        if away {
            for (_, client) in self.line.clients.lock().unwrap().drain() {
                let _ = client.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(client: UnixStream, upstream: &Path, hook: &Hook, log: &Mutex<Vec<String>>) {
    let Ok(mut upstream) = UnixStream::connect(upstream) else {
        return;
    };
    let (Ok(mut to_client), Ok(mut from_upstream)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let mut to_client_answers = match client.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut from_upstream, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let mut requests = BufReader::new(client);
    while let Some((head, body)) = read_request(&mut requests) {
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        log.lock().unwrap().push(format!("{method} {path}"));
        let sent = match hook(method, path) {
            Verdict::Forward => upstream
                .write_all(head.as_bytes())
                .and_then(|()| upstream.write_all(&body)),
            Verdict::Refuse => answer(&mut to_client_answers, 403, "refused by the test proxy"),
            Verdict::Answer(status) => {
                answer(&mut to_client_answers, status, "answered by the test proxy")
            }
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = upstream.shutdown(std::net::Shutdown::Both);
}

/// Write an answer with `status` and a JSON `message`, as the engine words its errors; a
/// redirect points elsewhere.
fn answer(to: &mut UnixStream, status: u16, message: &str) -> std::io::Result<()> {
    let body = format!(r#"{{"message":"{message}"}}"#);
    let location = match status {
        300..=399 => "Location: https://elsewhere.invalid/v1.41/version\r\n",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {status} Test\r\nContent-Type: application/json\r\n{location}\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    to.write_all(head.as_bytes())
        .and_then(|()| to.write_all(body.as_bytes()))
}

/// One request: its head (request line and headers, with the blank line) and its body.
fn read_request(reader: &mut BufReader<UnixStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    if chunked {
        // Keep the chunks as they came, up to and including the last (empty) one.
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            body.extend_from_slice(size.as_bytes());
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            if n == 0 {
                break;
            }
        }
    }
    Some((head, body))
}
