//! The guard as a Docker authorization plugin: dockerd (started with
//! `--authorization-plugin=NAME`) asks it about every API request before acting on it.
//!
//! The protocol (dockerd's `pkg/plugins` and `pkg/authorization`): `POST /Plugin.Activate` is
//! answered with the `authz` interface; then each request arrives as `AuthZPlugin.AuthZReq`
//! before the engine acts, and as `AuthZPlugin.AuthZRes` after. Nothing can be undone after, so
//! every decision is made in AuthZReq. The engine passes the request body base64-encoded, and
//! only for JSON bodies under 1 MiB.
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
use super::{Guard, Peer, Received};

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
        "/AuthZPlugin.AuthZReq" => {
            let answer = match read(request).await {
                Ok(asked) => decide(&asked, guard).await,
                Err(e) => AuthZResponse {
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
        // Every decision was made before the engine acted. The question (with the whole
        // answer the engine is about to give) is read to its end all the same: a reply that
        // leaves it unread can close the connection under dockerd, which then denies.
        "/AuthZPlugin.AuthZRes" => {
            let _ = request.into_body().collect().await;
            reply(StatusCode::OK, r#"{"Allow":true}"#.into())
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            format!(r#"{{"Err":"guestlist: no such plugin call: {path}"}}"#),
        ),
    }
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
    // A body that is not valid base64 was not seen.
    let body = asked
        .body
        .as_deref()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    let verdict = guard
        .judge(Received {
            method: &asked.method,
            uri: &asked.uri,
            body: body.as_deref(),
            peer: Peer::default(),
            user: asked.user.as_deref(),
        })
        .await;
    match verdict {
        Verdict::Allow => AuthZResponse {
            allow: true,
            message: String::new(),
            error: String::new(),
        },
        Verdict::Refuse(refusal) => AuthZResponse {
            allow: false,
            message: refusal.message,
            error: String::new(),
        },
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
