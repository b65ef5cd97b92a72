//! Reading the hex of the guests' lines (the agent writes it with
//! `msgzc_conformance_protocol::hex`); the host reads and writes all of its
//! JSON with serde_json.

use std::fmt;

/// Why a text is not hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HexError {
    /// A character that is neither a hex digit nor ASCII whitespace (at
    /// this byte offset of the text).
    NotHex { offset: usize, found: char },
    /// The digits do not pair up into bytes.
    OddDigits(usize),
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::NotHex { offset, found } => {
                write!(f, "not a hex digit at offset {offset}: {found:?}")
            }
            HexError::OddDigits(n) => write!(f, "odd number of hex digits ({n})"),
        }
    }
}

impl std::error::Error for HexError {}

impl From<HexError> for String {
    fn from(e: HexError) -> String {
        e.to_string()
    }
}

/// Bytes from hex, ignoring ASCII whitespace. Only the digits 0-9, a-f and
/// A-F count: `from_str_radix` alone would take a sign (`+0`).
pub fn unhex(s: &str) -> Result<Vec<u8>, HexError> {
    let mut digits = Vec::with_capacity(s.len());
    for (offset, c) in s.char_indices() {
        match c.to_digit(16) {
            // A hex digit is always ASCII, below 16.
            Some(d) if c.is_ascii() => digits.push(d as u8),
            _ if c.is_ascii_whitespace() => {}
            _ => return Err(HexError::NotHex { offset, found: c }),
        }
    }
    if digits.len() % 2 != 0 {
        return Err(HexError::OddDigits(digits.len()));
    }
    Ok(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgzc_conformance_protocol::hex;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(unhex(&hex(&[0, 1, 0xfe])).unwrap(), [0, 1, 0xfe]);
        assert_eq!(unhex("0a 0B\n").unwrap(), [10, 11]);
        assert_eq!(unhex("abc"), Err(HexError::OddDigits(3)));
        assert_eq!(
            unhex("zz"),
            Err(HexError::NotHex {
                offset: 0,
                found: 'z'
            })
        );
    }

    /// `u8::from_str_radix("+0", 16)` is Ok(0): signs must not pass as hex.
    #[test]
    fn signs_and_non_ascii_digits_are_not_hex() {
        assert_eq!(
            unhex("+0+b"),
            Err(HexError::NotHex {
                offset: 0,
                found: '+'
            })
        );
        assert!(matches!(
            unhex("0-"),
            Err(HexError::NotHex { offset: 1, .. })
        ));
        assert!(matches!(
            unhex("0é"),
            Err(HexError::NotHex { found: 'é', .. })
        ));
    }
}
