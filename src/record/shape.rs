//! What a state file must be before it is read as a state, and what it is when it is not:
//! UTF-8 text (not UTF-16, no byte order mark), one JSON object (not empty, not `[]`), and
//! each name once. Each refusal names what the file is instead, and where, so that the person
//! who edited it by hand can fix it: serde's own words ("expected value at line 1 column 1",
//! "invalid length 0") name no cause.

use anyhow::{bail, Result};

use crate::record::state::{State, VERSION};

/// The file's bytes as UTF-8 text, which JSON is (RFC 8259), or what it is instead: an editor
/// that saved it in another encoding, or with a byte order mark.
pub fn text_of(bytes: &[u8]) -> Result<&str> {
    const MARKS: [(&[u8], &str); 5] = [
        (&[0xEF, 0xBB, 0xBF], "a UTF-8 byte order mark (EF BB BF)"),
        (
            &[0x00, 0x00, 0xFE, 0xFF],
            "UTF-32 (a byte order mark 00 00 FE FF)",
        ),
        (
            &[0xFF, 0xFE, 0x00, 0x00],
            "UTF-32 (a byte order mark FF FE 00 00)",
        ),
        (&[0xFE, 0xFF], "UTF-16 (a byte order mark FE FF)"),
        (&[0xFF, 0xFE], "UTF-16 (a byte order mark FF FE)"),
    ];
    if let Some((_, what)) = MARKS.iter().find(|(mark, _)| bytes.starts_with(mark)) {
        bail!(
            "line 1 column 1: the file starts with {what}, which a JSON file may not have; save it as UTF-8 \
             without a byte order mark (an editor's \"UTF-8\", not \"UTF-8 with BOM\")"
        );
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_and_column(&bytes[..e.valid_up_to()]);
        anyhow::anyhow!(
            "line {line} column {column}: the file is not UTF-8 text (byte {:#04X} at offset \
             {}); save it as UTF-8",
            bytes[e.valid_up_to()],
            e.valid_up_to()
        )
    })
}

/// Where the end of `before` is, as (line, column) from 1.
fn line_and_column(before: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(before);
    let line = text.matches('\n').count() + 1;
    let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Refuse, before serde's words for it, a file that is no JSON object at all: empty (a file
/// truncated by hand, `> state.json`), a byte order mark, or `[]` and other values where the
/// whole file is one object.
pub fn one_object(text: &str) -> Result<()> {
    if text.starts_with('\u{feff}') {
        text_of(text.as_bytes())?;
    }
    let first = text.trim_start().chars().next();
    let what = match first {
        None if text.is_empty() => "the file is empty",
        None => "the file holds only white space",
        Some('{') => return Ok(()),
        Some('[') => "the whole file is a JSON array",
        Some('"') => "the whole file is a JSON string",
        Some('t' | 'f' | 'n' | '-' | '0'..='9') => "the whole file is a single JSON value",
        Some(_) => return Ok(()),
    };
    let (line, column) = line_and_column(&text.as_bytes()[..text.len() - text.trim_start().len()]);
    let at = match first {
        None => String::new(),
        Some(_) => format!("line {line} column {column}: "),
    };
    bail!(
        "{at}{what}, where a state file is one JSON object ({{\"version\": {VERSION}, \
         \"taken_at\": ..., \"engine\": ..., \"containers\": [...]}}); `guestlist snapshot` \
         writes one"
    )
}

/// Refuse a name listed twice, with the lines of its entries. A name written as inspect shows
/// it (`/web`) is the same name as `web`.
pub fn unique_names(text: &str, state: &State) -> Result<()> {
    let mut seen: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (at, entry) in state.containers.iter().enumerate() {
        seen.entry(entry.name.as_str()).or_default().push(at);
    }
    let Some((name, entries)) = seen.into_iter().find(|(_, at)| at.len() > 1) else {
        return Ok(());
    };
    let lines: Vec<String> = entries
        .iter()
        .map(|&at| match crate::record::schema::locate_name(text, at) {
            Some((line, _)) => format!("line {line}"),
            None => format!("entry {}", at + 1),
        })
        .collect();
    let times = match entries.len() {
        2 => "twice".to_string(),
        n => format!("{n} times"),
    };
    let (last, rest) = lines.split_last().unwrap_or((&lines[0], &[]));
    bail!(
        "container {name} is listed {times} ({} and {last}); edit the file to keep one entry",
        rest.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Ok(v) => format!("accepted: {v:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn what_the_file_is_instead_of_one_object_is_named_with_its_place() {
        assert!(one_object(" \n {\"version\": 1}").is_ok());
        assert!(refusal(one_object("")).contains("the file is empty"));
        assert!(refusal(one_object(" \n")).contains("only white space"));
        assert!(refusal(one_object("\n  []"))
            .starts_with("line 2 column 3: the whole file is a JSON array"));
        assert!(refusal(one_object("42")).contains("a single JSON value"));
        assert!(refusal(one_object("\u{feff}{}")).contains("UTF-8 byte order mark"));
    }

    #[test]
    fn text_in_another_encoding_is_named_and_placed() {
        assert_eq!(text_of(b"{}").ok(), Some("{}"));
        assert!(refusal(text_of(&[0xFE, 0xFF, 0, b'{'])).contains("UTF-16"));
        assert!(refusal(text_of(&[0, 0, 0xFE, 0xFF])).contains("UTF-32"));
        let latin1 = refusal(text_of(b"{\n  \"a\": \"caf\xe9\"}"));
        assert!(
            latin1.starts_with("line 2 column 12: the file is not UTF-8"),
            "{latin1}"
        );
    }
}
