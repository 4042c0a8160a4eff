//! Request bodies read as the engines read them, or refused. Pure.
//!
//! dockerd and Podman decode JSON with Go's `encoding/json`, which a strict reader does not
//! agree with (`shared/reference/engine-request-parsing.md` §4): object keys match struct
//! fields without regard to case (`IMAGE`, and `ſ`/`K` for s/k), a repeated key is decoded
//! again (the last scalar wins, objects merge), invalid UTF-8 becomes U+FFFD, trailing data is
//! ignored by Docker 20.10, and nesting goes 10000 deep. A guard that reads such a body its own
//! way judges another container than the engine creates.
//!
//! So a body is read here only when every reader agrees on it: one value, nothing after it but
//! white space, valid UTF-8 (lone `\u` surrogates included), nesting under serde_json's 128,
//! no key given twice in an object, and no two keys of a struct-typed object that Go folds to
//! the same field. Anything else is refused as ambiguous. On what is left, Go's matching is
//! exactly a lookup by folded key, which `Object::field` does.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON value with every key of every object kept, in order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Kept as serde_json reads it, for re-serializing.
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Object),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object(pub Vec<(String, Json)>);

/// Why a body is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguous(pub String);

impl fmt::Display for Ambiguous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Objects whose keys are data (label names, ports, network names), not struct fields: Go
/// decodes them into maps, where keys are compared exactly. Named by the key that holds them
/// (folded), in Docker's create body and Podman's.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "exposedports",
    "volumes",
    "portbindings",
    "tmpfs",
    "storageopt",
    "storage_opts",
    "sysctls",
    "sysctl",
    "endpointsconfig",
    "driveropts",
    "annotations",
    "options",
    "env",
    "networks",
    "secret_env",
];

/// Read `bytes` as one JSON value that every reader reads alike.
pub fn parse(bytes: &[u8]) -> Result<Json, Ambiguous> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = Json::deserialize(&mut reader).map_err(|e| Ambiguous(format!("{e}")))?;
    // Only white space may follow: Docker 20.10 ignores the rest, Docker 28 refuses it.
    reader
        .end()
        .map_err(|_| Ambiguous("there is data after the JSON value".into()))?;
    check(&value, None)?;
    Ok(value)
}

/// Go's key folding for matching a key to a struct field: ASCII case, and the two non-ASCII
/// runes that fold onto ASCII letters (U+017F long s, U+212A Kelvin sign).
pub fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn check(value: &Json, holder: Option<&str>) -> Result<(), Ambiguous> {
    match value {
        Json::Array(items) => items.iter().try_for_each(|v| check(v, None)),
        Json::Object(object) => {
            let is_map = holder.is_some_and(|h| MAP_FIELDS.contains(&fold(h).as_str()));
            let mut seen: Vec<(String, &str)> = Vec::new();
            for (key, inner) in &object.0 {
                let compared = match is_map {
                    true => key.clone(),
                    false => fold(key),
                };
                if let Some((_, first)) = seen.iter().find(|(k, _)| *k == compared) {
                    return Err(Ambiguous(match first == key {
                        true => format!("the key {key:?} is given twice in one object"),
                        false => format!(
                            "the keys {first:?} and {key:?} name the same field for the engine"
                        ),
                    }));
                }
                seen.push((compared, key));
                check(inner, Some(key))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl Json {
    pub fn as_object_ref(&self) -> Option<&Object> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// As a `serde_json::Value` (the last of repeated map keys wins, as in Go's maps; `parse`
    /// refused repeated keys anyway).
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(o) => {
                Value::Object(o.0.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }
}

impl Object {
    /// The value of the struct field `name`, matched as Go matches it (exact, else folded).
    pub fn field(&self, name: &str) -> Option<&Json> {
        let want = fold(name);
        self.0.iter().find(|(k, _)| fold(k) == want).map(|(_, v)| v)
    }

    /// The keys present that Go would decode into one of `fields` (folded).
    pub fn keys_among<'a>(&'a self, fields: &'a [&str]) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(move |k| fields.iter().any(|f| fold(f) == fold(k)))
    }

    /// A string map (labels): other values are not strings to Go either, and fail the decode.
    pub fn strings(&self) -> Result<std::collections::HashMap<String, String>, Ambiguous> {
        self.0
            .iter()
            .map(|(k, v)| match v {
                Json::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(Ambiguous(format!("the value of {k:?} is not a string"))),
            })
            .collect()
    }
}

impl<'de> de::Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

use serde::Deserialize as _;

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            entries.push((key, value));
        }
        Ok(Json::Object(Object(entries)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    impl Json {
        fn as_object(&self) -> Option<&Object> {
            self.as_object_ref()
        }
    }

    fn refused(body: &[u8]) -> String {
        match parse(body) {
            Err(Ambiguous(why)) => why,
            Ok(v) => panic!("{:?} was read as {v:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn a_plain_create_body_is_read_and_fields_match_as_go_matches_them() {
        let json = parse(
            r#"{"IMAGE":"busybox","labelſ":{"Team":"a","team":"b"},"Cmd":["sh"]}"#.as_bytes(),
        )
        .unwrap();
        let body = json.as_object().unwrap();
        assert_eq!(body.field("Image").and_then(Json::as_str), Some("busybox"));
        let labels = body.field("Labels").and_then(Json::as_object).unwrap();
        assert_eq!(labels.strings().unwrap().len(), 2, "label keys are exact");
        assert!(body.field("HostConfig").is_none());
        let kelvin = parse(
            "{\"NetworKMode\":\"host\"}"
                .replace('K', "\u{212a}")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            kelvin
                .as_object()
                .unwrap()
                .keys_among(&["NetworkMode"])
                .count(),
            1
        );
    }

    #[test]
    fn bodies_go_reads_otherwise_are_refused() {
        assert!(refused(br#"{"Image":"a","Image":"b"}"#).contains("twice"));
        assert!(refused(br#"{"Image":"a","image":"b"}"#).contains("same field"));
        assert!(refused("{\"Labels\":{},\"Label\u{17f}\":{}}".as_bytes()).contains("same field"));
        assert!(refused(br#"{"Labels":{"a":"1","a":"2"}}"#).contains("twice"));
        assert!(refused(br#"{"HostConfig":{"Binds":[],"binds":["/:/h"]}}"#).contains("same field"));
        assert!(refused(br#"{"Image":"a"} {"Image":"b"}"#).contains("after"));
        assert!(refused(br#"{"Image":"a"}}"#).contains("after"));
        refused(b"{\"Image\":\"a\xff\"}");
        refused(br#"{"Image":"\ud800"}"#);
        refused(b"\xef\xbb\xbf{}");
        refused(b"");
        refused(br#"{"Image":1e999}"#);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        refused(deep.as_bytes());
        assert!(parse(b" {} \r\n\t").is_ok());
    }

    #[test]
    fn escaped_keys_are_read_unescaped() {
        let json = parse(br#"{"\u0049mage":"x"}"#).unwrap();
        assert_eq!(
            json.as_object()
                .unwrap()
                .field("image")
                .and_then(Json::as_str),
            Some("x")
        );
        refused(br#"{"\u0049mage":"x","Image":"y"}"#);
    }
}
