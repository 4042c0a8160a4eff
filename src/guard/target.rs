//! The request target (`/v1.41/containers/web/stop?t=3`) read as the engine reads it. Pure.
//!
//! The engines differ, and a guard that reads a path its own way is walked past by the
//! difference (`/containers%2Fweb` reached a removal unchecked): see
//! `shared/reference/engine-request-parsing.md` §1 and §6.
//! - Both are Go servers: the target is read by `url.ParseRequestURI`, so an absolute form
//!   (`http://h/v1.41/containers/create`, or `http:/...` with no host) routes like its path.
//! - dockerd's router matches on the percent-decoded path (`%2F` is a `/`).
//! - Podman's router matches on the escaped path and decodes each path variable afterwards.
//! - Both answer a path that `path.Clean` would change with a 301 and run nothing; the guard
//!   refuses such a path when the request would change something, rather than guess.

use std::fmt;

/// How an engine routes a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// dockerd: the decoded path.
    Docker,
    /// Podman's service: the escaped path, variables decoded after matching.
    Podman,
}

/// A request target the engine would not route as a request at all, or not to a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unroutable {
    /// Go's HTTP server or URL parser refuses it (400): a control byte, a bad `%` escape.
    Malformed(String),
    /// The router answers 301 to another path and runs nothing.
    NotClean(String),
    /// An opaque or empty target: no path to route.
    NoPath,
}

impl fmt::Display for Unroutable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unroutable::Malformed(why) => write!(f, "the request target is malformed ({why})"),
            Unroutable::NotClean(clean) => write!(
                f,
                "the path is not in its clean form (the engine would redirect to {clean})"
            ),
            Unroutable::NoPath => f.write_str("the request target has no path"),
        }
    }
}

/// A request target, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The path the router matches on: decoded for Docker, escaped for Podman.
    pub path: String,
    /// The query as sent, without the `?`.
    pub query: String,
}

impl Target {
    /// Read `raw`, the request target as the client sent it (or as dockerd hands it to a
    /// plugin), the way `dialect`'s router sees it.
    pub fn parse(raw: &str, dialect: Dialect) -> Result<Target, Unroutable> {
        let (path, query) = split_request_uri(raw)?;
        let decoded = unescape(path)?;
        let routed = match dialect {
            Dialect::Docker => decoded,
            Dialect::Podman => escaped_path(path, &decoded),
        };
        if routed.is_empty() {
            return Err(Unroutable::NoPath);
        }
        let clean = clean_path(&routed);
        if clean != routed {
            return Err(Unroutable::NotClean(clean));
        }
        Ok(Target {
            path: routed,
            query: query.to_string(),
        })
    }
}

/// `url.ParseRequestURI` (Go's `net/url` `parse` with `viaRequest`): the escaped path and the
/// query of a request target, whatever its form.
fn split_request_uri(raw: &str) -> Result<(&str, &str), Unroutable> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Unroutable::Malformed("a control character".into()));
    }
    if raw.is_empty() || raw == "*" {
        return Err(Unroutable::NoPath);
    }
    let rest = match scheme_end(raw) {
        Some(end) => &raw[end + 1..],
        None => raw,
    };
    let has_scheme = rest.len() != raw.len();
    // Go keeps a lone trailing `?` out of the path as an empty query, like any other.
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !rest.starts_with('/') {
        // Opaque (`http:x`), or not a request URI at all (Go answers 400).
        return match has_scheme {
            true => Err(Unroutable::NoPath),
            false => Err(Unroutable::Malformed("not an absolute path".into())),
        };
    }
    let path = match (has_scheme, rest.strip_prefix("//")) {
        // `scheme://authority/path`: the authority is not routed on.
        (true, Some(after)) => after.find('/').map_or("", |i| &after[i..]),
        _ => rest,
    };
    Ok((path, query))
}

/// Where a leading URL scheme (`http:`) ends, as Go's `getScheme` finds one.
fn scheme_end(raw: &str) -> Option<usize> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => return Some(i),
            _ => return None,
        }
    }
    None
}

/// Go's `unescape(s, encodePath)`: every `%` must start two hex digits; `+` stays `+`. The
/// bytes decoded need not be UTF-8; such a path names nothing, and is kept lossily.
fn unescape(path: &str) -> Result<String, Unroutable> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + at;
        let hex = bytes.get(at + 1..at + 3);
        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return Err(Unroutable::Malformed(format!(
                "a bad escape at byte {at} of the path"
            )));
        }
        i = at + 3;
    }
    Ok(percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned())
}

/// Go's `URL.EscapedPath`: the path as sent when it is a valid escaping of the decoded path,
/// else the decoded path escaped afresh.
fn escaped_path(raw: &str, decoded: &str) -> String {
    let valid = raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@[]%/".contains(&b));
    match valid {
        true => raw.to_string(),
        false => escape_path(decoded),
    }
}

/// Escape a decoded path for a request line, keeping `/`: what the proxy forwards is then read
/// back by either engine as exactly this decoded path.
pub fn escape_path(decoded: &str) -> String {
    percent_encoding::utf8_percent_encode(decoded, PATH).to_string()
}

/// Escape one path variable (a container reference), `/` included.
pub fn escape_segment(decoded: &str) -> String {
    percent_encoding::utf8_percent_encode(decoded, SEGMENT).to_string()
}

/// Everything but the unreserved characters and `/` is escaped.
const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
const SEGMENT: &percent_encoding::AsciiSet = &PATH.add(b'/');

/// gorilla/mux's `cleanPath`: `path.Clean`, keeping a trailing slash.
fn clean_path(path: &str) -> String {
    let rooted = match path.starts_with('/') {
        true => path.to_string(),
        false => format!("/{path}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in rooted.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    if rooted.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn docker(raw: &str) -> Result<Target, Unroutable> {
        Target::parse(raw, Dialect::Docker)
    }

    fn podman(raw: &str) -> Result<Target, Unroutable> {
        Target::parse(raw, Dialect::Podman)
    }

    #[test]
    fn docker_routes_on_the_decoded_path_and_podman_on_the_escaped_one() {
        let t = docker("/v1.41/containers%2Fcreate?name=x").unwrap();
        assert_eq!(t.path, "/v1.41/containers/create");
        assert_eq!(t.query, "name=x");
        assert_eq!(
            docker("/containers/web%2Fstop").unwrap().path,
            "/containers/web/stop"
        );
        assert_eq!(
            podman("/containers%2Fcreate").unwrap().path,
            "/containers%2Fcreate"
        );
        assert_eq!(
            podman("/v4.3.1/libpod/images/docker.io%2Flibrary%2Fbusybox")
                .unwrap()
                .path,
            "/v4.3.1/libpod/images/docker.io%2Flibrary%2Fbusybox"
        );
    }

    #[test]
    fn absolute_forms_route_like_their_path() {
        for raw in [
            "http://d/v1.51/containers/create?name=x",
            "HTTP://d/v1.51/containers/create?name=x",
            "unix://whatever/v1.51/containers/create?name=x",
            "http:/v1.51/containers/create?name=x",
        ] {
            let t = docker(raw).unwrap();
            assert_eq!(t.path, "/v1.51/containers/create", "{raw}");
            assert_eq!(t.query, "name=x", "{raw}");
        }
        assert_eq!(docker("http:containers/create"), Err(Unroutable::NoPath));
        assert_eq!(docker("http://d"), Err(Unroutable::NoPath));
    }

    #[test]
    fn paths_the_router_would_redirect_are_not_routed() {
        for raw in [
            "//containers/create",
            "/containers/./create",
            "/v1.41/containers/x/../create",
            "/containers/web/stop/.",
            "/containers%2F%2Fweb",
            "/containers/%2E%2E/create",
        ] {
            assert!(
                matches!(docker(raw), Err(Unroutable::NotClean(_))),
                "{raw}: {:?}",
                docker(raw)
            );
        }
        assert_eq!(docker("/containers/web/").unwrap().path, "/containers/web/");
        // Podman cleans the escaped path: an escaped dot is a name, not a step.
        assert!(podman("/containers/%2E%2E/create").is_ok());
        assert!(podman("/containers/../create").is_err());
    }

    #[test]
    fn malformed_targets_are_not_routed() {
        assert!(matches!(
            docker("/containers/%zz/stop"),
            Err(Unroutable::Malformed(_))
        ));
        assert!(matches!(
            docker("/containers/web%2"),
            Err(Unroutable::Malformed(_))
        ));
        assert!(matches!(
            docker("/containers/\u{7f}"),
            Err(Unroutable::Malformed(_))
        ));
        assert!(matches!(
            docker("containers/create"),
            Err(Unroutable::Malformed(_))
        ));
        assert_eq!(docker("*"), Err(Unroutable::NoPath));
        assert_eq!(docker(""), Err(Unroutable::NoPath));
    }

    #[test]
    fn the_fragment_is_part_of_the_path_as_go_reads_a_request() {
        assert_eq!(
            docker("/containers/web#/stop").unwrap().path,
            "/containers/web#/stop"
        );
    }

    #[test]
    fn an_escaped_path_is_read_back_as_the_same_decoded_path() {
        for decoded in [
            "/containers/web/db/stop",
            "/containers/a b?c#d%e/json",
            "/x/é",
        ] {
            let sent = escape_path(decoded);
            assert_eq!(docker(&sent).unwrap().path, decoded, "{sent}");
        }
        assert_eq!(escape_segment("web/db"), "web%2Fdb");
    }
}
