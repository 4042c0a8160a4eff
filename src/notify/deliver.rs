//! Delivery: POST one JSON document to every receiver, at once, retrying briefly. A receiver
//! that is slow, refuses or answers an error costs a pass at most `BUDGET` in all, never its
//! exit code.
//!
//! reqwest, on the hyper already in the tree, with rustls and its ring provider: no C library
//! to link, so the static binary of the `FROM scratch` image keeps working, and reqwest honours
//! `HTTPS_PROXY`/`NO_PROXY`, which hosts that reach chat services only through a proxy need.
//! The trusted roots are the system's (`rustls-native-certs`: `SSL_CERT_FILE`, then the
//! distribution's bundle), read only when a notification is first sent.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio::time::{sleep, timeout_at, Instant};

/// Tries per receiver and notification.
const TRIES: usize = 3;
/// Everything a pass's notification may take, retries included, over all receivers.
pub const BUDGET: Duration = Duration::from_secs(5);
/// One try; a receiver that hangs leaves room for another try within the budget.
const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// Waits between tries.
const WAITS: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(500)];

/// A receiver's address, and how it is named in a warning: scheme, host and port only. The
/// rest is often the credential itself (a Slack webhook's path), and a query can carry a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    url: Url,
    pub shown: String,
}

impl Receiver {
    pub fn new(url: Url) -> Receiver {
        let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        if let Some(port) = url.port() {
            shown += &format!(":{port}");
        }
        if url.path() != "/" || url.query().is_some() {
            shown += "/…";
        }
        Receiver { url, shown }
    }
}

/// The receivers of one command, and the client that reaches them, built on first use.
pub struct Receivers {
    pub list: Vec<Receiver>,
    client: OnceCell<Result<reqwest::Client, String>>,
}

impl Receivers {
    pub fn new(list: Vec<Receiver>) -> Receivers {
        Receivers {
            list,
            client: OnceCell::new(),
        }
    }

    /// POST `body` to every receiver; one result per receiver, in order, an error saying what
    /// went wrong on the last try (never the URL).
    pub async fn post(&self, body: &Value) -> Vec<Result<(), String>> {
        let deadline = Instant::now() + BUDGET;
        let client = self.client.get_or_init(|| async { client() }).await;
        let client = match client {
            Ok(client) => client,
            Err(e) => return self.list.iter().map(|_| Err(e.clone())).collect(),
        };
        let body = Arc::new(body.to_string());
        let sends = self
            .list
            .iter()
            .map(|r| send(client, &r.url, Arc::clone(&body), deadline));
        futures_util::future::join_all(sends).await
    }
}

fn client() -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Certificates the store cannot use are skipped, as every TLS client does; none at all
    // shows as a certificate error at the first https receiver.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        // A redirected POST turns into a GET on the way: a receiver that moved must be
        // configured anew, not half-reached.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("guestlist/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))
}

async fn send(
    client: &reqwest::Client,
    url: &Url,
    body: Arc<String>,
    deadline: Instant,
) -> Result<(), String> {
    let mut last = String::new();
    for try_number in 0..TRIES {
        if try_number > 0 {
            let wait = WAITS[(try_number - 1).min(WAITS.len() - 1)];
            if Instant::now() + wait >= deadline {
                break;
            }
            sleep(wait).await;
        }
        let request = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.as_ref().clone())
            .send();
        let full = Instant::now() + TRY_TIMEOUT;
        let ends = deadline.min(full);
        let (error, again) = match timeout_at(ends, request).await {
            Err(_) if ends < full => (
                format!(
                    "no answer before the {} for the pass's notifications ran out",
                    humantime::format_duration(BUDGET)
                ),
                false,
            ),
            Err(_) => (
                format!(
                    "no answer within {}",
                    humantime::format_duration(TRY_TIMEOUT)
                ),
                true,
            ),
            Ok(Err(e)) => (chain(&e), true),
            Ok(Ok(response)) => match answer(response.status()) {
                Answer::Taken => return Ok(()),
                Answer::Retry(e) => (e, true),
                Answer::Refused(e) => (e, false),
            },
        };
        last = format!("{error} (try {} of {TRIES})", try_number + 1);
        if !again || Instant::now() >= deadline {
            break;
        }
    }
    Err(last)
}

#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Taken,
    /// Worth another try: the receiver is overloaded or failing for now.
    Retry(String),
    /// Another try gets the same answer: the receiver or its address is wrong.
    Refused(String),
}

fn answer(status: StatusCode) -> Answer {
    let said = format!("answered {status}");
    if status.is_success() {
        Answer::Taken
    } else if status == StatusCode::NOT_IMPLEMENTED
        || status == StatusCode::HTTP_VERSION_NOT_SUPPORTED
    {
        // Server errors that say "never", not "not now".
        Answer::Refused(said)
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Answer::Retry(said)
    } else if status.is_redirection() {
        Answer::Refused(format!(
            "{said} (redirects are not followed; use the new address)"
        ))
    } else {
        Answer::Refused(said)
    }
}

/// An error and its causes on one line, without the URL reqwest puts in its own message.
fn chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "broken answer"
    } else {
        "request failed"
    };
    match parts.is_empty() {
        true => kind.to_string(),
        false => format!("{kind}: {}", parts.join(": ")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_is_named_without_its_path_query_or_credentials() {
        let shown = |text: &str| Receiver::new(Url::parse(text).unwrap()).shown;
        assert_eq!(
            shown("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown("http://user:hunter2@127.0.0.1:8080/hook?token=abc"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(
            shown("http://alerts.example:9000"),
            "http://alerts.example:9000"
        );
    }

    #[test]
    fn an_overloaded_receiver_is_tried_again_a_wrong_address_is_not() {
        use reqwest::StatusCode as S;
        assert_eq!(answer(S::OK), Answer::Taken);
        assert_eq!(answer(S::NO_CONTENT), Answer::Taken);
        assert!(matches!(answer(S::INTERNAL_SERVER_ERROR), Answer::Retry(_)));
        assert!(matches!(answer(S::SERVICE_UNAVAILABLE), Answer::Retry(_)));
        assert!(matches!(answer(S::TOO_MANY_REQUESTS), Answer::Retry(_)));
        assert!(matches!(answer(S::NOT_FOUND), Answer::Refused(_)));
        assert!(matches!(answer(S::FORBIDDEN), Answer::Refused(_)));
        assert!(matches!(answer(S::MOVED_PERMANENTLY), Answer::Refused(_)));
        assert!(matches!(answer(S::NOT_IMPLEMENTED), Answer::Refused(_)));
        assert!(matches!(
            answer(S::HTTP_VERSION_NOT_SUPPORTED),
            Answer::Refused(_)
        ));
    }
}
