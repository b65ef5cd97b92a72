//! The line format: one line per step, `KIND key=value ...`, values
//! without spaces (see the agent's `guest` module for every kind).

use crate::Case;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// Lower-case hex of `b` (the `hex=` values).
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

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
            // from_str_radix takes a sign; a value has none.
            if !p.iter().all(u8::is_ascii_hexdigit) {
                return Err(format!("not hex: {t:?}"));
            }
            u8::from_str_radix(t, 16).map_err(|_| format!("not hex: {t:?}"))
        })
        .collect()
}

/// `s` as one value: whitespace becomes `_`.
pub fn word(s: &str) -> String {
    s.replace(char::is_whitespace, "_")
}

/// How a guest ended a case (`END status=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The guest saw what it expected; the host still judges.
    Ok,
    /// The environment lacks what the case needs (`SO_ZEROCOPY`).
    Unsupported,
    /// The case could not run here.
    Skip,
    /// The guest failed.
    Fail,
}

impl Status {
    /// The word on the `END` line.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Unsupported => "unsupported",
            Status::Skip => "skip",
            Status::Fail => "fail",
        }
    }

    fn from_name(s: &str) -> Option<Status> {
        [Status::Ok, Status::Unsupported, Status::Skip, Status::Fail]
            .into_iter()
            .find(|st| st.name() == s)
    }
}

/// A line a guest writes; `Display` gives the text without the newline.
#[derive(Clone, Copy, Debug)]
pub enum Record<'a> {
    /// `GUEST target=NAME lang=rust|c pid=N`.
    Guest {
        /// The target the guest was built for.
        target: &'a str,
        /// `rust` or `c`.
        lang: &'a str,
        /// The guest's process id (1 as init).
        pid: u32,
    },
    /// `CASE name=CASE`: the lines up to the next `CASE` belong to it.
    Case(Case),
    /// `END case=CASE status=S detail=WORDS`.
    End {
        /// The case.
        case: Case,
        /// The guest's verdict.
        status: Status,
        /// Why, in words (spaces become `_`).
        detail: &'a str,
    },
    /// `DATA sock=NAME len=N hex=HEX`: a datagram received.
    Data {
        /// The receiving socket's name.
        sock: &'a str,
        /// The datagram.
        bytes: &'a [u8],
    },
    /// `NOTE KEY=VALUE`: for the log, never judged.
    Note {
        /// The key.
        key: &'a str,
        /// The value (spaces become `_`).
        value: &'a str,
    },
    /// `DONE`: the guest finished every case.
    Done,
}

impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Record::Guest { target, lang, pid } => {
                write!(f, "GUEST target={target} lang={lang} pid={pid}")
            }
            Record::Case(c) => write!(f, "CASE name={c}"),
            Record::End {
                case,
                status,
                detail,
            } => write!(
                f,
                "END case={case} status={} detail={}",
                status.name(),
                word(detail)
            ),
            Record::Data { sock, bytes } => {
                write!(f, "DATA sock={sock} len={} hex={}", bytes.len(), hex(bytes))
            }
            Record::Note { key, value } => write!(f, "NOTE {key}={}", word(value)),
            Record::Done => f.write_str("DONE"),
        }
    }
}

/// One output line: its kind, its `key=value` fields, the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The first word (`CASE`, `RAW`, ...).
    pub kind: String,
    fields: BTreeMap<String, String>,
    /// The line as printed.
    pub text: String,
}

impl Line {
    /// Splits a line; words without `=` after the kind are not fields
    /// (`MODE Inline`), they stay in [`Line::text`].
    pub fn parse(text: &str) -> Line {
        let mut words = text.split_whitespace();
        let kind = words.next().unwrap_or("").to_string();
        let fields = words
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Line {
            kind,
            fields,
            text: text.to_string(),
        }
    }

    /// The value of field `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.fields.get(k).map(String::as_str)
    }

    /// Field `k` as a decimal number.
    pub fn num(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(|v| v.parse().ok())
    }

    /// An `END` line's status (`None` for other lines or an unknown word).
    pub fn status(&self) -> Option<Status> {
        (self.kind == "END")
            .then(|| self.get("status"))
            .flatten()
            .and_then(Status::from_name)
    }
}

/// A guest's output, split by case.
#[derive(Debug, Default)]
pub struct GuestLog {
    /// `GUEST target=`.
    pub target: Option<String>,
    /// `GUEST lang=`.
    pub lang: Option<String>,
    /// Whether `DONE` was printed.
    pub done: bool,
    /// By the name on each `CASE` line (also names that are no [`Case`]).
    cases: BTreeMap<String, Vec<Line>>,
}

impl GuestLog {
    /// Parses a guest's standard output.
    pub fn parse(stdout: &str) -> GuestLog {
        let mut log = GuestLog::default();
        let mut current = None;
        for text in stdout.lines() {
            let line = Line::parse(text);
            match line.kind.as_str() {
                "GUEST" => {
                    log.target = line.get("target").map(String::from);
                    log.lang = line.get("lang").map(String::from);
                }
                "DONE" => log.done = true,
                "CASE" => {
                    let name = line.get("name").unwrap_or("").to_string();
                    log.cases.entry(name.clone()).or_default();
                    current = Some(name);
                }
                _ => {
                    if let Some(c) = &current {
                        log.cases.entry(c.clone()).or_default().push(line);
                    }
                }
            }
        }
        log
    }

    /// The lines of `case` after its `CASE` line, or `None` if it never
    /// started.
    pub fn lines(&self, case: Case) -> Option<&[Line]> {
        self.cases.get(case.name()).map(Vec::as_slice)
    }

    /// The lines of one case, as printed.
    pub fn case_text(&self, case: &str) -> Vec<&str> {
        self.cases
            .get(case)
            .map(|ls| ls.iter().map(|l| l.text.as_str()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(unhex(&hex(&[0, 1, 0xfe])).unwrap(), [0, 1, 0xfe]);
        assert_eq!(unhex("0a 0B\n").unwrap(), [10, 11]);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
        assert!(unhex("+0").is_err());
    }

    #[test]
    fn records_parse_back() {
        let bytes = [1u8, 0xab];
        let text = [
            Record::Guest {
                target: "powerpc",
                lang: "c",
                pid: 7,
            }
            .to_string(),
            Record::Case(Case::GsoZc).to_string(),
            Record::Data {
                sock: "r0",
                bytes: &bytes,
            }
            .to_string(),
            Record::Note {
                key: "loopback_up",
                value: "no such device",
            }
            .to_string(),
            "MODE ErrorQueue(Rejected)".to_string(),
            Record::End {
                case: Case::GsoZc,
                status: Status::Skip,
                detail: "no IPv6 here",
            }
            .to_string(),
            "CASE name=earlycon=pdc".to_string(),
            "END case=earlycon=pdc status=fail detail=unknown_case".to_string(),
        ]
        .join("\n");
        let log = GuestLog::parse(&text);
        assert_eq!(log.target.as_deref(), Some("powerpc"));
        assert_eq!(log.lang.as_deref(), Some("c"));
        assert!(!log.done);
        let lines = log.lines(Case::GsoZc).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].text, "DATA sock=r0 len=2 hex=01ab");
        assert_eq!(lines[0].num("len"), Some(2));
        assert_eq!(unhex(lines[0].get("hex").unwrap()).unwrap(), bytes);
        assert_eq!(lines[1].get("loopback_up"), Some("no_such_device"));
        assert_eq!(lines[2].kind, "MODE");
        assert_eq!(lines[2].get("Inline"), None);
        assert_eq!(lines[3].status(), Some(Status::Skip));
        assert_eq!(lines[3].get("detail"), Some("no_IPv6_here"));
        assert_eq!(lines[0].status(), None);
        assert!(log.lines(Case::Probe).is_none());
        // A name that is no case still groups its lines (the judge ignores them).
        assert_eq!(log.case_text("earlycon=pdc").len(), 1);
    }
}
