//! Why the engine could not be used, worded as what happened: no socket, nobody listening, a
//! socket this user may not use, an engine that answers with an error, or something at the
//! endpoint that is no engine at all. "Is the daemon running?" is the question only when
//! nothing answered.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::anyhow;
use bollard::errors::Error as BollardError;

use crate::error::Hint;

/// The error of a failed first contact with the engine at `endpoint`.
pub fn connecting(endpoint: &str, e: &BollardError) -> anyhow::Error {
    let socket = endpoint.strip_prefix("unix://").map(Path::new);
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => answered(endpoint, *status_code, message),
        BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. } => {
            anyhow!("the endpoint {endpoint} answered, but not as a Docker Engine API does: {e}")
                .context(Hint(
                    "point --host (or DOCKER_HOST) at the engine's socket or port".into(),
                ))
        }
        BollardError::SocketNotFoundError(_) => no_socket(endpoint, socket),
        BollardError::RequestTimeoutError => anyhow!(
            "the engine at {endpoint} accepted the connection and did not answer in time: it \
             may be overloaded or hung"
        )
        .context(Hint(
            "check the daemon's log (journalctl -u docker, or -u podman)".into(),
        )),
        _ => match io_kind(e) {
            Some(ErrorKind::PermissionDenied) => denied(endpoint, socket, e),
            Some(ErrorKind::NotFound) => no_socket(endpoint, socket),
            Some(ErrorKind::ConnectionRefused) => anyhow!(
                "cannot reach Docker at {endpoint}: nothing listens there (connection refused)"
            )
            .context(Hint(
                "is the daemon running? Start it, or point --host (or DOCKER_HOST) at where it \
                 listens"
                    .into(),
            )),
            _ => anyhow!("cannot reach Docker at {endpoint}: {}", chain(e)).context(Hint(
                "is the daemon running, and may this user use its socket?".into(),
            )),
        },
    }
}

fn no_socket(endpoint: &str, socket: Option<&Path>) -> anyhow::Error {
    anyhow!(
        "cannot reach Docker at {endpoint}: there is no socket at {}",
        socket.map_or(endpoint.into(), |s| s.display().to_string())
    )
    .context(Hint(
        "is the daemon running? Start it, or point --host (or DOCKER_HOST) at its socket".into(),
    ))
}

/// An HTTP answer that is not a success, to the first request (`/version`, `/info`).
fn answered(endpoint: &str, status: u16, message: &str) -> anyhow::Error {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    // The engine's own message (bollard takes it out of the JSON), else a body of one line at
    // most: a web server's page is not worth quoting.
    let words: Vec<&str> = message.split_whitespace().collect();
    let said = match words.first() {
        None => String::new(),
        Some(w) if w.starts_with('<') => " (an HTML page)".into(),
        Some(_) => format!(
            " ({})",
            words.join(" ").chars().take(200).collect::<String>()
        ),
    };
    match status {
        300..=399 => anyhow!(
            "the endpoint {endpoint} answered with a redirect ({status} {reason}){said}; an \
             engine never redirects, so something else (a web server, a proxy) listens there"
        )
        .context(Hint(
            "point --host (or DOCKER_HOST) at the engine's socket or port itself".into(),
        )),
        401 | 403 => anyhow!(
            "the engine at {endpoint} refused this client ({status} {reason}){said}: an \
             authorization plugin or a proxy in front of the engine decides"
        )
        .context(Hint(
            "ask whoever runs the engine for access, or use a socket without that guard".into(),
        )),
        404 => anyhow!(
            "the endpoint {endpoint} answered {status} {reason} to the engine's version \
             request{said}: what listens there is not a Docker Engine API"
        )
        .context(Hint(
            "point --host (or DOCKER_HOST) at the engine's socket or port".into(),
        )),
        _ => anyhow!(
            "the engine at {endpoint} answered {status} {reason} to its first request{said}: \
             it runs, and fails"
        )
        .context(Hint(
            "check the daemon's log (journalctl -u docker, or -u podman), then try again".into(),
        )),
    }
}

/// Permission denied on the engine's socket: who owns it, and who this process is.
fn denied(endpoint: &str, socket: Option<&Path>, e: &BollardError) -> anyhow::Error {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::geteuid().as_raw();
    let Some(meta) = socket.and_then(|s| std::fs::metadata(s).ok()) else {
        return anyhow!(
            "cannot reach Docker at {endpoint}: permission denied ({})",
            chain(e)
        )
        .context(Hint(format!(
            "this user (uid {uid}) may not use the engine's endpoint"
        )));
    };
    let group = uzers::get_group_by_gid(meta.gid()).map_or(meta.gid().to_string(), |g| {
        g.name().to_string_lossy().into_owned()
    });
    let owner = uzers::get_user_by_uid(meta.uid()).map_or(meta.uid().to_string(), |u| {
        u.name().to_string_lossy().into_owned()
    });
    let path = socket.map(Path::display);
    anyhow!(
        "cannot reach Docker at {endpoint}: permission denied on the socket {} (owner {owner}, \
         group {group}, mode {:03o}); this process runs as uid {uid}",
        path.map(|p| p.to_string()).unwrap_or_default(),
        meta.mode() & 0o777
    )
    .context(Hint(format!(
        "run guestlist as root or as a member of group {group} (then log in again), or point \
         --host at a socket this user may use"
    )))
}

/// The kind of the I/O error at the bottom of `e`, if there is one.
fn io_kind(e: &BollardError) -> Option<ErrorKind> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = c.source();
    }
    None
}

/// `e` with its causes, on one line.
fn chain(e: &BollardError) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// So that an error's wording can be checked where its words are made.
#[cfg(test)]
mod tests {
    use super::*;

    fn said(status: u16, message: &str) -> String {
        let e = BollardError::DockerResponseServerError {
            status_code: status,
            message: message.into(),
        };
        let err = connecting("tcp://127.0.0.1:2375", &e);
        format!("{:#}", err)
    }

    #[test]
    fn an_answer_is_worded_as_what_it_is() {
        let redirect = said(301, "");
        assert!(
            redirect.contains("a redirect (301 Moved Permanently)"),
            "{redirect}"
        );
        assert!(!redirect.contains("daemon running"), "{redirect}");
        let failing = said(500, "boom\n  at once");
        assert!(
            failing.contains("answered 500 Internal Server Error"),
            "{failing}"
        );
        assert!(failing.contains("(boom at once)"), "{failing}");
        let page = said(404, "<!DOCTYPE HTML>\n<html>...</html>");
        assert!(
            page.contains("404 Not Found to the engine's version request (an HTML page)"),
            "{page}"
        );
        assert!(said(403, "no").contains("refused this client"));
    }
}
