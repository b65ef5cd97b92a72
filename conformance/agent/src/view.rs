//! One decoding of a control buffer in the line protocol's notation, used
//! by the Rust guest for its own (native) answer and by the host judge for
//! the re-decoding with the target's layout. The C guest produces the same
//! notation with its libc's `CMSG_*` macros.
//!
//! ```text
//! msgs=LEVEL:TYPE:DATALEN,...   every complete message, in order
//! ranges=LO-HI-COPIED,...       zerocopy completions (COPIED 0/1)
//! items=ext:ERRNO:ORIGIN:TYPE:CODE,...|ts|unknown   other error-queue items
//! trunc=0|1                     MSG_CTRUNC ended the walk
//! ```
//! Each list is `none` when empty.

use msgzc_cmsg::{decode_errqueue, ErrqueueItem, MsgFlags, Target, WalkErrorKind, Walker, ZcRange};

/// A decoded buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// `(level, type, data length)` of each complete message.
    pub msgs: Vec<(i32, i32, usize)>,
    /// Zerocopy completions.
    pub ranges: Vec<ZcRange>,
    /// Other error-queue items.
    pub items: Vec<String>,
    /// The walk ended on `MSG_CTRUNC`.
    pub trunc: bool,
    /// A malformed buffer (never expected from a kernel).
    pub error: Option<String>,
}

/// Decodes `bytes[..controllen]` received (or built) with `flags`.
pub fn decode(t: Target, bytes: &[u8], controllen: usize, flags: u32) -> View {
    let mut v = View::default();
    let ctrunc = flags & MsgFlags::CTRUNC.bits() != 0;
    for m in Walker::new(t, bytes, controllen, MsgFlags::from_bits_retain(flags)) {
        let m = match m {
            Ok(m) => m,
            Err(e) if e.kind == WalkErrorKind::Truncated => {
                v.trunc = true;
                break;
            }
            Err(e) => {
                v.error = Some(format!("walk: {e}"));
                break;
            }
        };
        v.msgs.push((m.level, m.ty, m.data.len()));
        match decode_errqueue(t, &m) {
            Ok(ErrqueueItem::Zerocopy(r)) => v.ranges.push(r),
            Ok(ErrqueueItem::Extended(x)) => v.items.push(format!(
                "ext:{}:{}:{}:{}",
                x.errno, x.origin_raw, x.ty, x.code
            )),
            Ok(ErrqueueItem::Timestamps(_)) => v.items.push("ts".into()),
            Ok(ErrqueueItem::Other(_)) => {}
            // An item a newer msgzc-cmsg decodes and this notation lacks:
            // listed rather than dropped, so it shows in the notation.
            Ok(_) => v.items.push("unknown".into()),
            // A message cut by MSG_CTRUNC is too short to decode.
            Err(_) if ctrunc => {}
            Err(e) => {
                v.error = Some(format!("decode: {e}"));
                break;
            }
        }
    }
    v
}

fn list<T>(xs: &[T], f: impl Fn(&T) -> String) -> String {
    if xs.is_empty() {
        "none".into()
    } else {
        xs.iter().map(f).collect::<Vec<_>>().join(",")
    }
}

impl View {
    /// `msgs=`, the notation of the message list.
    pub fn msgs_field(&self) -> String {
        list(&self.msgs, |(l, t, n)| format!("{l}:{t}:{n}"))
    }

    /// `ranges=`.
    pub fn ranges_field(&self) -> String {
        list(&self.ranges, |r| {
            format!("{}-{}-{}", r.lo, r.hi, u8::from(r.copied))
        })
    }

    /// `items=`.
    pub fn items_field(&self) -> String {
        list(&self.items, String::clone)
    }

    /// The four fields as printed on a `RAW` line.
    pub fn fields(&self) -> String {
        format!(
            "msgs={} ranges={} items={} trunc={}",
            self.msgs_field(),
            self.ranges_field(),
            self.items_field(),
            u8::from(self.trunc)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgzc_abi::Arch;

    #[test]
    fn notation_of_a_big_endian_completion() {
        // mips: 12-byte header, SOL_IP/IP_RECVERR, sends 0..=15 copied.
        let mut b = vec![0, 0, 0, 28, 0, 0, 0, 0, 0, 0, 0, 11];
        b.extend([0, 0, 0, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 15]);
        let v = decode(Arch::Mips.target(), &b, b.len(), 0x2000);
        assert_eq!(v.fields(), "msgs=0:11:16 ranges=0-15-1 items=none trunc=0");
        assert_eq!(v.error, None);
        // What put_cmsg leaves in a 16-byte buffer: cmsg_len covers 4 bytes.
        let mut c = b[..16].to_vec();
        c[3] = 16;
        let cut = decode(Arch::Mips.target(), &c, 16, 0x2008);
        assert_eq!(cut.fields(), "msgs=0:11:4 ranges=none items=none trunc=1");
        assert!(decode(Arch::Mips.target(), &c, 16, 0).error.is_some());
        assert!(decode(Arch::Mips.target(), &b[..16], 16, 0).error.is_some());
    }
}
