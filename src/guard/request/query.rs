//! The query of a request, read for the parameters that decide what it does. Pure.

use crate::guard::body;

/// A query, read for the parameters that decide what a request does. dockerd takes the first
/// of a repeated key and compares keys exactly; Podman takes the last and folds case. A
/// deciding key given twice, or spelled in another case, is refused: the two would differ.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: &str) -> Result<Query, String> {
        if raw.contains(';') {
            return Err("a `;` in the query (dockerd refuses it, Podman drops the pair)".into());
        }
        let bad_escape = raw.split('&').any(|pair| {
            let bytes = pair.as_bytes();
            bytes.iter().enumerate().any(|(i, &b)| {
                b == b'%'
                    && !bytes
                        .get(i + 1..i + 3)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
            })
        });
        if bad_escape {
            return Err("a bad escape in the query".into());
        }
        Ok(Query(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    /// The one value of `key`.
    pub(super) fn single(&self, key: &str) -> Result<Option<String>, String> {
        let mut found = self.0.iter().filter(|(k, _)| body::fold(k) == key);
        let Some((first_key, value)) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(format!(
                "the query gives {key} more than once (dockerd reads the first, Podman the last)"
            ));
        }
        if first_key != key {
            return Err(format!(
                "the query spells {key} as {first_key} (Podman reads it, dockerd does not)"
            ));
        }
        Ok(Some(value.clone()))
    }

    /// Every value of `key` (Podman's lists of images).
    pub(super) fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| body::fold(k) == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter, true unless absent or false as dockerd reads booleans (`""`, `0`,
    /// `no`, `false`, `none`): where the engines differ, the guard takes it as true.
    pub(super) fn flag(&self, key: &str) -> Result<bool, String> {
        Ok(self.single(key)?.is_some_and(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            )
        }))
    }
}
