//! HTTP written byte for byte over a unix socket: what a hostile client sends, where the docker
//! CLI and curl would tidy the request first (absolute targets, odd encodings, pipelining).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// An engine's or the guard's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Send `request` as it is and read every answer until the server closes the connection.
pub fn exchange_all(socket: &Path, request: &[u8]) -> Vec<Answer> {
    let mut stream = UnixStream::connect(socket).expect("connect to the socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("a read timeout");
    // The server may answer and close before it read all (a body over its bound): the answer
    // is what counts.
    let _ = stream.write_all(request);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse_all(&bytes)
}

/// One request, its target as given, with `Connection: close`.
pub fn request(
    socket: &Path,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Answer {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut bytes = head.into_bytes();
    if let Some(body) = body {
        bytes.extend(format!("Content-Length: {}\r\n", body.len()).bytes());
    }
    bytes.extend(b"\r\n");
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    exchange_all(socket, &bytes)
        .into_iter()
        .next()
        .unwrap_or(Answer {
            status: 0,
            body: "the connection closed without an answer".into(),
        })
}

/// A JSON create through `socket`, named by the query.
pub fn create(socket: &Path, name: &str, body: &[u8]) -> Answer {
    post_json(socket, &format!("/containers/create?name={name}"), body)
}

/// A POST of a JSON body through `socket`.
pub fn post_json(socket: &Path, target: &str, body: &[u8]) -> Answer {
    let json = [("Content-Type", "application/json")];
    request(socket, "POST", target, &json, Some(body))
}

fn parse_all(mut bytes: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while let Some(end) = find(bytes, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_string();
        let mut rest = &bytes[end + 4..];
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let mut body = Vec::new();
        if header("Transfer-Encoding").is_some_and(|t| t.contains("chunked")) {
            while let Some(line_end) = find(rest, b"\r\n") {
                let size =
                    usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                        .unwrap_or(0);
                rest = &rest[line_end + 2..];
                if size == 0 {
                    rest = rest.get(2..).unwrap_or_default();
                    break;
                }
                body.extend_from_slice(&rest[..size.min(rest.len())]);
                rest = rest.get(size + 2..).unwrap_or_default();
            }
        } else if let Some(length) = header("Content-Length").and_then(|l| l.parse::<usize>().ok())
        {
            body.extend_from_slice(&rest[..length.min(rest.len())]);
            rest = rest.get(length..).unwrap_or_default();
        } else if (100..200).contains(&status) || status == 204 || status == 304 {
        } else {
            body.extend_from_slice(rest);
            rest = &[];
        }
        answers.push(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        bytes = rest;
    }
    answers
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
