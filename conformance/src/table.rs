//! `abi-table`, `abi-check` and `decode`: the `abi` tables as JSON, their
//! comparison with facts printed by C programs built against each cross
//! toolchain's headers, and a decoder for captured buffers.

use crate::report::{jobj, jstr, unhex};
use msgzc_abi::{Arch, ErrOrigin, MsgFlags, Target};
use msgzc_cmsg::{decode_errqueue, ErrqueueItem, ExtendedErr, Offender, Walker};
use std::collections::BTreeMap;
use std::io::Read;
use std::process::ExitCode;

/// Key → value (as JSON text) for one target, from the `abi` crate only
/// (the protocol crate's: the Rust guest prints the same row).
pub use msgzc_conformance_protocol::table_row;

pub fn abi_table(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a != "--json") {
        eprintln!("abi-table: only --json is accepted (the output is always JSON lines)");
        return ExitCode::from(2);
    }
    for arch in Arch::ALL {
        println!("{}", jobj(&table_row(arch)));
    }
    ExitCode::SUCCESS
}

/// Parses one flat JSON object of strings, numbers, booleans and nulls.
pub fn parse_flat(line: &str) -> Result<BTreeMap<String, String>, String> {
    let body = line
        .trim()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or("not an object")?;
    let mut out = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let r = rest.strip_prefix('"').ok_or("key must be a string")?;
        let end = r.find('"').ok_or("unterminated key")?;
        let key = r[..end].to_string();
        let r = r[end + 1..]
            .trim_start()
            .strip_prefix(':')
            .ok_or("missing ':'")?
            .trim_start();
        let (val, r) = if let Some(s) = r.strip_prefix('"') {
            let end = s.find('"').ok_or("unterminated string")?;
            (format!("\"{}\"", &s[..end]), &s[end + 1..])
        } else {
            let end = r.find(',').unwrap_or(r.len());
            (r[..end].trim().to_string(), &r[end..])
        };
        out.insert(key, val);
        rest = r.trim_start().strip_prefix(',').unwrap_or(r).trim_start();
    }
    Ok(out)
}

/// `abi-check FILE`: compares header facts (JSON lines from
/// `guest-c/abi_facts.c`) with the tables, key by key.
pub fn abi_check(args: &[String]) -> ExitCode {
    let Some(path) = args.first() else {
        eprintln!("usage: msgzc-conformance abi-check FACTS.jsonl");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut targets, mut compared, mut diffs) = (0, 0, 0);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let facts = match parse_flat(line) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{path}:{}: {e}", i + 1);
                return ExitCode::FAILURE;
            }
        };
        let name = facts
            .get("target")
            .map(|s| s.trim_matches('"').to_string())
            .unwrap_or_default();
        let Some(arch) = Arch::from_name(&name) else {
            eprintln!("{path}:{}: unknown target {name:?}", i + 1);
            return ExitCode::FAILURE;
        };
        targets += 1;
        for (key, ours) in table_row(arch) {
            match facts.get(key) {
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

/// One decoded message as a JSON line.
pub fn message_json(t: Target, m: &msgzc_cmsg::Cmsg<'_>) -> String {
    let mut f = vec![
        ("offset", m.offset.to_string()),
        ("level", m.level.to_string()),
        ("type", m.ty.to_string()),
        ("len", (t.cmsg().header_size() + m.data.len()).to_string()),
    ];
    match decode_errqueue(t, m) {
        Ok(ErrqueueItem::Zerocopy(r)) => {
            f.push(("kind", jstr("zerocopy")));
            f.push(("errno", "0".into()));
            f.push(("origin", ErrOrigin::Zerocopy.raw().to_string()));
            f.push(("lo", r.lo.to_string()));
            f.push(("hi", r.hi.to_string()));
            f.push(("copied", r.copied.to_string()));
        }
        Ok(ErrqueueItem::Extended(e)) => {
            f.push(("kind", jstr("extended")));
            f.push(("errno", e.errno.to_string()));
            f.push(("origin", e.origin_raw.to_string()));
            f.push(("ee_type", e.ty.to_string()));
            f.push(("code", e.code.to_string()));
            f.push(("info", e.info.to_string()));
            f.push(("data", e.data.to_string()));
            f.push(offender_json(t, &e));
        }
        Ok(ErrqueueItem::Timestamps(ts)) => {
            f.push(("kind", jstr("timestamps")));
            f.push(("new", ts.new.to_string()));
        }
        Ok(ErrqueueItem::Other(_)) => f.push(("kind", jstr("other"))),
        // An item a newer msgzc-cmsg decodes that this tool does not know.
        Ok(item) => {
            f.push(("kind", jstr("unknown")));
            f.push(("item", jstr(&format!("{item:?}"))));
        }
        Err(e) => f.push(("decode_error", jstr(&e.to_string()))),
    }
    jobj(&f)
}

/// `"offender"`: the `SO_EE_OFFENDER` address as `ip:port` (`[ip%scope]:port`
/// for IPv6), `"family N"` for another family, `null` when there is none
/// (`AF_UNSPEC`, or no bytes after the struct); `"offender_error"` when it
/// is cut short.
fn offender_json(t: Target, e: &ExtendedErr<'_>) -> (&'static str, String) {
    match e.offender_addr(t) {
        Ok(None | Some(Offender::Unspecified)) => ("offender", "null".into()),
        Ok(Some(o)) => ("offender", jstr(&o.to_string())),
        Err(err) => ("offender_error", jstr(&err.to_string())),
    }
}

pub fn decode(args: &[String]) -> ExitCode {
    let mut target = None;
    let mut flags = 0u32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--target", Some(v)) => {
                target = Target::by_name(v).or_else(|| {
                    eprintln!("unknown target {v:?}");
                    None
                })
            }
            ("--flags", Some(v)) => match parse_int(v) {
                Some(x) => flags = x,
                None => {
                    eprintln!("--flags: not a number: {v:?}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("usage: msgzc-conformance decode --target NAME [--flags N] < hex");
                return ExitCode::from(2);
            }
        }
    }
    let Some(t) = target else {
        eprintln!("decode: --target NAME is required");
        return ExitCode::from(2);
    };
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("stdin: {e}");
        return ExitCode::FAILURE;
    }
    let buf = match unhex(&input) {
        Ok(b) => b,
        Err(e) => {
            println!("{}", jobj(&[("error", jstr("hex")), ("detail", jstr(&e))]));
            return ExitCode::FAILURE;
        }
    };
    for m in Walker::new(t, &buf, buf.len(), MsgFlags::from_bits_retain(flags)) {
        match m {
            Ok(m) => println!("{}", message_json(t, &m)),
            Err(e) => {
                println!(
                    "{}",
                    jobj(&[
                        ("error", jstr(&format!("{:?}", e.kind))),
                        ("offset", e.offset.to_string()),
                        ("detail", jstr(&e.to_string())),
                    ])
                );
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn parse_int(v: &str) -> Option<u32> {
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_json_parses_what_abi_table_prints() {
        for arch in Arch::ALL {
            let row = table_row(arch);
            let parsed = parse_flat(&jobj(&row)).unwrap();
            assert_eq!(parsed.len(), row.len());
            for (k, v) in row {
                assert_eq!(parsed[k], v);
            }
        }
        assert!(parse_flat("[1]").is_err());
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
            let json = parse_flat(&message_json(t, &msgs[0])).unwrap();
            assert_eq!(json["kind"], "\"extended\"", "{line}");
            assert_eq!(json["offender"], "\"127.0.0.1:0\"", "{line}");
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
            let json = parse_flat(&message_json(t, &m)).unwrap();
            assert_eq!(json["offender"], "\"[fe80::1%2]:9\"", "{arch}");
            let mut zeroed = data.clone();
            zeroed[16..].fill(0);
            let m = msgzc_cmsg::Cmsg { data: &zeroed, ..m };
            let json = parse_flat(&message_json(t, &m)).unwrap();
            assert_eq!(json["offender"], "null", "{arch}");
            let m = msgzc_cmsg::Cmsg {
                data: &data[..20],
                ..m
            };
            let json = parse_flat(&message_json(t, &m)).unwrap();
            assert!(json.contains_key("offender_error"), "{json:?}");
        }
    }
}
