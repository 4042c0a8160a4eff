//! A real notification receiver on 127.0.0.1 for one test: it takes every POST (and keeps its
//! JSON body), answers 500 to all, or reads the request and never answers; over plain HTTP or
//! TLS with a certificate authority of its own. Stopped when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Take,
    Fail,
    Hang,
}

pub struct Receiver {
    pub address: String,
    /// The name in its URL: 127.0.0.1, or the name its certificate is for.
    host: String,
    scheme: &'static str,
    bodies: Arc<Mutex<Vec<Value>>>,
    requests: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start(answer: Answer) -> Receiver {
        Receiver::serve(answer, None, "127.0.0.1")
    }

    /// Over TLS, with a certificate for `host` (an IP address or a name) issued by a new
    /// authority whose certificate is written to `ca_file` (PEM).
    pub fn start_tls(answer: Answer, ca_file: &Path, host: &str) -> Receiver {
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "guestlist test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).expect("the CA certificate");
        std::fs::write(ca_file, ca.pem()).expect("write the CA certificate");
        let key = rcgen::KeyPair::generate().expect("a key");
        let leaf = rcgen::CertificateParams::new(vec![host.to_string()])
            .expect("leaf params")
            .signed_by(&key, &ca)
            .expect("the receiver's certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .expect("the server's TLS configuration");
        Receiver::serve(answer, Some(Arc::new(config)), host)
    }

    fn serve(answer: Answer, tls: Option<Arc<rustls::ServerConfig>>, host: &str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the receiver");
        let address = listener.local_addr().expect("its address").to_string();
        let receiver = Receiver {
            address,
            host: host.to_string(),
            scheme: if tls.is_some() { "https" } else { "http" },
            bodies: Arc::default(),
            requests: Arc::default(),
            stop: Arc::default(),
        };
        let (bodies, requests, stop) = (
            Arc::clone(&receiver.bodies),
            Arc::clone(&receiver.requests),
            Arc::clone(&receiver.stop),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (bodies, requests, stop) = (
                    Arc::clone(&bodies),
                    Arc::clone(&requests),
                    Arc::clone(&stop),
                );
                let tls = tls.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    match tls {
                        Some(config) => {
                            let Ok(connection) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            let stream = rustls::StreamOwned::new(connection, stream);
                            handle(stream, answer, &bodies, &requests, &stop);
                        }
                        None => handle(stream, answer, &bodies, &requests, &stop),
                    }
                });
            }
        });
        receiver
    }

    /// The URL to give `--notify`, with a path and a query that must never be logged.
    pub fn url(&self) -> String {
        let port = self.address.rsplit(':').next().unwrap_or_default();
        format!(
            "{}://{}:{port}/hooks/T0SECRET?token=hunter2",
            self.scheme, self.host
        )
    }

    /// The JSON bodies received so far, oldest first.
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests received so far, answered or not.
    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.address);
    }
}

/// Read one request, keep its body, answer as told; one request per connection.
fn handle(
    stream: impl Read + Write,
    answer: Answer,
    bodies: &Mutex<Vec<Value>>,
    requests: &Mutex<usize>,
    stop: &AtomicBool,
) {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    *requests.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    let status = match answer {
        Answer::Take => {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            bodies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(value);
            "200 OK"
        }
        Answer::Fail => "500 Internal Server Error",
        Answer::Hang => {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(50));
            }
            return;
        }
    };
    let stream = reader.get_mut();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    let _ = stream.flush();
}
