//! Arbitrary received control buffers, for every named target layout, into
//! the walker, the typed decoder (with the offender address) and the
//! SCM_ZC_NOTIFICATION answer check.
//!
//! Input: byte 0 picks the target, bytes 1..3 `msg_controllen` (little
//! endian, may exceed the buffer), bytes 3..7 `msg_flags`, the rest is the
//! control buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msgzc_abi::Arch;
use msgzc_cmsg::{
    decode_errqueue, ControlBuf, ControlBuilder, DecodeError, ErrqueueItem, MsgFlags, Walker,
    ZcOutcome,
};

fuzz_target!(|input: &[u8]| {
    if input.len() < 7 {
        return;
    }
    let t = Arch::ALL[usize::from(input[0]) % Arch::ALL.len()].target();
    let controllen = usize::from(u16::from_le_bytes([input[1], input[2]]));
    let flags =
        MsgFlags::from_bits_retain(u32::from_le_bytes([input[3], input[4], input[5], input[6]]));
    let buf = &input[7..];
    let hdr = t.cmsg().header_size();

    let mut last_offset = None;
    let mut steps = 0;
    let mut errors = 0;
    for m in Walker::new(t, buf, controllen, flags) {
        steps += 1;
        assert_eq!(errors, 0, "nothing may follow an error");
        match m {
            Ok(m) => {
                assert!(
                    last_offset.map_or(true, |o| m.offset > o),
                    "offsets increase"
                );
                assert!(m.offset + hdr + m.data.len() <= controllen.min(buf.len()));
                last_offset = Some(m.offset);
                if let Ok(ErrqueueItem::Extended(x)) = decode_errqueue(t, &m) {
                    match x.offender_addr(t) {
                        Ok(_) => {}
                        Err(DecodeError::ShortOffender { needed, got, .. }) => {
                            assert!(got < needed && got == x.offender.len())
                        }
                        Err(e) => panic!("unexpected offender error {e:?}"),
                    }
                }
            }
            Err(e) => {
                errors += 1;
                assert!(e.offset <= controllen.min(buf.len()) || controllen > buf.len());
                let _ = e.to_string();
            }
        }
    }
    assert!(
        steps <= buf.len() / hdr + 2,
        "walker must terminate quickly"
    );

    // The same bytes as a kernel's answer to a placeholder.
    let mut cb = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(t, cb.as_mut_bytes()).unwrap();
    let capacity = 1 + usize::from(input[0]) % 16;
    b.zc_placeholder(capacity).unwrap();
    let c = b.finish();
    assert_eq!(
        c.zc_outcome(c.len(), MsgFlags::empty()),
        Ok(ZcOutcome::Unwritten { capacity })
    );
    let mut answer = ControlBuf::<256>::new();
    let n = buf.len().min(256);
    answer.as_mut_bytes()[..n].copy_from_slice(&buf[..n]);
    // Rebuild over the fuzzed bytes' tail so the answer sits where a
    // kernel would put it (offset 0) and the decoder sees foreign bytes.
    let mut b = ControlBuilder::new(t, answer.as_mut_bytes()).unwrap();
    if b.zc_placeholder(capacity).is_ok() {
        let c = b.finish();
        let _ = c.zc_outcome(controllen.min(256), flags);
    }
});
