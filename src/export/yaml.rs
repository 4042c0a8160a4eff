//! Block-style YAML for a JSON value, written by hand on purpose. Every key and string is
//! written as a JSON string, which is a YAML double-quoted scalar: neither compose 1's PyYAML
//! (YAML 1.1, where `no` is false and `1:20` is 80) nor compose 2's go-yaml (YAML 1.2) can
//! read it as anything else. The YAML serializers at hand choose plain style for strings they
//! judge safe, by one resolver's rules, so whether `on` or `0o10` survives would depend on
//! which compose reads the file; the round-trip tests pin the exact text this writes.

use serde_json::Value;

/// Append `value` to `out`, indented by `indent` spaces.
pub fn write(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = Value::String(key.clone());
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        *out += &format!("{pad}{key}:\n");
                        write(v, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        *out += &format!("{pad}{key}:\n");
                        write(v, indent + 2, out);
                    }
                    _ => *out += &format!("{pad}{key}: {v}\n"),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut nested = String::new();
                        write(item, indent + 2, &mut nested);
                        // The first key goes on the dash's line.
                        *out += &format!("{pad}- {}", &nested[indent + 2..]);
                    }
                    _ => *out += &format!("{pad}- {item}\n"),
                }
            }
        }
        scalar => *out += &format!("{pad}{scalar}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn words_yaml_would_reinterpret_stay_strings() {
        let mut out = String::new();
        write(
            &json!({"a": ["no", "1:20", {"b": 1, "c": "on"}], "d": {}}),
            0,
            &mut out,
        );
        assert_eq!(
            out,
            "\"a\":\n  - \"no\"\n  - \"1:20\"\n  - \"b\": 1\n    \"c\": \"on\"\n\"d\": {}\n"
        );
    }
}
