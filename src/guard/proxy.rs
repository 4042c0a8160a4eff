//! The guard as a socket proxy: clients point `DOCKER_HOST` at it, and it forwards every
//! request the guard allows to the engine, as the guard read it: the path in the form it was
//! routed, the container the guard resolved and judged in place of the reference the client
//! gave. Streamed responses (events, logs -f, stats) and chunked request bodies pass through
//! as they come; a connection upgrade (attach, exec) becomes a byte stream spliced between
//! client and engine.
//!
//! Each client connection gets one connection to the engine of its own: HTTP/1 answers arrive in
//! order, so a client's requests reach the engine in the order sent, and an upgrade takes the
//! whole connection with it as it would without the proxy. The proxy reads no answer but a
//! create's, whose container the guard measures once the engine made it.
//!
//! A guard that is down blocks the engine for everyone, so what clients can make it hold is
//! bounded: headers must arrive within `HEADER_TIMEOUT`, a body the guard reads within
//! `BODY_TIMEOUT` and under `MAX_BODY`, and the bodies held at once under `BODY_BUDGET_KIB`; a
//! request that would go over waits for room, up to `BODY_WAIT`, then gets a 503.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use super::policy::Refusal;
use super::{Answer, Guard, Peer, Received};

type Body = BoxBody<Bytes, hyper::Error>;

/// A body the guard reads (a create, a network connect) is read whole before it is judged.
/// Docker hands an authorization plugin bodies up to 1 MiB (4 MiB since 29.3); a create is a
/// few KiB.
const MAX_BODY: usize = 4 << 20;

/// The bytes of bodies held at once across all clients, in KiB (one semaphore permit each).
const BODY_BUDGET_KIB: usize = 32 << 10;

/// The most a client connection buffers of what it was sent (headers must fit).
const READ_BUFFER: usize = 64 << 10;

/// Client connections served at once; each holds one to the engine too. One over it is
/// answered 503 and closed at once, so a flood of connections cannot take the guard's file
/// descriptors (and with them, every client) or its memory.
pub const MAX_CLIENTS: usize = 1024;

/// How long a client has to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a body waits for room in `BODY_BUDGET_KIB` before it is answered 503.
const BODY_WAIT: Duration = Duration::from_secs(10);

/// How long a client has to send a body the guard reads, once its headers came.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

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
    let shared = Arc::new(Shared {
        upstream,
        guard,
        budget: Arc::new(Semaphore::new(BODY_BUDGET_KIB)),
    });
    let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
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
        let Ok(slot) = Arc::clone(&clients).try_acquire_owned() else {
            tokio::task::spawn_local(turn_away(stream));
            continue;
        };
        // Local: a decision's engine reads are not `Send` (a rustc limit on their
        // borrowed streams), and the guard runs on one thread anyway.
        let shared = Arc::clone(&shared);
        tokio::task::spawn_local(async move {
            client(stream, peer, shared).await;
            drop(slot);
        });
    }
}

/// What every client connection shares.
struct Shared {
    upstream: Upstream,
    guard: Arc<Guard>,
    /// `BODY_BUDGET_KIB` permits: one per KiB of body held.
    budget: Arc<Semaphore>,
}

/// Answer a connection over `MAX_CLIENTS` with a 503 and close it; a client that does not
/// read the answer within a second is dropped all the same.
async fn turn_away(mut stream: UnixStream) {
    use tokio::io::AsyncWriteExt;
    let body = format!(
        r#"{{"message":"guestlist guard: {MAX_CLIENTS} clients are connected; try again"}}"#
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \
         {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
}

/// One client connection, and the engine connection that goes with it.
async fn client(stream: UnixStream, peer: Peer, shared: Arc<Shared>) {
    let engine: Arc<Mutex<Option<SendRequest<Body>>>> = Arc::default();
    let service = hyper::service::service_fn(move |request| {
        let (shared, engine) = (Arc::clone(&shared), Arc::clone(&engine));
        async move {
            let response = handle(request, peer, shared, engine).await;
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        // What a connection buffers of what its client sends before it is read: hyper's
        // default (about 400 KiB) times hundreds of slow clients is memory nobody asked for.
        .max_buf_size(READ_BUFFER)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!("guard: a client connection ended: {e}");
    }
}

async fn handle(
    request: Request<Incoming>,
    peer: Peer,
    shared: Arc<Shared>,
    engine: Arc<Mutex<Option<SendRequest<Body>>>>,
) -> Response<Body> {
    let (shared, engine) = (&shared, &engine);
    let method = request.method().as_str().to_string();
    // The target as sent: a path, or an absolute form the engine would route by its path.
    let target = request.uri().to_string();
    if matches!(method.as_str(), "GET" | "HEAD") {
        return forward(
            request.map(BodyExt::boxed),
            &method,
            &target,
            shared,
            engine,
        )
        .await;
    }
    let dialect = match shared.guard.dialect().await {
        Ok(dialect) => dialect,
        Err(e) => {
            let message = format!("guestlist guard: cannot reach the engine: {e:#}");
            return answer(StatusCode::BAD_GATEWAY, &message);
        }
    };
    let content_types: Vec<String> = request
        .headers()
        .get_all(header::CONTENT_TYPE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let types: Vec<&str> = content_types.iter().map(String::as_str).collect();
    let has_body = !request.body().is_end_stream();
    let (mut parts, body) = request.into_parts();
    // Held until the request is sent on: the budget counts what is in memory.
    let mut held = None;
    let (body, read): (Body, Option<Bytes>) =
        match super::request::wants_body(&method, &target, dialect) {
            false => (body.boxed(), None),
            true => match read_body(body, &shared.budget).await {
                Ok((bytes, permit)) => {
                    held = Some(permit);
                    (full(bytes.clone()), Some(bytes))
                }
                Err((status, message)) => return answer(status, &message),
            },
        };
    let received = Received {
        method: &method,
        uri: &target,
        content_types: &types,
        has_body,
        body: read.as_deref(),
        peer,
        user: None,
    };
    let pass = match shared.guard.judge(received).await {
        Answer::AsIs => None,
        Answer::Pass(pass) => Some(pass),
        Answer::Refuse(Refusal { message, .. }) => return answer(StatusCode::FORBIDDEN, &message),
        Answer::Missing(reference) => return missing(&reference, dialect),
    };
    let mut body = body;
    let mut admit = None;
    if let Some(pass) = &pass {
        match pass.target.parse() {
            Ok(uri) => parts.uri = uri,
            Err(e) => {
                let message = format!("guestlist guard: cannot send {} on: {e}", pass.target);
                return answer(StatusCode::BAD_REQUEST, &message);
            }
        }
        if let Some(replaced) = &pass.body {
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, replaced.len().into());
            body = full(Bytes::from(replaced.clone()));
        }
        admit = pass.admit;
    }
    let request = Request::from_parts(parts, body);
    let Some(made) = admit else {
        let response = forward(request, &method, &target, shared, engine).await;
        drop(held);
        return response;
    };
    // A create and the measure of what it made run to their end on a task of their own: a
    // client that hangs up once the request is sent must not leave the container unmeasured.
    let (shared, engine) = (Arc::clone(shared), Arc::clone(engine));
    let created = tokio::task::spawn_local(async move {
        let response = forward(request, &method, &target, &shared, &engine).await;
        drop(held);
        if response.status() != StatusCode::CREATED {
            return response;
        }
        let types: Vec<&str> = content_types.iter().map(String::as_str).collect();
        let received = Received {
            method: &method,
            uri: &target,
            content_types: &types,
            has_body,
            body: read.as_deref(),
            peer,
            user: None,
        };
        admitted(response, &shared.guard, &received, made).await
    });
    match created.await {
        Ok(response) => response,
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("guestlist guard: the create's check ended early: {e}"),
        ),
    }
}

/// A create's answer, once the guard measured the container it made: the engine's answer as it
/// came, or the refusal (the container removed again).
async fn admitted(
    response: Response<Body>,
    guard: &Guard,
    received: &Received<'_>,
    made: super::Made,
) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let message = format!("guestlist guard: the engine's answer broke off: {e}");
            return answer(StatusCode::BAD_GATEWAY, &message);
        }
    };
    let id = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["Id"].as_str().map(String::from));
    if let Some(id) = id {
        if let super::policy::Verdict::Refuse(r) = guard.admit(made, &id, received).await {
            return answer(StatusCode::FORBIDDEN, &r.message);
        }
    }
    Response::from_parts(parts, full(bytes))
}

/// Read a body the guard judges: whole, within `MAX_BODY` and `BODY_TIMEOUT`, into one
/// buffer (freed whole when the request is done, so memory goes back when clients leave). Its
/// declared length is taken from the shared budget before anything is read (a client that must
/// wait keeps its body in its own socket buffer); a chunked body's as its buffer grows.
async fn read_body(
    body: Incoming,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), (StatusCode, String)> {
    let too_large = || {
        let message = format!(
            "guestlist guard: a body the guard reads is at most {} MiB",
            MAX_BODY >> 20
        );
        (StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let busy = || {
        let message = "guestlist guard: too many request bodies are being read at once; try again";
        (StatusCode::SERVICE_UNAVAILABLE, message.to_string())
    };
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let take = |bytes: usize| {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let until = deadline.min(tokio::time::Instant::now() + BODY_WAIT);
        tokio::time::timeout_at(until, Arc::clone(budget).acquire_many_owned(kib))
    };
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut buffer = Vec::new();
    if let Some(length) = declared.and_then(|n| usize::try_from(n).ok()) {
        match take(length).await {
            Ok(Ok(permit)) => held = Some(permit),
            _ => return Err(busy()),
        }
        buffer.reserve_exact(length);
    }
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                let message = format!(
                    "guestlist guard: the request's body did not arrive within {}s",
                    BODY_TIMEOUT.as_secs()
                );
                return Err((StatusCode::REQUEST_TIMEOUT, message));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let message = format!("guestlist guard: cannot read the request's body: {e}");
                return Err((StatusCode::BAD_REQUEST, message));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > MAX_BODY {
            return Err(too_large());
        }
        // A chunked body's buffer grows by doubling (up to the bound): the budget counts
        // what it holds, capacity and all.
        let needed = buffer.len() + data.len();
        if needed > buffer.capacity() {
            let grown = needed.max(buffer.capacity() * 2).min(MAX_BODY);
            match take(grown - buffer.capacity()).await {
                Ok(Ok(permit)) => match held.as_mut() {
                    Some(all) => all.merge(permit),
                    None => held = Some(permit),
                },
                _ => return Err(busy()),
            }
            buffer.reserve_exact(grown - buffer.len());
        }
        buffer.extend_from_slice(&data);
    }
    Ok((Bytes::from(buffer), held))
}

/// Send `request` to the engine and hand back its answer, reads whole (`is_finite_read`), an
/// upgrade spliced.
async fn forward(
    mut request: Request<Body>,
    method: &str,
    target: &str,
    shared: &Shared,
    engine: &Mutex<Option<SendRequest<Body>>>,
) -> Response<Body> {
    let upgrade = request
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut request));
    let mut response = match send(&shared.upstream, engine, request).await {
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
    if is_finite_read(method, target) {
        return whole(response).await;
    }
    // An answer whose end is the end of the connection (Podman's exec and attach streams,
    // which it writes raw on a hijacked connection): passed on the same way, not re-framed as
    // chunks the client would read as stream data. HTTP/1.0 is how hyper is told.
    let framed = [header::CONTENT_LENGTH, header::TRANSFER_ENCODING]
        .iter()
        .any(|h| response.headers().contains_key(h));
    if !framed && response.status() == StatusCode::OK {
        *response.version_mut() = hyper::Version::HTTP_10;
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

/// The engine's own answer for a container that does not exist, in its words: the docker CLI
/// and podman-remote tell it from other errors by them (`rm -f` of a missing container is
/// not a failure).
fn missing(reference: &str, dialect: super::target::Dialect) -> Response<Body> {
    let body = match dialect {
        super::target::Dialect::Docker => {
            serde_json::json!({ "message": format!("No such container: {reference}") })
        }
        super::target::Dialect::Podman => serde_json::json!({
            "cause": "no such container",
            "message": format!("no container with name or ID \"{reference}\" found: no such container"),
            "response": 404,
        }),
    };
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
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
