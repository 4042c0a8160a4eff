//! The guard as a socket proxy: clients point `DOCKER_HOST` at it, and it forwards every
//! request the guard allows to the engine, faithfully. Streamed responses (events, logs -f,
//! stats) and chunked request bodies pass through as they come; a connection upgrade (attach,
//! exec) becomes a byte stream spliced between client and engine.
//!
//! Each client connection gets one connection to the engine of its own: HTTP/1 answers arrive in
//! order, so a client's requests reach the engine in the order sent, and an upgrade takes the
//! whole connection with it as it would without the proxy. The proxy never reads an answer.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::Mutex;

use super::policy::{Refusal, Verdict};
use super::{Guard, Peer, Received};

type Body = BoxBody<Bytes, hyper::Error>;

/// A create body is read whole before it is judged; Docker's own limit for what it shows an
/// authorization plugin is 1 MiB, and a create is a few KiB.
const MAX_CREATE_BODY: usize = 16 << 20;

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

impl Upstream {
    /// `unix:///var/run/docker.sock`, `tcp://127.0.0.1:2375` or `http://...`.
    pub fn parse(endpoint: &str) -> Result<Upstream> {
        if let Some(path) = endpoint.strip_prefix("unix://") {
            return Ok(Upstream::Unix(PathBuf::from(path)));
        }
        for scheme in ["tcp://", "http://"] {
            if let Some(address) = endpoint.strip_prefix(scheme) {
                return Ok(Upstream::Tcp(address.trim_end_matches('/').to_string()));
            }
        }
        bail!(
            "the guard forwards to an engine at unix://PATH or tcp://HOST:PORT (plain HTTP), \
             not {endpoint}"
        )
    }

    async fn connect(&self) -> Result<SendRequest<Body>> {
        match self {
            Upstream::Unix(path) => handshake(UnixStream::connect(path).await?).await,
            Upstream::Tcp(address) => {
                let stream = TcpStream::connect(address).await?;
                stream.set_nodelay(true)?;
                handshake(stream).await
            }
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Body>>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!("guard: the engine connection ended: {e}");
        }
    });
    Ok(sender)
}

/// Serve clients on `listener` until the process ends; runs inside a `LocalSet`.
pub async fn serve(listener: UnixListener, upstream: Upstream, guard: Arc<Guard>) {
    let upstream = Arc::new(upstream);
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
        let peer = stream
            .peer_cred()
            .map(|c| Peer {
                uid: Some(c.uid()),
                gid: Some(c.gid()),
                pid: c.pid(),
            })
            .unwrap_or_default();
        // Local: a decision's engine reads are not `Send` (a rustc limit on their
        // borrowed streams), and the guard runs on one thread anyway.
        tokio::task::spawn_local(client(
            stream,
            peer,
            Arc::clone(&upstream),
            Arc::clone(&guard),
        ));
    }
}

/// One client connection, and the engine connection that goes with it.
async fn client(stream: UnixStream, peer: Peer, upstream: Arc<Upstream>, guard: Arc<Guard>) {
    let engine: Arc<Mutex<Option<SendRequest<Body>>>> = Arc::default();
    let service = hyper::service::service_fn(move |request| {
        let (upstream, guard, engine) = (
            Arc::clone(&upstream),
            Arc::clone(&guard),
            Arc::clone(&engine),
        );
        async move {
            let response = handle(request, peer, &upstream, &guard, &engine).await;
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!("guard: a client connection ended: {e}");
    }
}

async fn handle(
    request: Request<Incoming>,
    peer: Peer,
    upstream: &Upstream,
    guard: &Guard,
    engine: &Mutex<Option<SendRequest<Body>>>,
) -> Response<Body> {
    let method = request.method().as_str().to_string();
    let uri = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let (mut request, body) = match super::request::Request::wants_body(&method, &uri) {
        false => (request.map(BodyExt::boxed), None),
        true => {
            let (parts, body) = request.into_parts();
            let bytes = match Limited::new(body, MAX_CREATE_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    let message = format!("guestlist: cannot read the create's body: {e}");
                    return answer(StatusCode::BAD_REQUEST, &message);
                }
            };
            (Request::from_parts(parts, full(bytes.clone())), Some(bytes))
        }
    };
    let verdict = guard
        .judge(Received {
            method: &method,
            uri: &uri,
            body: body.as_deref(),
            peer,
            user: None,
        })
        .await;
    if let Verdict::Refuse(Refusal { message, .. }) = verdict {
        return answer(StatusCode::FORBIDDEN, &message);
    }
    let upgrade = request
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut request));
    let mut response = match send(upstream, engine, request).await {
        Ok(response) => response,
        Err(e) => {
            let message = format!("guestlist guard: cannot reach the engine: {e:#}");
            return answer(StatusCode::BAD_GATEWAY, &message);
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = upgrade {
            let engine = hyper::upgrade::on(&mut response);
            tokio::spawn(splice(client, engine));
        }
    }
    if is_finite_read(&method, &uri) {
        return whole(response).await;
    }
    response.map(BodyExt::boxed)
}

/// Reads whose answer is one JSON document, never a stream: inspects, lists, `/info`,
/// `/version`. The engine sends them chunked; passed on as they come, the end of each arrives
/// in a second write, which costs every inspect a wake-up of the proxy and of the client. Read
/// whole, they go out in one write with their length.
fn is_finite_read(method: &str, uri: &str) -> bool {
    let path = uri.split('?').next().unwrap_or_default();
    method == "GET"
        && (path.ends_with("/json") || path.ends_with("/info") || path.ends_with("/version"))
}

async fn whole(response: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, bytes.len().into());
            Response::from_parts(parts, full(bytes))
        }
        Err(e) => {
            let message = format!("guestlist guard: the engine's answer broke off: {e}");
            answer(StatusCode::BAD_GATEWAY, &message)
        }
    }
}

/// Send `request` on the client's engine connection, opening one when there is none (or the
/// engine closed it). A request the engine closed the connection on before it was written is
/// sent once more on a new connection.
async fn send(
    upstream: &Upstream,
    engine: &Mutex<Option<SendRequest<Body>>>,
    request: Request<Body>,
) -> Result<Response<Incoming>> {
    let mut slot = engine.lock().await;
    let mut request = request;
    for attempt in 0..2 {
        let mut sender = match slot.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => upstream.connect().await.context("cannot connect")?,
        };
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => {
                *slot = Some(sender);
                return Ok(response);
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if attempt == 0 => request = unsent,
                _ => return Err(e.into_error().into()),
            },
        }
    }
    bail!("the engine closed every connection before the request could be sent")
}

/// Copy bytes both ways between an upgraded client and engine connection until both end; one
/// side's end of writing (a client's closed stdin) is passed on as such.
async fn splice(client: hyper::upgrade::OnUpgrade, engine: hyper::upgrade::OnUpgrade) {
    let (client, engine) = tokio::join!(client, engine);
    let (Ok(client), Ok(engine)) = (client, engine) else {
        tracing::debug!("guard: an upgrade did not complete");
        return;
    };
    let (mut client, mut engine) = (TokioIo::new(client), TokioIo::new(engine));
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut engine).await {
        tracing::debug!("guard: an upgraded stream ended: {e}");
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// An error as the engine gives one: `{"message": ...}`, which the docker CLI prints as it is.
fn answer(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_endpoints_are_read() {
        assert_eq!(
            Upstream::parse("unix:///var/run/docker.sock").ok(),
            Some(Upstream::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            Upstream::parse("tcp://127.0.0.1:2375").ok(),
            Some(Upstream::Tcp("127.0.0.1:2375".into()))
        );
        assert!(Upstream::parse("ssh://host").is_err());
    }
}
