//! Arbitrary builder operations for an arbitrary target layout, checked
//! against a model: every accepted message walks back byte for byte, every
//! refusal carries the right `needed` size (or reason), and nothing is
//! written past the finished length.
#![no_main]

mod input;

use input::Input;
use libfuzzer_sys::fuzz_target;
use msgzc_abi::proposal::v8;
use msgzc_abi::{Arch, Endian, TimestampingFlags};
use msgzc_cmsg::{BuildError, ControlBuf, ControlBuilder, MsgFlags, Walker, ZcOutcome, ZC_POISON};

/// Marks bytes the builder never wrote.
const UNTOUCHED: u8 = 0x5c;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let t = Arch::ALL[usize::from(input.u8()) % Arch::ALL.len()].target();
    let layout = t.cmsg();
    let skew = usize::from(input.u8() % 8);
    let size = usize::from(input.u16() % 1025);

    let mut storage = ControlBuf::<1040>::new();
    storage.as_mut_bytes().fill(UNTOUCHED);
    let buf = &mut storage.as_mut_bytes()[skew..skew + size];
    let mut b = match ControlBuilder::new(t, buf) {
        Ok(b) => b,
        Err(e) => {
            assert_ne!(skew % layout.align(), 0, "an aligned buffer was refused");
            assert_eq!(
                e,
                BuildError::Misaligned {
                    align: layout.align(),
                    offset: skew % layout.align()
                }
            );
            return;
        }
    };
    assert_eq!(skew % layout.align(), 0, "a misaligned buffer was accepted");

    // The model: the messages accepted so far and the bytes they take.
    let mut model: Vec<(i32, i32, Vec<u8>)> = Vec::new();
    let mut used = 0usize;
    let mut zc: Option<usize> = None;
    let sock = t.family.socket();
    let u32_bytes = |v: u32| match t.endian {
        Endian::Big => v.to_be_bytes(),
        Endian::Little => v.to_le_bytes(),
    };

    while !input.is_empty() && model.len() < 64 {
        let op = input.u8();
        let (expect_msg, result) = match op % 3 {
            0 => {
                let (level, ty) = (input.u32() as i32, input.u32() as i32);
                let len = usize::from(input.u8()) * 2;
                let payload = input.bytes(len).to_vec();
                (
                    Some((level, ty, payload.clone())),
                    b.push(level, ty, &payload).map(drop),
                )
            }
            1 => {
                let flags = TimestampingFlags::from_bits_retain(input.u32() & 0x7fff);
                let invalid = flags.bits() & !TimestampingFlags::TX_RECORD_MASK.bits();
                let r = b.timestamping(flags).map(drop);
                if invalid != 0 {
                    assert_eq!(r, Err(BuildError::TimestampingFlags { invalid }));
                    continue;
                }
                (
                    Some((
                        sock.sol_socket,
                        sock.so_timestamping_old,
                        u32_bytes(flags.bits()).to_vec(),
                    )),
                    r,
                )
            }
            _ => {
                let capacity = usize::from(input.u8() % 20);
                let r = b.zc_placeholder(capacity);
                if capacity == 0 || capacity > v8::ZC_NOTIFICATION_MAX as usize {
                    assert_eq!(r, Err(BuildError::ZcCapacity { capacity }));
                    continue;
                }
                if zc.is_some() {
                    assert_eq!(r, Err(BuildError::ZcTwice));
                    continue;
                }
                let mut payload = u32_bytes(capacity as u32).to_vec();
                payload.resize(v8::zc_info_size(capacity), ZC_POISON);
                if let Ok(slot) = r {
                    assert_eq!((slot.offset, slot.capacity), (used, capacity));
                    zc = Some(capacity);
                }
                let msg = (sock.sol_socket, v8::scm_zc_notification(t.family), payload);
                (Some(msg), r.map(drop))
            }
        };
        let (level, ty, payload) = expect_msg.expect("every op that gets here has a message");
        let needed = used + layout.space(payload.len());
        if needed <= size {
            assert_eq!(result, Ok(()), "refused a message that fits");
            used = needed;
            model.push((level, ty, payload));
        } else {
            assert_eq!(
                result,
                Err(BuildError::TooSmall {
                    needed,
                    available: size
                })
            );
        }
        assert_eq!(b.len(), used);
    }

    let control = b.finish();
    assert_eq!(control.len(), used);
    let walked: Vec<(i32, i32, Vec<u8>)> =
        Walker::new(t, control.as_bytes(), control.len(), MsgFlags::empty())
            .map(|m| m.map(|m| (m.level, m.ty, m.data.to_vec())))
            .collect::<Result<_, _>>()
            .expect("a built buffer always walks");
    assert_eq!(walked, model);
    match zc {
        Some(capacity) => assert_eq!(
            control.zc_outcome(control.len(), MsgFlags::empty()),
            Ok(ZcOutcome::Unwritten { capacity })
        ),
        None => assert_eq!(
            control.zc_outcome(control.len(), MsgFlags::empty()),
            Ok(ZcOutcome::NotRequested)
        ),
    }
    drop(control);
    let bytes = storage.as_bytes();
    assert!(
        bytes[..skew].iter().all(|&x| x == UNTOUCHED),
        "wrote before the buffer"
    );
    assert!(
        bytes[skew + used..].iter().all(|&x| x == UNTOUCHED),
        "wrote past the finished length"
    );
});
