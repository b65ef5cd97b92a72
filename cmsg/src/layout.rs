//! Reading and writing the `abi` crate's layouts in a target's byte order.
//!
//! Every field offset and width comes from the zerocopy-derived types in
//! `msgzc-abi`; this module only picks the byte-order parameter at run time,
//! so the target's byte order is applied in exactly one place.
//!
//! Readers view the bytes in place (`ref_from_prefix`, `transmute_ref!`)
//! rather than copying a struct out: each field then compiles to its own
//! load, as the C idiom does, instead of a wide copy taken apart with
//! shifts.

use msgzc_abi::proposal::v8::{ZcInfo, ZcInfoElem};
use msgzc_abi::{BigEndian, FromBytes, IntoBytes, LittleEndian};
use msgzc_abi::{
    CmsgHdr32, CmsgHdr64, CmsgLayout, Endian, SockExtendedErr, SockaddrIn, SockaddrIn6, Target,
    Timespec32, Timespec64,
};
use zerocopy::byteorder::{U16, U32};

/// Runs `$body` with `$O` bound to the zerocopy byte-order type of `$e`.
macro_rules! by_order {
    ($e:expr, $O:ident => $body:expr) => {
        match $e {
            Endian::Big => {
                type $O = BigEndian;
                $body
            }
            Endian::Little => {
                type $O = LittleEndian;
                $body
            }
        }
    };
}

/// A decoded `struct cmsghdr`, with `cmsg_len` widened to `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: u64,
    pub(crate) level: i32,
    pub(crate) ty: i32,
}

/// Reads the header at the start of `b`; `None` if `b` is shorter than one.
#[inline]
pub(crate) fn read_header(t: Target, b: &[u8]) -> Option<Header> {
    by_order!(t.endian, O => match t.cmsg() {
        CmsgLayout::Bits64 => CmsgHdr64::<O>::ref_from_prefix(b).ok().map(|(h, _)| Header {
            len: h.cmsg_len.get(),
            level: h.cmsg_level.get(),
            ty: h.cmsg_type.get(),
        }),
        CmsgLayout::Bits32 => CmsgHdr32::<O>::ref_from_prefix(b).ok().map(|(h, _)| Header {
            len: u64::from(h.cmsg_len.get()),
            level: h.cmsg_level.get(),
            ty: h.cmsg_type.get(),
        }),
    })
}

/// Writes a header to the start of `out`, which the caller has sized to at
/// least `t.cmsg().header_size()` bytes and `len` to fit the layout's field.
#[inline]
pub(crate) fn write_header(t: Target, out: &mut [u8], h: Header) -> bool {
    by_order!(t.endian, O => match t.cmsg() {
        CmsgLayout::Bits64 => CmsgHdr64::<O> {
            cmsg_len: h.len.into(),
            cmsg_level: h.level.into(),
            cmsg_type: h.ty.into(),
        }
        .write_to_prefix(out)
        .is_ok(),
        CmsgLayout::Bits32 => match u32::try_from(h.len) {
            Ok(len) => CmsgHdr32::<O> {
                cmsg_len: len.into(),
                cmsg_level: h.level.into(),
                cmsg_type: h.ty.into(),
            }
            .write_to_prefix(out)
            .is_ok(),
            Err(_) => false,
        },
    })
}

/// A decoded `struct sock_extended_err`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ee {
    pub(crate) errno: u32,
    pub(crate) origin: u8,
    pub(crate) ty: u8,
    pub(crate) code: u8,
    pub(crate) info: u32,
    pub(crate) data: u32,
}

pub(crate) const EE_SIZE: usize = core::mem::size_of::<SockExtendedErr<LittleEndian>>();

#[inline]
pub(crate) fn read_ee(e: Endian, b: &[u8]) -> Option<Ee> {
    by_order!(e, O => SockExtendedErr::<O>::ref_from_prefix(b).ok().map(|(x, _)| Ee {
        errno: x.ee_errno.get(),
        origin: x.ee_origin,
        ty: x.ee_type,
        code: x.ee_code,
        info: x.ee_info.get(),
        data: x.ee_data.get(),
    }))
}

/// Bytes of `sa_family_t`, which starts every `sockaddr`.
pub(crate) const SA_FAMILY_SIZE: usize = 2;
pub(crate) const SOCKADDR_IN_SIZE: usize = core::mem::size_of::<SockaddrIn<LittleEndian>>();
pub(crate) const SOCKADDR_IN6_SIZE: usize = core::mem::size_of::<SockaddrIn6<LittleEndian>>();

/// The address family at the start of a `sockaddr`, if `b` holds one.
#[inline]
pub(crate) fn read_sa_family(e: Endian, b: &[u8]) -> Option<u16> {
    by_order!(e, O => zerocopy::byteorder::U16::<O>::ref_from_prefix(b).ok().map(|(f, _)| f.get()))
}

/// A `sockaddr_in` at the start of `b`: `(port, address)`, both decoded
/// from network byte order.
#[inline]
pub(crate) fn read_sockaddr_in(e: Endian, b: &[u8]) -> Option<(u16, [u8; 4])> {
    by_order!(e, O => SockaddrIn::<O>::ref_from_prefix(b)
        .ok()
        .map(|(a, _)| (a.sin_port.get(), a.sin_addr)))
}

/// A `sockaddr_in6` at the start of `b`: `(port, flowinfo, address,
/// scope id)`.
#[inline]
pub(crate) fn read_sockaddr_in6(e: Endian, b: &[u8]) -> Option<(u16, u32, [u8; 16], u32)> {
    by_order!(e, O => SockaddrIn6::<O>::ref_from_prefix(b).ok().map(|(a, _)| {
        (a.sin6_port.get(), a.sin6_flowinfo.get(), a.sin6_addr, a.sin6_scope_id.get())
    }))
}

/// The three timespecs of an `SCM_TIMESTAMPING` report at the start of
/// `b`, 64-bit (`wide`) or 32-bit fields, as `(seconds, nanoseconds)`;
/// `None` if `b` is too short.
#[inline]
pub(crate) fn read_timestamps(e: Endian, wide: bool, b: &[u8]) -> Option<[(i64, i64); 3]> {
    by_order!(e, O => if wide {
        <[Timespec64<O>; 3]>::ref_from_prefix(b)
            .ok()
            .map(|(t, _)| t.each_ref().map(|t| (t.tv_sec.get(), t.tv_nsec.get())))
    } else {
        <[Timespec32<O>; 3]>::ref_from_prefix(b).ok().map(|(t, _)| {
            t.each_ref()
                .map(|t| (i64::from(t.tv_sec.get()), i64::from(t.tv_nsec.get())))
        })
    })
}

/// Encodes a `sock_extended_err` (used by tests and fuzzers to forge
/// kernel-shaped buffers).
#[cfg(test)]
pub(crate) fn ee_bytes(e: Endian, ee: Ee) -> [u8; EE_SIZE] {
    let mut out = [0u8; EE_SIZE];
    by_order!(e, O => SockExtendedErr::<O> {
        ee_errno: ee.errno.into(),
        ee_origin: ee.origin,
        ee_type: ee.ty,
        ee_code: ee.code,
        ee_pad: 0,
        ee_info: ee.info.into(),
        ee_data: ee.data.into(),
    }
    .write_to(&mut out[..])
    .expect("sizes are equal"));
    out
}

pub(crate) const ZC_INFO_SIZE: usize = core::mem::size_of::<ZcInfo<LittleEndian>>();
pub(crate) const ZC_ELEM_SIZE: usize = core::mem::size_of::<ZcInfoElem<LittleEndian>>();
/// Offset of `zerocopy` in `struct zc_info_elem` (a single byte: the same
/// in either byte order).
pub(crate) const ZC_ELEM_ZEROCOPY: usize =
    core::mem::offset_of!(ZcInfoElem<LittleEndian>, zerocopy);

/// The `length` of a `struct zc_info`.
#[inline]
pub(crate) fn read_zc_length(e: Endian, b: &[u8; ZC_INFO_SIZE]) -> u32 {
    by_order!(e, O => {
        let x: ZcInfo<O> = zerocopy::transmute!(*b);
        x.length.get()
    })
}

#[inline]
pub(crate) fn zc_info_bytes(e: Endian, length: u32) -> [u8; ZC_INFO_SIZE] {
    let mut out = [0u8; ZC_INFO_SIZE];
    by_order!(e, O => out.copy_from_slice(ZcInfo::<O> { length: length.into() }.as_bytes()));
    out
}

/// A plain `u32` in the target's byte order (e.g. `SO_TIMESTAMPING` data).
#[inline]
pub(crate) fn u32_bytes(e: Endian, v: u32) -> [u8; 4] {
    by_order!(e, O => U32::<O>::new(v).to_bytes())
}

/// A plain `u16` in the target's byte order (e.g. `UDP_SEGMENT` data).
#[inline]
pub(crate) fn u16_bytes(e: Endian, v: u16) -> [u8; 2] {
    by_order!(e, O => U16::<O>::new(v).to_bytes())
}

/// One `zc_info_elem`: `(lo, hi, zerocopy byte)`.
#[inline]
pub(crate) fn read_elem(e: Endian, b: &[u8; ZC_ELEM_SIZE]) -> (u32, u32, u8) {
    by_order!(e, O => {
        let x: &ZcInfoElem<O> = zerocopy::transmute_ref!(b);
        (x.lo.get(), x.hi.get(), x.zerocopy)
    })
}

#[inline]
pub(crate) fn elem_bytes(
    e: Endian,
    lo: u32,
    hi: u32,
    zerocopy: u8,
    pad: [u8; 3],
) -> [u8; ZC_ELEM_SIZE] {
    let mut out = [0u8; ZC_ELEM_SIZE];
    by_order!(e, O => out.copy_from_slice(
        ZcInfoElem::<O> { lo: lo.into(), hi: hi.into(), zerocopy, pad }.as_bytes()
    ));
    out
}
