//! Building control buffers for `sendmsg`.

use crate::decode::{decode_zc_info, ZcOutcome};
use crate::error::{BuildError, ZcError};
use crate::layout::{
    elem_bytes, u16_bytes, u32_bytes, write_header, zc_info_bytes, Header, ZC_ELEM_SIZE,
    ZC_INFO_SIZE,
};
use crate::walk::Walker;
use msgzc_abi::proposal::v8;
use msgzc_abi::{CmsgLayout, MsgFlags, Target, TimestampingFlags};

/// The byte written over every `zc_info_elem` of a fresh placeholder.
///
/// A v8 kernel writes `zerocopy` bytes of 0 or 1 only, so an element whose
/// `zerocopy` byte is still `ZC_POISON` was never written.
///
/// ```
/// use msgzc_cmsg::{ControlBuf, ControlBuilder, ZC_POISON};
/// use msgzc_abi::Arch;
///
/// let mut buf = ControlBuf::<64>::new();
/// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
/// b.zc_placeholder(1).unwrap();
/// let c = b.finish();
/// // Header (16), zc_info.length (4), then one poisoned 12-byte element.
/// assert_eq!(&c.as_bytes()[16..20], &1u32.to_le_bytes());
/// assert!(c.as_bytes()[20..32].iter().all(|&b| b == ZC_POISON));
/// ```
pub const ZC_POISON: u8 = 0xa5;

/// `CMSG_SPACE` of an `SCM_ZC_NOTIFICATION` placeholder of `capacity`
/// elements for the native layout: usable in array lengths.
///
/// ```
/// use msgzc_cmsg::{zc_placeholder_space, ControlBuf};
/// let buf = ControlBuf::<{ zc_placeholder_space(16) }>::new();
/// # #[cfg(target_pointer_width = "64")]
/// assert_eq!(buf.as_bytes().len(), 16 + 200); // 196 data bytes, padded to 8
/// ```
pub const fn zc_placeholder_space(capacity: usize) -> usize {
    CmsgLayout::NATIVE.space(v8::zc_info_size(capacity))
}

/// Control-buffer storage aligned for every layout (8 bytes), so
/// [`ControlBuilder::new`] never refuses it as misaligned.
///
/// ```
/// use msgzc_cmsg::ControlBuf;
///
/// let buf = ControlBuf::<48>::new();
/// assert_eq!(buf.as_bytes().as_ptr() as usize % 8, 0);
/// assert_eq!(buf.as_bytes(), &[0u8; 48][..]);
/// ```
#[derive(Clone, Debug)]
#[repr(C, align(8))]
pub struct ControlBuf<const N: usize>([u8; N]);

impl<const N: usize> ControlBuf<N> {
    /// A zeroed buffer; `const`, so it can live in a `static` or on the
    /// stack without initialisation code.
    ///
    /// ```
    /// use msgzc_cmsg::ControlBuf;
    /// static EMPTY: ControlBuf<16> = ControlBuf::new();
    /// assert_eq!(EMPTY.as_bytes().len(), 16);
    /// ```
    pub const fn new() -> Self {
        ControlBuf([0; N])
    }

    /// The bytes.
    ///
    /// ```
    /// # use msgzc_cmsg::ControlBuf;
    /// assert_eq!(ControlBuf::<8>::new().as_bytes(), &[0; 8]);
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, mutably (what [`ControlBuilder::new`] and `recvmsg` take).
    ///
    /// ```
    /// # use msgzc_cmsg::ControlBuf;
    /// let mut buf = ControlBuf::<8>::new();
    /// buf.as_mut_bytes()[0] = 1;
    /// assert_eq!(buf.as_bytes()[0], 1);
    /// ```
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for ControlBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the `SCM_ZC_NOTIFICATION` placeholder sits in a built buffer.
///
/// ```
/// use msgzc_cmsg::{ControlBuf, ControlBuilder, TimestampingFlags, ZcSlot};
/// use msgzc_abi::Arch;
///
/// let mut buf = ControlBuf::<256>::new();
/// let mut b = ControlBuilder::new(Arch::Armv7.target(), buf.as_mut_bytes()).unwrap();
/// b.timestamping(TimestampingFlags::TX_SOFTWARE).unwrap();
/// // 32-bit layout: a 12-byte header and 4 data bytes before it.
/// assert_eq!(b.zc_placeholder(2), Ok(ZcSlot { offset: 16, capacity: 2 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZcSlot {
    /// Byte offset of its header.
    pub offset: usize,
    /// Its number of `zc_info_elem`s.
    pub capacity: usize,
}

/// Writes control messages for `target` into a caller's buffer.
///
/// Each `push` writes one whole message (header, data, zeroed padding) or
/// nothing: a refused message leaves the buffer as it was. The only way to
/// get something to hand to `sendmsg` is [`finish`](Self::finish), which
/// yields a [`Control`] covering exactly the complete messages.
///
/// ```
/// use msgzc_cmsg::{BuildError, ControlBuf, ControlBuilder, TimestampingFlags};
/// use msgzc_abi::Arch;
///
/// let mut buf = ControlBuf::<32>::new();
/// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
/// b.timestamping(TimestampingFlags::TX_SOFTWARE).unwrap();
/// // A 16-element placeholder needs 16 + 196 (+ 4 padding) more bytes.
/// assert_eq!(b.zc_placeholder(16), Err(BuildError::TooSmall { needed: 24 + 216, available: 32 }));
/// let c = b.finish();
/// assert_eq!(c.len(), 24);
/// ```
#[derive(Debug)]
pub struct ControlBuilder<'a> {
    target: Target,
    buf: &'a mut [u8],
    len: usize,
    zc: Option<ZcSlot>,
}

impl<'a> ControlBuilder<'a> {
    /// Starts an empty buffer. `buf` must start on the layout's alignment
    /// (`CMSG_ALIGN`), as the C API requires of `msg_control`.
    ///
    /// ```
    /// use msgzc_cmsg::{BuildError, ControlBuf, ControlBuilder};
    /// use msgzc_abi::Arch;
    ///
    /// let mut buf = ControlBuf::<64>::new();
    /// let t = Arch::Aarch64.target();
    /// assert!(ControlBuilder::new(t, buf.as_mut_bytes()).is_ok());
    /// assert_eq!(
    ///     ControlBuilder::new(t, &mut buf.as_mut_bytes()[4..]).unwrap_err(),
    ///     BuildError::Misaligned { align: 8, offset: 4 },
    /// );
    /// // 32-bit layouts align to 4.
    /// assert!(ControlBuilder::new(Arch::Mips.target(), &mut buf.as_mut_bytes()[4..]).is_ok());
    /// ```
    #[inline]
    pub fn new(target: Target, buf: &'a mut [u8]) -> Result<Self, BuildError> {
        let align = target.cmsg().align();
        // Only the address is inspected; the pointer is never dereferenced.
        let offset = (buf.as_ptr() as usize) % align;
        if offset != 0 {
            return Err(BuildError::Misaligned { align, offset });
        }
        Ok(ControlBuilder {
            target,
            buf,
            len: 0,
            zc: None,
        })
    }

    /// The target layout.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<16>::new();
    /// let b = ControlBuilder::new(Arch::S390x.target(), buf.as_mut_bytes()).unwrap();
    /// assert_eq!(b.target(), Arch::S390x.target());
    /// ```
    pub fn target(&self) -> Target {
        self.target
    }

    /// Bytes used so far (the `msg_controllen` [`finish`](Self::finish)
    /// would give).
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<64>::new();
    /// let mut b = ControlBuilder::new(Arch::I686.target(), buf.as_mut_bytes()).unwrap();
    /// b.push(1, 2, &[7; 5]).unwrap();
    /// assert_eq!(b.len(), 20); // CMSG_SPACE(5) on a 32-bit layout
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no message was written yet.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<8>::new();
    /// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
    /// assert!(b.push(1, 2, &[]).is_err()); // 16 bytes do not fit in 8
    /// assert!(b.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reserves one message of `data_len` bytes: checks everything, then
    /// writes the header and zeroes the padding, and returns the data area.
    #[inline]
    fn reserve(
        &mut self,
        level: i32,
        ty: i32,
        data_len: usize,
    ) -> Result<(usize, &mut [u8]), BuildError> {
        let layout = self.target.cmsg();
        let too_long = BuildError::TooLong { data_len };
        let cmsg_len = layout.checked_len(data_len).ok_or(too_long)?;
        let space = layout.checked_space(data_len).ok_or(too_long)?;
        if layout == CmsgLayout::Bits32 && u32::try_from(space).is_err() {
            return Err(too_long);
        }
        let needed = self.len.checked_add(space).ok_or(too_long)?;
        if needed > self.buf.len() {
            return Err(BuildError::TooSmall {
                needed,
                available: self.buf.len(),
            });
        }
        let start = self.len;
        let msg = &mut self.buf[start..needed];
        let header = Header {
            len: cmsg_len as u64,
            level,
            ty,
        };
        let wrote = write_header(self.target, msg, header);
        debug_assert!(wrote, "header size and cmsg_len range were checked above");
        msg[cmsg_len - data_len..].fill(0);
        self.len = needed;
        let hdr = layout.header_size();
        Ok((start, &mut msg[hdr..hdr + data_len]))
    }

    #[cfg(test)]
    pub(crate) fn reserve_for_test(&mut self, data_len: usize) -> Result<(), BuildError> {
        self.reserve(1, 1, data_len).map(drop)
    }

    /// Appends a raw message: header, `data`, and zeroed padding to the
    /// layout's alignment. On error nothing is written.
    ///
    /// ```
    /// use msgzc_cmsg::{BuildError, ControlBuf, ControlBuilder};
    /// use msgzc_abi::Arch;
    ///
    /// let mut buf = ControlBuf::<32>::new();
    /// let mut b = ControlBuilder::new(Arch::Sparc64.target(), buf.as_mut_bytes()).unwrap();
    /// b.push(0xffff, 1, &3i32.to_be_bytes()).unwrap(); // SCM_RIGHTS, fd 3
    /// assert_eq!(
    ///     b.push(0xffff, 1, &[0; 8]),
    ///     Err(BuildError::TooSmall { needed: 48, available: 32 }),
    /// );
    /// let c = b.finish();
    /// // Big-endian 64-bit header: cmsg_len 20, level 0xffff, type 1.
    /// assert_eq!(&c.as_bytes()[..8], &20u64.to_be_bytes());
    /// assert_eq!(c.len(), 24);
    /// ```
    #[inline]
    pub fn push(&mut self, level: i32, ty: i32, data: &[u8]) -> Result<(), BuildError> {
        let (_, out) = self.reserve(level, ty, data.len())?;
        out.copy_from_slice(data);
        Ok(())
    }

    /// Appends an `SO_TIMESTAMPING` request for this send (`SOL_SOCKET`,
    /// type `SO_TIMESTAMPING_OLD`, a `u32` of flags), which the kernel
    /// accepts only with flags inside `SOF_TIMESTAMPING_TX_RECORD_MASK`.
    ///
    /// ```
    /// use msgzc_cmsg::{BuildError, ControlBuf, ControlBuilder, TimestampingFlags};
    /// use msgzc_abi::Arch;
    ///
    /// let mut buf = ControlBuf::<32>::new();
    /// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
    /// let f = TimestampingFlags::TX_SOFTWARE | TimestampingFlags::TX_SCHED;
    /// b.timestamping(f).unwrap();
    /// // Reporting flags are socket-wide, not per send:
    /// let bad = TimestampingFlags::SOFTWARE;
    /// assert_eq!(b.timestamping(bad), Err(BuildError::TimestampingFlags { invalid: bad.bits() }));
    /// ```
    pub fn timestamping(&mut self, flags: TimestampingFlags) -> Result<(), BuildError> {
        let invalid = flags.bits() & !TimestampingFlags::TX_RECORD_MASK.bits();
        if invalid != 0 {
            return Err(BuildError::TimestampingFlags { invalid });
        }
        let s = self.target.family.socket();
        let data = u32_bytes(self.target.endian, flags.bits());
        self.push(s.sol_socket, s.so_timestamping_old, &data)
    }

    /// Appends a `UDP_SEGMENT` request for this send (`SOL_UDP`, a `u16`):
    /// the kernel cuts the payload into datagrams of `size` bytes, the last
    /// one shorter (UDP GSO, Linux 4.18). A zerocopy send so cut still
    /// takes a single send id. Refusals come from the kernel, after the
    /// send was built (see `sys::ZcSocket::send_gso`).
    ///
    /// ```
    /// use msgzc_cmsg::{ControlBuf, ControlBuilder, Walker, MsgFlags};
    /// use msgzc_abi::Arch;
    ///
    /// let t = Arch::S390x.target(); // 64-bit big-endian
    /// let mut buf = ControlBuf::<32>::new();
    /// let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
    /// b.udp_segment(1200).unwrap();
    /// let c = b.finish();
    /// assert_eq!(c.len(), 24); // CMSG_SPACE(2)
    /// let m = Walker::new(t, c.as_bytes(), c.len(), MsgFlags::empty()).next().unwrap().unwrap();
    /// assert_eq!((m.level, m.ty, m.data), (17, 103, &1200u16.to_be_bytes()[..]));
    /// ```
    pub fn udp_segment(&mut self, size: u16) -> Result<(), BuildError> {
        let n = self.target.numbers();
        let data = u16_bytes(self.target.endian, size);
        self.push(n.sol_udp, n.udp_segment, &data)
    }

    /// Appends an `SCM_ZC_NOTIFICATION` placeholder (proposal v8) for up to
    /// `capacity` completions, `1..=ZC_NOTIFICATION_MAX`.
    ///
    /// The elements are poisoned with [`ZC_POISON`] so that
    /// [`Control::zc_outcome`] can tell a kernel that wrote nothing from one
    /// that wrote zero completions.
    ///
    /// ```
    /// use msgzc_cmsg::{BuildError, ControlBuf, ControlBuilder};
    /// use msgzc_abi::Arch;
    ///
    /// let mut buf = ControlBuf::<512>::new();
    /// let mut b = ControlBuilder::new(Arch::Mips64.target(), buf.as_mut_bytes()).unwrap();
    /// assert_eq!(b.zc_placeholder(0), Err(BuildError::ZcCapacity { capacity: 0 }));
    /// assert_eq!(b.zc_placeholder(17), Err(BuildError::ZcCapacity { capacity: 17 }));
    /// let slot = b.zc_placeholder(16).unwrap();
    /// assert_eq!((slot.offset, slot.capacity), (0, 16));
    /// assert_eq!(b.zc_placeholder(1), Err(BuildError::ZcTwice));
    /// ```
    #[inline]
    pub fn zc_placeholder(&mut self, capacity: usize) -> Result<ZcSlot, BuildError> {
        if capacity == 0 || capacity > v8::ZC_NOTIFICATION_MAX as usize {
            return Err(BuildError::ZcCapacity { capacity });
        }
        if self.zc.is_some() {
            return Err(BuildError::ZcTwice);
        }
        let t = self.target;
        let level = t.family.socket().sol_socket;
        let ty = v8::scm_zc_notification(t.family);
        let (offset, out) = self.reserve(level, ty, v8::zc_info_size(capacity))?;
        let (head, elems) = out.split_at_mut(ZC_INFO_SIZE);
        // capacity <= 16 was checked above.
        head.copy_from_slice(&zc_info_bytes(t.endian, capacity as u32));
        let poison = u32::from_ne_bytes([ZC_POISON; 4]);
        let elem = elem_bytes(t.endian, poison, poison, ZC_POISON, [ZC_POISON; 3]);
        for chunk in elems.chunks_exact_mut(ZC_ELEM_SIZE) {
            chunk.copy_from_slice(&elem);
        }
        let slot = ZcSlot { offset, capacity };
        self.zc = Some(slot);
        Ok(slot)
    }

    /// Ends building; the result covers exactly the messages written.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<64>::new();
    /// let mut b = ControlBuilder::new(Arch::Riscv64.target(), buf.as_mut_bytes()).unwrap();
    /// b.push(0, 1, &[1]).unwrap();
    /// let c = b.finish();
    /// assert_eq!(c.len(), 24);
    /// assert_eq!(c.as_bytes().len(), 24);
    /// ```
    #[inline]
    pub fn finish(self) -> Control<'a> {
        Control {
            target: self.target,
            buf: self.buf,
            len: self.len,
            zc: self.zc,
        }
    }
}

/// A finished control buffer, ready for `sendmsg`.
///
/// It keeps the whole buffer borrowed because a kernel implementing
/// `SCM_ZC_NOTIFICATION` writes its answer back into it.
///
/// ```
/// use msgzc_cmsg::{ControlBuf, ControlBuilder};
/// use msgzc_abi::Arch;
///
/// let mut buf = ControlBuf::<64>::new();
/// let c = ControlBuilder::new(Arch::Powerpc.target(), buf.as_mut_bytes()).unwrap().finish();
/// // Nothing pushed: pass a null msg_control and msg_controllen 0.
/// assert!(c.is_empty());
/// ```
#[derive(Debug)]
pub struct Control<'a> {
    target: Target,
    buf: &'a mut [u8],
    len: usize,
    zc: Option<ZcSlot>,
}

impl<'a> Control<'a> {
    /// The target layout.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<8>::new();
    /// let c = ControlBuilder::new(Arch::Mipsel.target(), buf.as_mut_bytes()).unwrap().finish();
    /// assert_eq!(c.target(), Arch::Mipsel.target());
    /// ```
    pub fn target(&self) -> Target {
        self.target
    }

    /// The `msg_controllen` to pass.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<64>::new();
    /// let mut b = ControlBuilder::new(Arch::Mipsel.target(), buf.as_mut_bytes()).unwrap();
    /// b.push(0, 1, &[0; 4]).unwrap();
    /// b.push(0, 2, &[0; 4]).unwrap();
    /// assert_eq!(b.finish().len(), 32);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no message (pass a null `msg_control`).
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<64>::new();
    /// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
    /// b.push(0, 1, &[]).unwrap();
    /// assert!(!b.finish().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The messages, `msg_controllen` bytes.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<64>::new();
    /// let mut b = ControlBuilder::new(Arch::Powerpc.target(), buf.as_mut_bytes()).unwrap();
    /// b.push(1, 2, &[9]).unwrap();
    /// // cmsg_len 13, level 1, type 2 (big-endian 32-bit), data, padding.
    /// assert_eq!(b.finish().as_bytes(), &[0, 0, 0, 13, 0, 0, 0, 1, 0, 0, 0, 2, 9, 0, 0, 0]);
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// A pointer for `msghdr.msg_control` when the caller makes the
    /// system call itself (e.g. through io_uring). The kernel reads
    /// [`len`](Self::len) bytes and, if it implements `SCM_ZC_NOTIFICATION`,
    /// writes back at most as many; afterwards pass the returned
    /// `msg_controllen` and `msg_flags` to [`zc_outcome`](Self::zc_outcome).
    /// The pointer is valid while this `Control` lives.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<64>::new();
    /// let start = buf.as_bytes().as_ptr();
    /// let mut c = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap().finish();
    /// assert_eq!(c.as_mut_ptr() as *const u8, start);
    /// ```
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf.as_mut_ptr()
    }

    /// The whole underlying buffer, for the socket layer: the kernel may
    /// write back into it.
    #[cfg(any(
        test,
        all(feature = "std", any(target_os = "linux", target_os = "android"))
    ))]
    pub(crate) fn buffer_mut(&mut self) -> &mut [u8] {
        self.buf
    }

    /// The placeholder, if one was built.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<256>::new();
    /// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
    /// let slot = b.zc_placeholder(8).unwrap();
    /// assert_eq!(b.finish().zc_slot(), Some(slot));
    /// ```
    pub fn zc_slot(&self) -> Option<ZcSlot> {
        self.zc
    }

    /// Starts over on the same buffer (e.g. to re-arm the placeholder for
    /// the next `sendmsg`).
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder};
    /// # use msgzc_abi::Arch;
    /// let mut buf = ControlBuf::<256>::new();
    /// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
    /// b.zc_placeholder(8).unwrap();
    /// let sent = b.finish();
    /// // ... sendmsg, zc_outcome ...
    /// let mut b = sent.into_builder();
    /// assert!(b.is_empty());
    /// b.zc_placeholder(8).unwrap(); // poisoned afresh
    /// ```
    pub fn into_builder(self) -> ControlBuilder<'a> {
        ControlBuilder {
            target: self.target,
            buf: self.buf,
            len: 0,
            zc: None,
        }
    }

    /// What the kernel did with the placeholder, given the `msg_controllen`
    /// and `msg_flags` it left in the `msghdr` after `sendmsg` succeeded.
    ///
    /// A v8 kernel copies the filled `zc_info` back to the *start* of the
    /// buffer and sets `msg_controllen` to the bytes it wrote; a kernel
    /// without the proposal writes nothing. An unwritten placeholder is
    /// always [`ZcOutcome::Unwritten`], never completions.
    ///
    /// ```
    /// use msgzc_cmsg::{ControlBuf, ControlBuilder, MsgFlags, ZcOutcome};
    /// use msgzc_abi::Arch;
    ///
    /// let mut buf = ControlBuf::<256>::new();
    /// let mut b = ControlBuilder::new(Arch::Hppa.target(), buf.as_mut_bytes()).unwrap();
    /// b.zc_placeholder(4).unwrap();
    /// let c = b.finish();
    /// // A kernel that ignored it (e.g. parisc >= 6.13 taking it as
    /// // SCM_TS_OPT_ID) left msg_controllen alone:
    /// assert_eq!(c.zc_outcome(c.len(), MsgFlags::empty()), Ok(ZcOutcome::Unwritten { capacity: 4 }));
    /// ```
    #[inline]
    pub fn zc_outcome(&self, controllen: usize, flags: MsgFlags) -> Result<ZcOutcome<'_>, ZcError> {
        let Some(slot) = self.zc else {
            return Ok(ZcOutcome::NotRequested);
        };
        if controllen == self.len && !flags.contains(MsgFlags::CTRUNC) {
            // Untouched length: the placeholder is where we put it (written
            // back in place when it was the only message, or not at all).
            let t = self.target;
            let start = slot.offset + t.cmsg().header_size();
            let end = start + v8::zc_info_size(slot.capacity);
            // The builder reserved these bytes below `self.len`.
            let Some(data) = self.buf.get(start..end) else {
                return Err(ZcError::Missing);
            };
            return decode_zc_info(t.endian, data, slot.capacity);
        }
        self.zc_outcome_moved(slot, controllen, flags)
    }

    /// [`zc_outcome`](Self::zc_outcome) when the kernel changed
    /// `msg_controllen`: find the placeholder it copied back.
    fn zc_outcome_moved(
        &self,
        slot: ZcSlot,
        controllen: usize,
        flags: MsgFlags,
    ) -> Result<ZcOutcome<'_>, ZcError> {
        let t = self.target;
        let ty = v8::scm_zc_notification(t.family);
        let level = t.family.socket().sol_socket;
        let expected = v8::zc_info_size(slot.capacity);
        for m in Walker::new(t, self.buf, controllen, flags) {
            let m = m?;
            if m.level == level && m.ty == ty {
                if m.data.len() != expected {
                    return Err(ZcError::SizeChanged {
                        expected,
                        found: m.data.len(),
                    });
                }
                return decode_zc_info(t.endian, m.data, slot.capacity);
            }
        }
        Err(ZcError::Missing)
    }
}
