//! The guard as a Docker authorization plugin: dockerd (started with
//! `--authorization-plugin=NAME`) asks it about every API request before acting on it.
//!
//! The protocol (dockerd's `pkg/plugins` and `pkg/authorization`): `POST /Plugin.Activate` is
//! answered with the `authz` interface; then each request arrives as `AuthZPlugin.AuthZReq`
//! before the engine acts, and as `AuthZPlugin.AuthZRes` after. The engine acts between the
//! two, so every decision is made in AuthZReq, but for one: the container a create made is
//! measured in AuthZRes as the engine made it, and removed again (the client is refused) when
//! the list does not allow it. The engine passes the request body base64-encoded, and only for
//! JSON bodies under 1 MiB (4 MiB from Docker 29.3).
//!
//! The guard's own engine reads (resolving the container a request names) come back here as
//! requests of their own, so every connection is served on its own task: a decision waiting on
//! the engine never keeps the engine's question about that read from being answered.

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;

use super::policy::Verdict;
use super::{Answer, Guard, Peer, Received};

/// Where dockerd looks for a plugin's socket by its name.
pub const SOCKETS: &str = "/run/docker/plugins";

/// An AuthZReq carries at most a 1 MiB body, base64-encoded, and the request's headers.
const MAX_MESSAGE: usize = 4 << 20;

/// What dockerd sends (`authorization.Request`); fields it adds later are ignored.
#[derive(Debug, Deserialize)]
struct AuthZRequest {
    #[serde(rename = "User", default)]
    user: Option<String>,
    #[serde(rename = "RequestMethod", default)]
    method: String,
    /// Spelled so by dockerd's `json` tag.
    #[serde(rename = "RequestUri", alias = "RequestURI", default)]
    uri: String,
    /// Base64; absent or null when the engine did not pass the body.
    #[serde(rename = "RequestBody", default)]
    body: Option<String>,
    /// Go-canonical names, the last value of a repeated header.
    #[serde(rename = "RequestHeaders", default)]
    headers: Option<std::collections::HashMap<String, String>>,
    /// In AuthZRes: the engine's answer.
    #[serde(rename = "ResponseStatusCode", default)]
    status: Option<u16>,
    /// In AuthZRes, base64: the answer's body while the engine still buffers it (JSON only).
    #[serde(rename = "ResponseBody", default)]
    response_body: Option<String>,
}

/// What dockerd reads back (`authorization.Response`).
#[derive(Debug, Serialize)]
struct AuthZResponse {
    #[serde(rename = "Allow")]
    allow: bool,
    #[serde(rename = "Msg", skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    error: String,
}

/// Serve dockerd on `listener` until the process ends; runs inside a `LocalSet`.
pub async fn serve(listener: UnixListener, guard: Arc<Guard>) {
    let mut failures = crate::ops::accept::Failures::new("guard");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                failures.ended();
                stream
            }
            Err(e) => {
                failures.wait_after(e).await;
                continue;
            }
        };
        let guard = Arc::clone(&guard);
        // Local, as in the proxy.
        tokio::task::spawn_local(async move {
            let service = hyper::service::service_fn(move |request| {
                let guard = Arc::clone(&guard);
                async move { Ok::<_, Infallible>(handle(request, &guard).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("guard: an engine connection ended: {e}");
            }
        });
    }
}

async fn handle(request: Request<Incoming>, guard: &Guard) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    match path.as_str() {
        "/Plugin.Activate" => {
            let _ = request.into_body().collect().await;
            reply(StatusCode::OK, r#"{"Implements":["authz"]}"#.into())
        }
        "/AuthZPlugin.AuthZReq" => question(request, guard, Asked::Before).await,
        // Every decision but a create's was made before the engine acted. The question (with
        // the whole answer the engine is about to give) is read to its end all the same: a
        // reply that leaves it unread can close the connection under dockerd, which then denies.
        "/AuthZPlugin.AuthZRes" => question(request, guard, Asked::After).await,
        _ => reply(
            StatusCode::NOT_FOUND,
            format!(r#"{{"Err":"guestlist: no such plugin call: {path}"}}"#),
        ),
    }
}

/// Whether the engine asks before it acts (AuthZReq) or after (AuthZRes).
enum Asked {
    Before,
    After,
}

async fn question(
    request: Request<Incoming>,
    guard: &Guard,
    asked: Asked,
) -> Response<Full<Bytes>> {
    let answer = match (read(request).await, asked) {
        (Ok(question), Asked::Before) => decide(&question, guard).await,
        (Ok(question), Asked::After) => afterwards(&question, guard).await,
        (Err(e), _) => AuthZResponse {
            allow: false,
            message: String::new(),
            error: format!("guestlist: cannot read the engine's question: {e}"),
        },
    };
    reply(
        StatusCode::OK,
        serde_json::to_string(&answer).unwrap_or_default(),
    )
}

async fn read(request: Request<Incoming>) -> Result<AuthZRequest, String> {
    let body = Limited::new(request.into_body(), MAX_MESSAGE)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

async fn decide(asked: &AuthZRequest, guard: &Guard) -> AuthZResponse {
    tracing::debug!(
        "asked about {} {} (body {})",
        asked.method,
        asked.uri,
        asked
            .body
            .as_ref()
            .map_or("not passed".into(), |b| format!("{} base64 bytes", b.len()))
    );
    let body = decoded(asked.body.as_deref());
    let types = asked.content_types();
    let answer = guard.judge(asked.received(&types, body.as_deref())).await;
    match answer {
        // A container that does not exist: the engine says so itself.
        Answer::AsIs | Answer::Pass(_) | Answer::Missing(_) => allowed(),
        Answer::Refuse(refusal) => AuthZResponse {
            allow: false,
            message: refusal.message,
            error: String::new(),
        },
    }
}

/// After the engine acted: a create's container is measured as the engine made it.
async fn afterwards(asked: &AuthZRequest, guard: &Guard) -> AuthZResponse {
    if asked.status != Some(201) || asked.method != "POST" {
        return allowed();
    }
    let body = decoded(asked.body.as_deref());
    let types = asked.content_types();
    let received = asked.received(&types, body.as_deref());
    let read = super::request::read(
        super::request::Incoming {
            method: received.method,
            target: received.uri,
            content_types: received.content_types,
            has_body: received.has_body,
            body: received.body,
        },
        super::target::Dialect::Docker,
    );
    if !matches!(read.request, super::request::Request::Create(_)) {
        return allowed();
    }
    let answered = decoded(asked.response_body.as_deref());
    let id = answered
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["Id"].as_str().map(String::from));
    let Some(id) = id else {
        tracing::warn!(
            "the engine created a container for {} {} without telling its id: not measured",
            asked.method,
            asked.uri
        );
        return allowed();
    };
    match guard.admit(super::Made::Container, &id, &received).await {
        Verdict::Allow => allowed(),
        Verdict::Refuse(refusal) => AuthZResponse {
            allow: false,
            message: refusal.message,
            error: String::new(),
        },
    }
}

impl AuthZRequest {
    fn content_types(&self) -> Vec<&str> {
        self.header("Content-Type").into_iter().collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .as_ref()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request carried a body, by its headers (the body itself is passed only when
    /// it is JSON and small).
    fn has_body(&self) -> bool {
        let length = self
            .header("Content-Length")
            .and_then(|l| l.trim().parse::<u64>().ok());
        length.is_some_and(|l| l > 0)
            || self.header("Transfer-Encoding").is_some()
            || self.body.as_deref().is_some_and(|b| !b.is_empty())
    }

    fn received<'a>(&'a self, types: &'a [&'a str], body: Option<&'a [u8]>) -> Received<'a> {
        Received {
            method: &self.method,
            uri: &self.uri,
            content_types: types,
            has_body: self.has_body(),
            body,
            peer: Peer::default(),
            user: self.user.as_deref(),
        }
    }
}

/// A base64 body; one that is not valid base64 was not seen.
fn decoded(body: Option<&str>) -> Option<Vec<u8>> {
    body.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
}

fn allowed() -> AuthZResponse {
    AuthZResponse {
        allow: true,
        message: String::new(),
        error: String::new(),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.docker.plugins.v1.2+json"),
    );
    response
}
