//! The `FACTS view=msgzc` row: msgzc-abi's numbers for one target as
//! JSON, which the Rust guest prints and the host compares with every
//! toolchain's headers. A hand-written encoder: the guest cross-compiles
//! with `-Zbuild-std` and keeps its dependencies few.

use msgzc_abi::proposal::v8;
use msgzc_abi::{
    Arch, ErrOrigin, LittleEndian, MsgFlags, SockExtendedErr, SockaddrIn, SockaddrIn6,
    TimestampingFlags, SO_EE_CODE_ZEROCOPY_COPIED,
};
use std::fmt::Write as _;
use std::mem::{offset_of, size_of};

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

/// Key → value (as JSON text) for one target, from the `abi` crate only.
pub fn table_row(arch: Arch) -> Vec<(&'static str, String)> {
    let mut row = vec![("target", jstr(arch.name()))];
    row.extend(layout_and_socket(arch));
    row.extend(errqueue_and_addresses(arch));
    row
}

fn num(v: i64) -> String {
    v.to_string()
}

/// Word size, `cmsghdr` layout, socket options and `MSG_*` flags.
fn layout_and_socket(arch: Arch) -> Vec<(&'static str, String)> {
    let t = arch.target();
    let n = t.numbers();
    let s = n.socket;
    let l = t.cmsg();
    vec![
        ("big_endian", t.is_big_endian().to_string()),
        ("long_bytes", num(t.word.bytes() as i64)),
        ("cmsghdr_size", num(l.header_size() as i64)),
        ("cmsghdr_align", num(l.align() as i64)),
        ("CMSG_LEN_0", num(l.len(0) as i64)),
        ("CMSG_SPACE_1", num(l.space(1) as i64)),
        ("CMSG_SPACE_16", num(l.space(16) as i64)),
        ("SOL_SOCKET", num(s.sol_socket.into())),
        ("SO_TYPE", num(s.so_type.into())),
        ("SO_ERROR", num(s.so_error.into())),
        ("SO_SNDBUF", num(s.so_sndbuf.into())),
        ("SO_RCVBUF", num(s.so_rcvbuf.into())),
        ("SOCK_STREAM", num(s.sock_stream.into())),
        ("SOCK_DGRAM", num(s.sock_dgram.into())),
        ("SO_ZEROCOPY", num(s.so_zerocopy.into())),
        ("SO_TIMESTAMPING_OLD", num(s.so_timestamping_old.into())),
        ("SO_TIMESTAMPING_NEW", num(s.so_timestamping_new.into())),
        (
            "SCM_ZC_NOTIFICATION",
            num(v8::scm_zc_notification(t.family).into()),
        ),
        ("MSG_ZEROCOPY", num(MsgFlags::ZEROCOPY.bits().into())),
        ("MSG_ERRQUEUE", num(MsgFlags::ERRQUEUE.bits().into())),
        ("MSG_CTRUNC", num(MsgFlags::CTRUNC.bits().into())),
        ("MSG_DONTWAIT", num(MsgFlags::DONTWAIT.bits().into())),
        ("MSG_TRUNC", num(MsgFlags::TRUNC.bits().into())),
        ("SOL_IP", num(n.sol_ip.into())),
        ("SOL_IPV6", num(n.sol_ipv6.into())),
        ("IP_RECVERR", num(n.ip_recverr.into())),
        ("IPV6_RECVERR", num(n.ipv6_recverr.into())),
        ("SOL_UDP", num(n.sol_udp.into())),
        ("UDP_SEGMENT", num(n.udp_segment.into())),
        ("UIO_MAXIOV", num(n.uio_maxiov.into())),
    ]
}

/// The error queue's origins and errnos, and the address layouts.
fn errqueue_and_addresses(arch: Arch) -> Vec<(&'static str, String)> {
    let n = arch.target().numbers();
    let e = n.errno;
    vec![
        ("SO_EE_ORIGIN_NONE", num(ErrOrigin::None.raw().into())),
        ("SO_EE_ORIGIN_LOCAL", num(ErrOrigin::Local.raw().into())),
        ("SO_EE_ORIGIN_ICMP", num(ErrOrigin::Icmp.raw().into())),
        ("SO_EE_ORIGIN_ICMP6", num(ErrOrigin::Icmp6.raw().into())),
        (
            "SO_EE_ORIGIN_TXSTATUS",
            num(ErrOrigin::Timestamping.raw().into()),
        ),
        (
            "SO_EE_ORIGIN_ZEROCOPY",
            num(ErrOrigin::Zerocopy.raw().into()),
        ),
        ("SO_EE_ORIGIN_TXTIME", num(ErrOrigin::Txtime.raw().into())),
        (
            "SO_EE_CODE_ZEROCOPY_COPIED",
            num(SO_EE_CODE_ZEROCOPY_COPIED.into()),
        ),
        ("ENOBUFS", num(e.enobufs.into())),
        ("EINVAL", num(e.einval.into())),
        ("EAGAIN", num(e.eagain.into())),
        ("ENOPROTOOPT", num(e.enoprotoopt.into())),
        (
            "sock_extended_err_size",
            num(size_of::<SockExtendedErr<LittleEndian>>() as i64),
        ),
        ("AF_UNSPEC", num(n.af_unspec.into())),
        ("AF_INET", num(n.af_inet.into())),
        ("AF_INET6", num(n.af_inet6.into())),
        (
            "sockaddr_in_size",
            num(size_of::<SockaddrIn<LittleEndian>>() as i64),
        ),
        (
            "sockaddr_in6_size",
            num(size_of::<SockaddrIn6<LittleEndian>>() as i64),
        ),
        (
            "sin6_scope_id_offset",
            num(offset_of!(SockaddrIn6<LittleEndian>, sin6_scope_id) as i64),
        ),
        (
            "SOF_TIMESTAMPING_TX_RECORD_MASK",
            num(TimestampingFlags::TX_RECORD_MASK.bits().into()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_is_escaped() {
        assert_eq!(jstr("a\"b\n"), "\"a\\\"b\\u000a\"");
        assert_eq!(
            jobj(&[("k", jstr("v")), ("n", "1".into())]),
            r#"{"k":"v","n":1}"#
        );
    }

    #[test]
    fn the_row_names_its_target() {
        let row = table_row(Arch::Mips);
        assert_eq!(row[0], ("target", jstr("mips")));
        let so = row.iter().find(|(k, _)| *k == "SOL_SOCKET").unwrap();
        assert_eq!(so.1, "65535");
    }
}
