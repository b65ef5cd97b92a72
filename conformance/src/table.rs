//! `abi-table`, `abi-check` and `decode`: the `abi` tables as JSON, their
//! comparison with facts printed by C programs built against each cross
//! toolchain's headers, and a decoder for captured buffers.

use crate::report::unhex;
use msgzc_abi::{Arch, ErrOrigin, MsgFlags, Target};
use msgzc_cmsg::{decode_errqueue, ErrqueueItem, ExtendedErr, Offender, Walker};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Key → value (as JSON text) for one target, from the `abi` crate only
/// (the protocol crate's: the Rust guest prints the same row).
pub use msgzc_conformance_protocol::table_row;

/// `abi-table`: msgzc-abi's numbers, one JSON line per target.
#[derive(Debug, clap::Args)]
pub struct AbiTableArgs {
    /// Accepted for clarity: the output is always JSON lines.
    #[arg(long)]
    json: bool,
}

/// The value parser of every `--target`: one of [`Arch::ALL`]'s names.
pub fn parse_arch(name: &str) -> Result<Arch, String> {
    Arch::from_name(name).ok_or_else(|| {
        format!(
            "unknown target {name:?} (targets: {})",
            Arch::ALL.map(Arch::name).join(" ")
        )
    })
}

/// One `table_row` as an ordered JSON object. Its values are JSON text
/// this module wrote, so they always parse.
pub fn table_json(arch: Arch) -> Map<String, Value> {
    table_row(arch)
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::from_str(&v).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// Writes one JSON line to `out`. `Err` only for a write error other
/// than a closed pipe; `Ok(false)`: the reader has gone (`| head`), stop
/// quietly, as `cat` does.
pub fn emit(out: &mut impl Write, v: &impl serde::Serialize) -> std::io::Result<bool> {
    let line = serde_json::to_string(v).map_err(std::io::Error::other)?;
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn abi_table(_args: AbiTableArgs) -> ExitCode {
    let mut out = std::io::stdout().lock();
    for arch in Arch::ALL {
        match emit(&mut out, &table_json(arch)) {
            Ok(true) => {}
            Ok(false) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("abi-table: stdout: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Parses one flat JSON object (strings, numbers, booleans, nulls) into
/// key → the value's JSON text (strings keep their quotes).
pub fn parse_flat(line: &str) -> Result<BTreeMap<String, String>, String> {
    let obj: Map<String, Value> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    obj.into_iter()
        .map(|(k, v)| match v {
            Value::Array(_) | Value::Object(_) => Err(format!("{k:?}: not a flat value")),
            v => Ok((k, v.to_string())),
        })
        .collect()
}

/// `abi-check`: header facts against the tables.
#[derive(Debug, clap::Args)]
pub struct AbiCheckArgs {
    /// JSON lines printed by `guest-c/abi_facts.c` (one object per target;
    /// at most 1 MiB, lines at most 16 KiB).
    facts: PathBuf,
}

/// The facts file's size limit: one line per target is about 1.5 KiB.
const FACTS_MAX_BYTES: u64 = 1 << 20;
/// One line's limit.
const FACTS_MAX_LINE: usize = 16 << 10;

/// Why a facts file cannot be compared.
#[derive(Debug)]
pub enum FactsError {
    /// It cannot be opened or read.
    Read(std::io::Error),
    /// It is longer than [`FACTS_MAX_BYTES`] (`/dev/zero`, a wrong file).
    TooLarge,
    /// Line `.0` (from 1) is longer than [`FACTS_MAX_LINE`].
    LineTooLong(usize),
    /// Line `.0` is not UTF-8.
    NotUtf8(usize),
    /// Line `.0` is not a flat JSON object.
    Json(usize, String),
    /// Line `.0` names no known target (`.1`).
    UnknownTarget(usize, String),
}

impl std::fmt::Display for FactsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FactsError::Read(e) => write!(f, "{e}"),
            FactsError::TooLarge => write!(f, "longer than {FACTS_MAX_BYTES} bytes"),
            FactsError::LineTooLong(n) => {
                write!(f, "{n}: line longer than {FACTS_MAX_LINE} bytes")
            }
            FactsError::NotUtf8(n) => write!(f, "{n}: not UTF-8"),
            FactsError::Json(n, e) => write!(f, "{n}: {e}"),
            FactsError::UnknownTarget(n, t) => write!(f, "{n}: unknown target {t}"),
        }
    }
}

/// One target's facts: key → value, as printed.
pub type Facts = Map<String, Value>;

/// Reads a facts file: at most [`FACTS_MAX_BYTES`], one flat object per
/// non-blank line, each naming its target.
pub fn read_facts(path: &Path) -> Result<Vec<(Arch, Facts)>, FactsError> {
    let file = std::fs::File::open(path).map_err(FactsError::Read)?;
    let mut bytes = Vec::new();
    file.take(FACTS_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(FactsError::Read)?;
    if bytes.len() as u64 > FACTS_MAX_BYTES {
        return Err(FactsError::TooLarge);
    }
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        if line.len() > FACTS_MAX_LINE {
            return Err(FactsError::LineTooLong(n));
        }
        let line = std::str::from_utf8(line).map_err(|_| FactsError::NotUtf8(n))?;
        if line.trim().is_empty() {
            continue;
        }
        let obj: Map<String, Value> =
            serde_json::from_str(line).map_err(|e| FactsError::Json(n, e.to_string()))?;
        let arch = match obj.get("target") {
            Some(Value::String(t)) => Arch::from_name(t),
            _ => None,
        };
        let name = obj.get("target").map_or("(none)".into(), Value::to_string);
        let arch = arch.ok_or(FactsError::UnknownTarget(n, name))?;
        out.push((arch, obj));
    }
    Ok(out)
}

/// `abi-check FILE`: compares header facts (JSON lines from
/// `guest-c/abi_facts.c`) with the tables, key by key.
pub fn abi_check(args: AbiCheckArgs) -> ExitCode {
    let path = args.facts.display();
    let facts = match read_facts(&args.facts) {
        Ok(f) => f,
        // `path: why`, or `path:line: why` as compilers write it.
        Err(e @ (FactsError::Read(_) | FactsError::TooLarge)) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{path}:{e}");
            return ExitCode::FAILURE;
        }
    };
    let (targets, mut compared, mut diffs) = (facts.len(), 0, 0);
    for (arch, facts) in &facts {
        let name = arch.name();
        for (key, ours) in table_json(*arch) {
            match facts.get(&key) {
                Some(theirs) if *theirs == ours => compared += 1,
                Some(theirs) => {
                    diffs += 1;
                    println!("MISMATCH {name} {key}: headers {theirs}, msgzc-abi {ours}");
                }
                None if key == "SCM_ZC_NOTIFICATION" => {} // never in headers: unmerged
                None => {
                    diffs += 1;
                    println!("MISSING {name} {key}: not printed by the header program");
                }
            }
        }
    }
    println!("abi-check: {targets} targets, {compared} values agree, {diffs} differ");
    if diffs == 0 && targets == Arch::ALL.len() {
        ExitCode::SUCCESS
    } else {
        if targets != Arch::ALL.len() {
            println!("abi-check: expected {} targets", Arch::ALL.len());
        }
        ExitCode::FAILURE
    }
}

/// One decoded message as a JSON object; `"decode_error"` or
/// `"offender_error"` when its bytes are malformed.
pub fn message_json(t: Target, m: &msgzc_cmsg::Cmsg<'_>) -> Map<String, Value> {
    let mut f = Map::new();
    let mut put = |k: &str, v: Value| {
        f.insert(k.to_string(), v);
    };
    put("offset", m.offset.into());
    put("level", m.level.into());
    put("type", m.ty.into());
    put("len", (t.cmsg().header_size() + m.data.len()).into());
    match decode_errqueue(t, m) {
        Ok(ErrqueueItem::Zerocopy(r)) => {
            put("kind", "zerocopy".into());
            put("errno", 0.into());
            put("origin", ErrOrigin::Zerocopy.raw().into());
            put("lo", r.lo.into());
            put("hi", r.hi.into());
            put("copied", r.copied.into());
        }
        Ok(ErrqueueItem::Extended(e)) => {
            put("kind", "extended".into());
            put("errno", e.errno.into());
            put("origin", e.origin_raw.into());
            put("ee_type", e.ty.into());
            put("code", e.code.into());
            put("info", e.info.into());
            put("data", e.data.into());
            let (k, v) = offender_json(t, &e);
            put(k, v);
        }
        Ok(ErrqueueItem::Timestamps(ts)) => {
            put("kind", "timestamps".into());
            put("new", ts.new.into());
        }
        Ok(ErrqueueItem::Other(_)) => put("kind", "other".into()),
        // An item a newer msgzc-cmsg decodes that this tool does not know.
        Ok(item) => {
            put("kind", "unknown".into());
            put("item", format!("{item:?}").into());
        }
        Err(e) => put("decode_error", e.to_string().into()),
    }
    f
}

/// `"offender"`: the `SO_EE_OFFENDER` address as `ip:port` (`[ip%scope]:port`
/// for IPv6), `"family N"` for another family, `null` when there is none
/// (`AF_UNSPEC`, or no bytes after the struct); `"offender_error"` when it
/// is cut short.
fn offender_json(t: Target, e: &ExtendedErr<'_>) -> (&'static str, Value) {
    match e.offender_addr(t) {
        Ok(None | Some(Offender::Unspecified)) => ("offender", Value::Null),
        Ok(Some(o)) => ("offender", o.to_string().into()),
        Err(err) => ("offender_error", err.to_string().into()),
    }
}

/// `decode`: one captured control buffer, as hex on stdin.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// The layout to decode with.
    #[arg(long, value_name = "NAME", value_parser = parse_arch)]
    target: Arch,
    /// `msg_flags` of the capture (decimal or 0x hex; MSG_CTRUNC matters).
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_int)]
    flags: u32,
}

/// The error line for input that is not a buffer (`kind`: `utf8`, `hex`,
/// `empty`, `read`).
fn input_error(kind: &str, detail: String) -> Value {
    serde_json::json!({ "error": kind, "detail": detail })
}

/// The buffer on stdin, or the JSON line saying why there is none.
fn read_buffer() -> Result<Vec<u8>, Value> {
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut raw) {
        return Err(input_error("read", format!("stdin: {e}")));
    }
    let text = std::str::from_utf8(&raw).map_err(|e| input_error("utf8", e.to_string()))?;
    let buf = unhex(text).map_err(|e| input_error("hex", e.to_string()))?;
    if buf.is_empty() {
        let what = format!(
            "{} bytes read, no hex digits: no buffer to decode",
            raw.len()
        );
        return Err(input_error("empty", what));
    }
    Ok(buf)
}

/// Decodes the buffer on stdin: one JSON line per message. Exit status 1
/// when the input is not a buffer (empty input included) or any message
/// is malformed; 0 when stdout closes early.
pub fn decode(args: DecodeArgs) -> ExitCode {
    let t = args.target.target();
    let mut out = std::io::stdout().lock();
    let (lines, failed) = match read_buffer() {
        Ok(buf) => decode_lines(t, &buf, args.flags),
        Err(line) => (vec![line], true),
    };
    for line in &lines {
        match emit(&mut out, line) {
            Ok(true) => {}
            Ok(false) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("decode: stdout: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The lines `decode` prints for `buf`, and whether any says it is
/// malformed.
fn decode_lines(t: Target, buf: &[u8], flags: u32) -> (Vec<Value>, bool) {
    let (mut lines, mut bad) = (Vec::new(), false);
    for m in Walker::new(t, buf, buf.len(), MsgFlags::from_bits_retain(flags)) {
        match m {
            // A malformed payload does not stop the walk: later headers
            // are still printed, and the status says 1.
            Ok(m) => {
                let msg = message_json(t, &m);
                bad |= msg.contains_key("decode_error") || msg.contains_key("offender_error");
                lines.push(Value::Object(msg));
            }
            Err(e) => {
                lines.push(serde_json::json!({
                    "error": format!("{:?}", e.kind),
                    "offset": e.offset,
                    "detail": e.to_string(),
                }));
                return (lines, true);
            }
        }
    }
    (lines, bad)
}

fn parse_int(v: &str) -> Result<u32, String> {
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => v.parse(),
    }
    .map_err(|e| format!("{e} (decimal, or hex after 0x)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_json_parses_what_abi_table_prints() {
        for arch in Arch::ALL {
            let row = table_row(arch);
            let printed = serde_json::to_string(&table_json(arch)).unwrap();
            let parsed = parse_flat(&printed).unwrap();
            assert_eq!(parsed.len(), row.len());
            for (k, v) in row {
                assert_eq!(parsed[k], v);
            }
        }
        assert!(parse_flat("[1]").is_err());
        assert!(parse_flat(r#"{"a":[1]}"#).is_err());
    }

    /// The hand-written parser took `{"a":1 "b":2}` and stopped an
    /// escaped quote's string early.
    #[test]
    fn flat_json_rejects_a_missing_comma_and_reads_escaped_quotes() {
        let e = parse_flat(r#"{"target":"x86_64" "SO_TYPE":3}"#).unwrap_err();
        assert!(e.contains("expected `,` or `}`"), "{e}");
        let m = parse_flat(r#"{"target":"x86\"64","SO_TYPE":3}"#).unwrap();
        assert_eq!(m["target"], r#""x86\"64""#);
        assert_eq!(m["SO_TYPE"], "3");
    }

    fn facts_file(name: &str, text: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("msgzc-facts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn facts_files_are_bounded_and_typed() {
        let big = facts_file("big", &vec![b' '; FACTS_MAX_BYTES as usize + 1]);
        assert!(matches!(read_facts(&big), Err(FactsError::TooLarge)));
        let long = facts_file("long", &vec![b' '; FACTS_MAX_LINE + 1]);
        assert!(matches!(read_facts(&long), Err(FactsError::LineTooLong(1))));
        let comma = facts_file("comma", b"\n{\"target\":\"x86_64\" \"SO_TYPE\":1}\n");
        assert!(matches!(read_facts(&comma), Err(FactsError::Json(2, _))));
        let quote = facts_file("quote", b"{\"target\":\"x86\\\"64\"}\n");
        match read_facts(&quote) {
            Err(FactsError::UnknownTarget(1, t)) => assert_eq!(t, r#""x86\"64""#),
            other => panic!("{other:?}"),
        }
        let bytes = facts_file("bytes", b"{\"target\":\"\xff\"}");
        assert!(matches!(read_facts(&bytes), Err(FactsError::NotUtf8(1))));
        let good = facts_file("good", b"{\"target\":\"mips\",\"SO_TYPE\":4104}\n\n");
        let f = read_facts(&good).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].0, &f[0].1["SO_TYPE"]),
            (Arch::Mips, &Value::from(4104))
        );
    }

    /// A malformed message is printed and makes the status 1.
    #[test]
    fn decode_errors_are_failures() {
        let t = Arch::X86_64.target();
        // One 16-byte header: IP_RECVERR with a 4-byte payload (too short
        // for sock_extended_err).
        let mut buf = Vec::new();
        buf.extend(20u64.to_le_bytes());
        buf.extend(0i32.to_le_bytes());
        buf.extend(11i32.to_le_bytes());
        buf.extend([0; 4]);
        let (lines, bad) = decode_lines(t, &buf, 0);
        assert!(bad, "{lines:?}");
        assert!(lines[0].get("decode_error").is_some(), "{lines:?}");
    }

    /// Every ICMP error real kernels returned
    /// (`conformance/facts/kernel-buffers.txt`) names its sender,
    /// 127.0.0.1, in `decode`'s output, on its own target's layout.
    #[test]
    fn decode_prints_the_offender_of_real_icmp_errors() {
        let text = include_str!("../facts/kernel-buffers.txt");
        let mut seen = std::collections::BTreeSet::new();
        for line in text.lines().filter(|l| l.contains("items=ext:")) {
            let target = line.split(' ').next().unwrap();
            let arch = Arch::from_name(target).unwrap();
            let hex = line
                .split(' ')
                .find_map(|w| w.strip_prefix("hex="))
                .unwrap();
            let buf = unhex(hex).unwrap();
            let t = arch.target();
            let msgs: Vec<_> = Walker::new(t, &buf, buf.len(), MsgFlags::empty())
                .collect::<Result<_, _>>()
                .unwrap();
            let json = message_json(t, &msgs[0]);
            assert_eq!(json["kind"], "extended", "{line}");
            assert_eq!(json["offender"], "127.0.0.1:0", "{line}");
            seen.insert((t.endian, t.word));
        }
        // Both byte orders and both word sizes.
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    /// A forged IPv6 error and a zeroed offender, on a 32-bit big-endian
    /// and a 64-bit little-endian target.
    #[test]
    fn decode_prints_ipv6_and_missing_offenders() {
        for arch in [Arch::Mips, Arch::Riscv64] {
            let t = arch.target();
            // The family and the scope id are in the target's byte order.
            let big = t.is_big_endian();
            let u16t = |v: u16| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let u32t = |v: u32| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let mut data = vec![0, 0, 0, 0, 3, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            data.extend(u16t(10));
            data.extend(9u16.to_be_bytes());
            data.extend([0; 4]);
            data.extend([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            data.extend(u32t(2));
            let m = msgzc_cmsg::Cmsg {
                level: 41,
                ty: 25,
                data: &data,
                offset: 0,
            };
            let json = message_json(t, &m);
            assert_eq!(json["offender"], "[fe80::1%2]:9", "{arch}");
            let mut zeroed = data.clone();
            zeroed[16..].fill(0);
            let m = msgzc_cmsg::Cmsg { data: &zeroed, ..m };
            let json = message_json(t, &m);
            assert_eq!(json["offender"], Value::Null, "{arch}");
            let m = msgzc_cmsg::Cmsg {
                data: &data[..20],
                ..m
            };
            let json = message_json(t, &m);
            assert!(json.contains_key("offender_error"), "{json:?}");
        }
    }
}
