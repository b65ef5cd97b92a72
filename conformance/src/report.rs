//! Minimal JSON and hex helpers (no serde: the guest must cross-compile
//! with -Zbuild-std, so dependencies stay few).

use std::fmt::Write;

/// Bytes from hex, ignoring ASCII whitespace.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks(2)
        .map(|p| {
            let t = std::str::from_utf8(p).map_err(|e| e.to_string())?;
            u8::from_str_radix(t, 16).map_err(|_| format!("not hex: {t:?}"))
        })
        .collect()
}

/// A JSON string literal.
pub fn jstr(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A JSON object from already-encoded values.
pub fn jobj(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", jstr(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A JSON array from already-encoded values.
pub fn jarr(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgzc_conformance_protocol::hex;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(unhex(&hex(&[0, 1, 0xfe])).unwrap(), [0, 1, 0xfe]);
        assert_eq!(unhex("0a 0B\n").unwrap(), [10, 11]);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
        assert_eq!(jstr("a\"b\n"), "\"a\\\"b\\u000a\"");
    }
}
