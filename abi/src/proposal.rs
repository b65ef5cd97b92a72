//! Numbers and layouts of **unmerged** proposals.
//!
//! Nothing in this module is Linux ABI. Each proposal lives under its
//! revision, and each number says which merged option later took it.

/// `SCM_ZC_NOTIFICATION`, revision v8 of the series "net: A lightweight
/// zero-copy notification mechanism for MSG_ZEROCOPY" (July 2024), the last
/// one posted; it was never merged.
///
/// A `sendmsg` carrying an `SCM_ZC_NOTIFICATION` control message (level
/// `SOL_SOCKET`) whose data is a [`ZcInfo`](v8::ZcInfo) header followed by `length`
/// [`ZcInfoElem`](v8::ZcInfoElem)s asks the kernel to move up to `length` pending zerocopy
/// notifications off the socket's error queue into those elements, set
/// `length` to how many it wrote, and copy the control buffer back to user
/// space when `sendmsg` returns. Anything else on the error queue stays
/// there for `recvmsg(MSG_ERRQUEUE)`.
///
/// # The numbers were reused by mainline
///
/// | family  | v8 value | mainline meaning today | since |
/// |---------|----------|------------------------|-------|
/// | generic | 78       | `SO_DEVMEM_LINEAR` / `SCM_DEVMEM_LINEAR` | 6.12 |
/// | alpha   | 78       | `SO_DEVMEM_LINEAR` / `SCM_DEVMEM_LINEAR` | 6.12 |
/// | mips    | 78       | `SO_DEVMEM_LINEAR` / `SCM_DEVMEM_LINEAR` | 6.12 |
/// | parisc  | 0x404C   | `SCM_TS_OPT_ID` (a *send-side* cmsg)     | 6.13 |
/// | sparc   | 0x0057   | `SO_DEVMEM_LINEAR` / `SCM_DEVMEM_LINEAR` | 6.12 |
///
/// On a 6.12+ generic kernel the placeholder fails with `EINVAL` (devmem's
/// number is receive-only). On a parisc 6.13+ kernel (`net/core/sock.c`,
/// `__sock_cmsg_send`) a placeholder whose data is exactly 4 bytes, sent on
/// a non-TCP socket with `SOF_TIMESTAMPING_OPT_ID` enabled, is *accepted* as
/// `SCM_TS_OPT_ID` and nothing is written back: code that trusts an
/// untouched placeholder would read its own bytes as completions.
/// `msgzc-cmsg` refuses zero-capacity placeholders and poisons the others,
/// so an unwritten one is always recognised.
pub mod v8 {
    use crate::target::Family;
    use zerocopy::byteorder::{ByteOrder, U32};
    use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

    /// `SCM_ZC_NOTIFICATION` for each family, from the v8 patch to
    /// `include/uapi/asm-generic/socket.h` (78) and to
    /// `arch/{alpha,mips,parisc,sparc}/include/uapi/asm/socket.h`
    /// (78, 78, 0x404C, 0x0057). Never merged: see [the module
    /// docs](super::v8) for what these numbers mean on mainline kernels.
    ///
    /// ```
    /// use msgzc_abi::{proposal::v8, Family};
    /// assert_eq!(v8::scm_zc_notification(Family::Parisc), 0x404c);
    /// ```
    pub const fn scm_zc_notification(family: Family) -> i32 {
        match family {
            Family::Generic | Family::Alpha | Family::Mips => 78,
            Family::Parisc => 0x404c,
            Family::Sparc => 0x0057,
        }
    }

    /// A merged option that later took a family's `SCM_ZC_NOTIFICATION`
    /// number.
    ///
    /// Non-exhaustive: a future release may reuse a number again.
    ///
    /// ```
    /// use msgzc_abi::proposal::v8::MainlineOption;
    /// assert_eq!(MainlineOption::TsOptId.macro_names(), ["SCM_TS_OPT_ID"]);
    /// assert_eq!(MainlineOption::DevmemLinear.to_string(), "SO_DEVMEM_LINEAR / SCM_DEVMEM_LINEAR");
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum MainlineOption {
        /// `SO_DEVMEM_LINEAR` / `SCM_DEVMEM_LINEAR` (device-memory TCP,
        /// Linux 6.12): a receive-side control message type.
        DevmemLinear,
        /// `SCM_TS_OPT_ID` (Linux 6.13): a send-side control message setting
        /// the timestamp id of one send.
        TsOptId,
    }

    impl MainlineOption {
        /// The mainline macro names that carry the number: the socket option
        /// first, then the control message type.
        pub const fn macro_names(self) -> &'static [&'static str] {
            match self {
                MainlineOption::DevmemLinear => &["SO_DEVMEM_LINEAR", "SCM_DEVMEM_LINEAR"],
                MainlineOption::TsOptId => &["SCM_TS_OPT_ID"],
            }
        }
    }

    /// The macro names joined with `" / "`.
    impl core::fmt::Display for MainlineOption {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            for (i, name) in self.macro_names().iter().enumerate() {
                if i > 0 {
                    f.write_str(" / ")?;
                }
                f.write_str(name)?;
            }
            Ok(())
        }
    }

    /// The merged option that later took a family's `SCM_ZC_NOTIFICATION`
    /// number.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct Collision {
        /// The mainline option that now carries the number.
        pub mainline: MainlineOption,
        /// First mainline release with that meaning (major, minor).
        pub since: (u16, u16),
        /// What a mainline kernel of that release does with a v8
        /// placeholder.
        pub effect: &'static str,
    }

    /// What mainline did with this family's v8 number.
    ///
    /// ```
    /// use msgzc_abi::{proposal::v8, Family};
    /// let c = v8::mainline_collision(Family::Parisc);
    /// assert_eq!((c.mainline, c.since), (v8::MainlineOption::TsOptId, (6, 13)));
    /// ```
    pub const fn mainline_collision(family: Family) -> Collision {
        match family {
            Family::Parisc => Collision {
                mainline: MainlineOption::TsOptId,
                since: (6, 13),
                effect: "accepted on a non-TCP socket with SOF_TIMESTAMPING_OPT_ID set \
                         when the data is exactly 4 bytes (a zero-capacity placeholder, \
                         taken as the next timestamp id); EINVAL otherwise; nothing is \
                         ever written back",
            },
            Family::Generic | Family::Alpha | Family::Mips | Family::Sparc => Collision {
                mainline: MainlineOption::DevmemLinear,
                since: (6, 12),
                effect: "rejected with EINVAL (a receive-side cmsg type)",
            },
        }
    }

    /// `ZC_NOTIFICATION_MAX`: the most elements a placeholder may ask for;
    /// a larger `length` gets `EINVAL`.
    pub const ZC_NOTIFICATION_MAX: u32 = 16;

    /// Header of `struct zc_info`: the element count, followed in the same
    /// control message by that many [`ZcInfoElem`]s (a C flexible array).
    ///
    /// v8 calls the field `size`; review asked for a clearer name, since it
    /// counts elements, not bytes. On input it is the capacity, on output the
    /// number of elements the kernel filled.
    #[derive(
        Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
    )]
    #[repr(C)]
    pub struct ZcInfo<O: ByteOrder> {
        /// Number of elements (v8 name: `size`).
        pub length: U32<O>,
    }

    /// `struct zc_info_elem`: one completed range of send ids.
    ///
    /// v8's C struct is `{ __u32 lo; __u32 hi; __u8 zerocopy; }`: three
    /// bytes of tail padding, 12 bytes in all, wherever `__u32` is 4-byte
    /// aligned (every [`Arch`](crate::Arch); m68k, which aligns it to 2,
    /// would make it 10). The padding is explicit here, as `reserved[3]` is
    /// in this project's kernel patch. Careful: `zerocopy` is 1 when the pages were
    /// sent without copying, the opposite sense of
    /// `SO_EE_CODE_ZEROCOPY_COPIED`.
    ///
    /// ```
    /// use msgzc_abi::proposal::v8::ZcInfoElem;
    /// use zerocopy::{FromBytes, LittleEndian};
    ///
    /// let raw = [9, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0];
    /// let e = ZcInfoElem::<LittleEndian>::read_from_bytes(&raw).unwrap();
    /// assert_eq!((e.lo.get(), e.hi.get(), e.zerocopy), (9, 12, 1));
    /// ```
    #[derive(
        Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
    )]
    #[repr(C)]
    pub struct ZcInfoElem<O: ByteOrder> {
        /// First completed send id (inclusive).
        pub lo: U32<O>,
        /// Last completed send id (inclusive).
        pub hi: U32<O>,
        /// 1: sent without copying; 0: the kernel copied.
        pub zerocopy: u8,
        /// Tail padding of v8's C struct; the project's kernel patch writes
        /// it as zero in each element it fills.
        pub pad: [u8; 3],
    }

    /// C alignment of `struct zc_info` and `struct zc_info_elem` (that of
    /// `__u32`). The Rust types above are unaligned byte views.
    pub const C_ALIGN: usize = 4;

    /// Bytes of `SCM_ZC_NOTIFICATION` data for a placeholder of `capacity`
    /// elements: `sizeof(struct zc_info) + capacity * sizeof(struct
    /// zc_info_elem)`, exactly what the kernel requires in `cmsg_len`.
    ///
    /// ```
    /// use msgzc_abi::proposal::v8;
    /// assert_eq!(v8::zc_info_size(16), 4 + 16 * 12);
    /// ```
    pub const fn zc_info_size(capacity: usize) -> usize {
        core::mem::size_of::<ZcInfo<zerocopy::NativeEndian>>()
            + capacity * core::mem::size_of::<ZcInfoElem<zerocopy::NativeEndian>>()
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use zerocopy::{BigEndian, LittleEndian};

        #[test]
        fn proposal_numbers_are_pinned() {
            let n = Family::ALL.map(scm_zc_notification);
            assert_eq!(n, [78, 78, 78, 0x404c, 0x57]);
            assert_eq!(ZC_NOTIFICATION_MAX, 16);
        }

        #[test]
        fn proposal_number_never_equals_a_merged_number_we_use() {
            for f in Family::ALL {
                let s = f.socket();
                let n = scm_zc_notification(f);
                assert!(
                    ![s.so_zerocopy, s.so_timestamping_old, s.so_timestamping_new].contains(&n)
                );
            }
        }

        #[test]
        fn layouts_are_pinned() {
            assert_eq!(core::mem::size_of::<ZcInfo<BigEndian>>(), 4);
            assert_eq!(core::mem::size_of::<ZcInfoElem<LittleEndian>>(), 12);
            assert_eq!(core::mem::offset_of!(ZcInfoElem<LittleEndian>, hi), 4);
            assert_eq!(core::mem::offset_of!(ZcInfoElem<LittleEndian>, zerocopy), 8);
            assert_eq!(zc_info_size(0), 4);
            assert_eq!(zc_info_size(ZC_NOTIFICATION_MAX as usize), 196);
            assert_eq!(zc_info_size(1) % C_ALIGN, 0);
        }

        #[test]
        fn collisions_are_documented_for_every_family() {
            for f in Family::ALL {
                let c = mainline_collision(f);
                assert!(c.since >= (6, 12) && !c.mainline.macro_names().is_empty());
            }
        }
    }
}
