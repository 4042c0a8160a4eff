//! Reads over a plain HTTP connection of our own (unix:// and tcp://), for the few answers
//! that must reach us as the engine wrote them rather than through bollard's typed models
//! (which drop fields they do not know).

use std::time::Duration;

use anyhow::{anyhow, Result};
use hyper::body::Bytes;
use serde_json::Value;

/// The engine's answer to a GET of ours.
pub enum Answer {
    Found(Value),
    /// 404: no such thing.
    Absent,
    /// An endpoint our plain client cannot speak to (TLS, ssh): ask through bollard instead.
    Unspoken,
}

/// One GET answered with JSON, over a plain connection of our own (unix:// and tcp://).
pub async fn get_json(endpoint: &str, path: &str) -> Result<Answer> {
    let Some((status, body)) = raw_get(endpoint, path, hyper::Method::GET).await? else {
        return Ok(Answer::Unspoken);
    };
    match status {
        200 => Ok(Answer::Found(serde_json::from_slice(&body)?)),
        404 => Ok(Answer::Absent),
        _ => Err(anyhow!(
            "the engine answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        )),
    }
}

/// One GET over a fresh connection, for the rare request whose answer must not pass through
/// bollard's typed models. `None` for endpoints other than plain unix:// and tcp://.
/// One DELETE, for a removal bollard cannot ask for (Podman's `depend=true`): the status and
/// the body as the engine sent them; `None` for endpoints other than unix:// and tcp://.
pub async fn delete(endpoint: &str, path: &str) -> Result<Option<(u16, Bytes)>> {
    raw_get(endpoint, path, hyper::Method::DELETE).await
}

async fn raw_get(
    endpoint: &str,
    path: &str,
    method: hyper::Method,
) -> Result<Option<(u16, Bytes)>> {
    let exchange = async {
        if let Some(socket) = endpoint.strip_prefix("unix://") {
            let stream = tokio::net::UnixStream::connect(socket).await?;
            return Ok(Some(get_over(stream, path, method).await?));
        }
        if let Some(address) = endpoint.strip_prefix("tcp://") {
            let stream = tokio::net::TcpStream::connect(address).await?;
            return Ok(Some(get_over(stream, path, method).await?));
        }
        Ok(None)
    };
    tokio::time::timeout(RAW_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no answer from {endpoint} within {RAW_TIMEOUT:?}"))?
}

/// Reads take milliseconds; this only bounds a hung engine.
const RAW_TIMEOUT: Duration = Duration::from_secs(30);

async fn get_over<S>(stream: S, path: &str, method: hyper::Method) -> Result<(u16, Bytes)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "docker")
        .body(http_body_util::Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}
