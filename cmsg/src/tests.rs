//! Unit tests of the whole no_std core: builder → walker round trips for
//! every named target, every malformed-input class, typed decoding, the
//! placeholder states and tracker properties.

use crate::layout::{ee_bytes, elem_bytes, write_header, zc_info_bytes, Ee, Header};
use crate::*;
use msgzc_abi::proposal::v8;
use msgzc_abi::{Arch, CmsgLayout, Endian, ErrOrigin};
use proptest::prelude::*;
use std::string::ToString;
use std::vec::Vec;

/// The configuration of every property test in the crate. Under Miri, which
/// interprets every step (ci/miri), 8 cases instead of proptest's 256 (or
/// `PROPTEST_CASES`): Miri looks for undefined behaviour on the code paths,
/// which the native runs cover with many inputs. No failure file either:
/// finding it needs `getcwd`, which Miri's isolation refuses; a failing
/// seed still prints in the panic.
pub(crate) fn proptest_config() -> ProptestConfig {
    if cfg!(miri) {
        ProptestConfig {
            cases: 8,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    } else {
        ProptestConfig::default()
    }
}

fn all_targets() -> impl Iterator<Item = Target> {
    Arch::ALL.into_iter().map(Arch::target)
}

/// A hand-assembled message for `t`: header + data + zero padding.
fn forge(t: Target, level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
    let l = t.cmsg();
    let mut v = std::vec![0u8; l.space(data.len())];
    assert!(write_header(
        t,
        &mut v,
        Header {
            len: l.len(data.len()) as u64,
            level,
            ty
        }
    ));
    v[l.header_size()..l.header_size() + data.len()].copy_from_slice(data);
    v
}

type Walked = (Vec<(i32, i32, Vec<u8>)>, Option<WalkError>);

fn walk(t: Target, buf: &[u8], flags: MsgFlags) -> Walked {
    let mut ok = Vec::new();
    let mut err = None;
    for m in Walker::new(t, buf, buf.len(), flags) {
        match m {
            Ok(m) => ok.push((m.level, m.ty, m.data.to_vec())),
            Err(e) => {
                assert!(err.is_none(), "at most one error");
                err = Some(e)
            }
        }
    }
    (ok, err)
}

#[test]
fn round_trip_on_every_named_target() {
    for t in all_targets() {
        let mut buf = ControlBuf::<512>::new();
        let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
        b.push(1, 2, &[]).unwrap();
        b.push(-7, i32::MAX, &[1, 2, 3, 4, 5]).unwrap();
        b.timestamping(TimestampingFlags::TX_SOFTWARE | TimestampingFlags::TX_SCHED)
            .unwrap();
        let slot = b.zc_placeholder(3).unwrap();
        let c = b.finish();
        let l = t.cmsg();
        let want = l.space(0) + l.space(5) + l.space(4) + l.space(v8::zc_info_size(3));
        assert_eq!(c.len(), want, "{t:?}");
        assert_eq!(slot.offset, want - l.space(v8::zc_info_size(3)));
        let (msgs, err) = walk(t, c.as_bytes(), MsgFlags::empty());
        assert_eq!(err, None);
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0], (1, 2, Vec::new()));
        assert_eq!(msgs[1], (-7, i32::MAX, std::vec![1, 2, 3, 4, 5]));
        let s = t.family.socket();
        let flags = (1u32 << 1) | (1 << 8);
        let fb = match t.endian {
            Endian::Big => flags.to_be_bytes(),
            Endian::Little => flags.to_le_bytes(),
        };
        assert_eq!(msgs[2], (s.sol_socket, s.so_timestamping_old, fb.to_vec()));
        assert_eq!(
            (msgs[3].0, msgs[3].1),
            (s.sol_socket, v8::scm_zc_notification(t.family))
        );
        assert_eq!(msgs[3].2.len(), 4 + 3 * 12);
        assert_eq!(
            c.zc_outcome(c.len(), MsgFlags::empty()),
            Ok(ZcOutcome::Unwritten { capacity: 3 })
        );
    }
}

#[test]
fn builder_pads_with_zeros_and_refuses_without_writing() {
    let t = Arch::X86_64.target();
    let mut buf = ControlBuf::<40>::new();
    buf.as_mut_bytes().fill(0xee);
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
    b.push(1, 1, &[9]).unwrap();
    assert_eq!(
        b.push(1, 1, &[0; 9]),
        Err(BuildError::TooSmall {
            needed: 24 + 32,
            available: 40
        })
    );
    assert_eq!(b.len(), 24);
    let _ = b.finish();
    let bytes = buf.as_bytes();
    assert_eq!(&bytes[16..24], &[9, 0, 0, 0, 0, 0, 0, 0]);
    assert!(
        bytes[24..].iter().all(|&x| x == 0xee),
        "refused message wrote nothing"
    );
}

#[test]
fn a_message_that_exactly_fills_the_buffer_fits() {
    for t in all_targets() {
        let mut buf = ControlBuf::<512>::new();
        let space = t.cmsg().space(v8::zc_info_size(16));
        let mut b = ControlBuilder::new(t, &mut buf.as_mut_bytes()[..space]).unwrap();
        b.zc_placeholder(16).unwrap();
        assert_eq!(b.len(), space);
        assert_eq!(
            b.push(1, 1, &[]),
            Err(BuildError::TooSmall {
                needed: space + t.cmsg().space(0),
                available: space
            })
        );
    }
}

#[test]
fn builder_refuses_misaligned_buffers_and_bad_requests() {
    let mut buf = ControlBuf::<64>::new();
    let t = Arch::Aarch64.target();
    assert_eq!(
        ControlBuilder::new(t, &mut buf.as_mut_bytes()[4..]).err(),
        Some(BuildError::Misaligned {
            align: 8,
            offset: 4
        })
    );
    // 4 is enough for 32-bit layouts.
    assert!(ControlBuilder::new(Arch::Armv7.target(), &mut buf.as_mut_bytes()[4..]).is_ok());
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
    assert_eq!(
        b.zc_placeholder(0),
        Err(BuildError::ZcCapacity { capacity: 0 })
    );
    assert_eq!(
        b.zc_placeholder(17),
        Err(BuildError::ZcCapacity { capacity: 17 })
    );
    assert_eq!(
        b.timestamping(TimestampingFlags::OPT_ID | TimestampingFlags::TX_ACK),
        Err(BuildError::TimestampingFlags { invalid: 1 << 7 })
    );
    assert_eq!(
        b.push(1, 1, &[0; 64]),
        Err(BuildError::TooSmall {
            needed: 80,
            available: 64
        })
    );
    b.zc_placeholder(1).unwrap();
    assert_eq!(b.zc_placeholder(1), Err(BuildError::ZcTwice));
    assert!(b.finish().into_builder().is_empty());
}

#[test]
fn huge_data_is_too_long_not_a_panic() {
    let mut buf = ControlBuf::<16>::new();
    let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
    assert_eq!(
        b.reserve_for_test(usize::MAX),
        Err(BuildError::TooLong {
            data_len: usize::MAX
        })
    );
    // A 32-bit cmsg_len cannot describe 4 GiB of data, whatever the buffer.
    let mut b = ControlBuilder::new(Arch::I686.target(), buf.as_mut_bytes()).unwrap();
    let big = u32::MAX as usize;
    assert_eq!(
        b.reserve_for_test(big),
        Err(BuildError::TooLong { data_len: big })
    );
    // A 64-bit one can: the buffer is what is too small.
    #[cfg(target_pointer_width = "64")]
    {
        let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
        assert_eq!(
            b.reserve_for_test(1 << 33),
            Err(BuildError::TooSmall {
                needed: 16 + (1 << 33),
                available: 16
            })
        );
    }
}

#[test]
fn empty_until_a_message_is_written() {
    for t in all_targets() {
        let mut buf = ControlBuf::<64>::new();
        let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
        assert_eq!((b.is_empty(), b.len()), (true, 0));
        // Refused: still empty.
        assert!(b.push(1, 1, &[0; 64]).is_err());
        assert!(b.is_empty());
        let c = b.finish();
        assert!(c.is_empty() && c.as_bytes().is_empty());
        let mut b = c.into_builder();
        // A message without data still counts.
        b.push(1, 1, &[]).unwrap();
        assert!(!b.is_empty());
        let c = b.finish();
        assert!(!c.is_empty());
        assert_eq!(c.len(), t.cmsg().space(0));
        assert!(c.into_builder().is_empty());
    }
}

#[test]
fn the_raw_pointer_is_the_buffer_start() {
    // What a caller making the system call itself passes as msg_control.
    let mut buf = ControlBuf::<64>::new();
    let start = buf.as_mut_bytes().as_mut_ptr();
    let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
    b.push(1, 1, &[]).unwrap();
    let mut c = b.finish();
    assert_eq!(c.as_mut_ptr(), start);
}

#[test]
fn native_sizes_are_const() {
    const N: usize = zc_placeholder_space(16);
    let l = CmsgLayout::NATIVE;
    assert_eq!(N, l.header_size() + l.align_up(196));
}

#[test]
fn walker_reports_every_malformed_class_with_its_offset() {
    for t in all_targets() {
        let l = t.cmsg();
        let h = l.header_size();
        let good = forge(t, 1, 2, &[7; 5]);
        let off = good.len();

        // cmsg_len shorter than the header.
        let mut b = good.clone();
        b.extend(forge(t, 1, 2, &[]));
        write_header(
            t,
            &mut b[off..],
            Header {
                len: (h - 1) as u64,
                level: 1,
                ty: 2,
            },
        );
        let (ok, e) = walk(t, &b, MsgFlags::empty());
        assert_eq!(ok.len(), 1);
        assert_eq!(
            e,
            Some(WalkError {
                kind: WalkErrorKind::LenTooShort {
                    len: (h - 1) as u64
                },
                offset: off
            })
        );

        // cmsg_len past the end.
        let mut b = good.clone();
        b.extend(forge(t, 1, 2, &[1, 2, 3, 4]));
        write_header(
            t,
            &mut b[off..],
            Header {
                len: (h + 9) as u64,
                level: 1,
                ty: 2,
            },
        );
        let (_, e) = walk(t, &b, MsgFlags::empty());
        let remaining = h + l.align_up(4);
        assert_eq!(
            e,
            Some(WalkError {
                kind: WalkErrorKind::LenPastEnd {
                    len: (h + 9) as u64,
                    remaining
                },
                offset: off
            })
        );

        // Trailing garbage too short for a header.
        let mut b = good.clone();
        b.extend([0xff; 3]);
        let (ok, e) = walk(t, &b, MsgFlags::empty());
        assert_eq!(ok.len(), 1);
        assert_eq!(
            e,
            Some(WalkError {
                kind: WalkErrorKind::TrailingBytes { len: 3 },
                offset: off
            })
        );

        // MSG_CTRUNC: messages first, then the error at the end.
        let (ok, e) = walk(t, &good, MsgFlags::CTRUNC);
        assert_eq!(ok.len(), 1);
        assert_eq!(
            e,
            Some(WalkError {
                kind: WalkErrorKind::Truncated,
                offset: off
            })
        );

        // msg_controllen beyond the buffer.
        let mut w = Walker::new(t, &good, good.len() + 1, MsgFlags::empty());
        assert!(matches!(
            w.next(),
            Some(Err(WalkError {
                kind: WalkErrorKind::ControlLenPastBuffer { .. },
                offset: 0
            }))
        ));
        assert_eq!(w.next(), None);

        // The last message's padding may be cut (as the kernel's put_cmsg does).
        let cut = &good[..l.len(5)];
        let (ok, e) = walk(t, cut, MsgFlags::empty());
        assert_eq!((ok.len(), e), (1, None));
    }
}

#[test]
fn huge_64_bit_lengths_are_errors() {
    let t = Arch::X86_64.target();
    let mut b = forge(t, 1, 2, &[]);
    write_header(
        t,
        &mut b,
        Header {
            len: u64::MAX,
            level: 1,
            ty: 2,
        },
    );
    let (_, e) = walk(t, &b, MsgFlags::empty());
    // On a 64-bit host the length fits usize but runs past the end; on a
    // 32-bit host it does not fit at all.
    assert!(matches!(
        e.unwrap().kind,
        WalkErrorKind::LenPastEnd { len: u64::MAX, .. }
            | WalkErrorKind::LenOverflow { len: u64::MAX }
    ));
}

fn recverr(t: Target, level: i32, ty: i32, ee: Ee, tail: &[u8]) -> Vec<u8> {
    let mut d = ee_bytes(t.endian, ee).to_vec();
    d.extend_from_slice(tail);
    forge(t, level, ty, &d)
}

#[test]
fn errqueue_items_are_typed_on_every_target() {
    for t in all_targets() {
        let zc = Ee {
            errno: 0,
            origin: 5,
            ty: 0,
            code: 1,
            info: u32::MAX,
            data: 2,
        };
        let icmp = Ee {
            errno: 111,
            origin: 2,
            ty: 3,
            code: 3,
            info: 0,
            data: 0,
        };
        let mut b = recverr(t, 0, 11, zc, &[]);
        b.extend(recverr(t, 41, 25, Ee { code: 0, ..zc }, &[]));
        b.extend(recverr(t, 0, 11, icmp, &[2, 0, 0, 0, 127, 0, 0, 1]));
        b.extend(forge(t, 0, 8, &[1, 2, 3, 4]));
        let msgs: Vec<_> = Walker::new(t, &b, b.len(), MsgFlags::ERRQUEUE)
            .map(|m| m.unwrap())
            .collect();
        let items: Vec<_> = msgs
            .iter()
            .map(|m| decode_errqueue(t, m).unwrap())
            .collect();
        assert_eq!(
            items[0],
            ErrqueueItem::Zerocopy(ZcRange {
                lo: u32::MAX,
                hi: 2,
                copied: true
            })
        );
        assert_eq!(
            items[1],
            ErrqueueItem::Zerocopy(ZcRange {
                lo: u32::MAX,
                hi: 2,
                copied: false
            })
        );
        match items[2] {
            ErrqueueItem::Extended(x) => {
                assert_eq!(
                    (x.errno, x.origin(), x.ty, x.code),
                    (111, Some(ErrOrigin::Icmp), 3, 3)
                );
                assert_eq!(x.offender, &[2, 0, 0, 0, 127, 0, 0, 1]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            items[3],
            ErrqueueItem::Other(Cmsg {
                level: 0,
                ty: 8,
                ..
            })
        ));
    }
}

#[test]
fn zerocopy_origin_with_an_errno_is_not_a_completion() {
    let t = Arch::X86_64.target();
    let b = recverr(
        t,
        0,
        11,
        Ee {
            errno: 12,
            origin: 5,
            ty: 0,
            code: 0,
            info: 1,
            data: 2,
        },
        &[],
    );
    let m = Walker::new(t, &b, b.len(), MsgFlags::empty())
        .next()
        .unwrap()
        .unwrap();
    assert!(matches!(
        decode_errqueue(t, &m),
        Ok(ErrqueueItem::Extended(_))
    ));
}

#[test]
fn short_recverr_is_a_typed_error() {
    let t = Arch::Mips.target();
    let b = forge(t, 41, 25, &[0; 15]);
    let m = Walker::new(t, &b, b.len(), MsgFlags::empty())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        decode_errqueue(t, &m),
        Err(DecodeError::Short {
            message: (41, 25),
            needed: 16,
            got: 15
        })
    );
}

#[test]
fn timestamps_follow_word_size_and_byte_order() {
    for t in all_targets() {
        let s = t.family.socket();
        let old_field = if t.word == msgzc_abi::WordSize::W64 {
            8
        } else {
            4
        };
        for (ty, field) in [
            (s.so_timestamping_old, old_field),
            (s.so_timestamping_new, 8),
        ] {
            let mut d = Vec::new();
            for v in [1i64, 2, 0, 0, -3, 4] {
                let b = v.to_be_bytes();
                let l = v.to_le_bytes();
                match t.endian {
                    Endian::Big => d.extend_from_slice(&b[8 - field..]),
                    Endian::Little => d.extend_from_slice(&l[..field]),
                }
            }
            let b = forge(t, s.sol_socket, ty, &d);
            let m = Walker::new(t, &b, b.len(), MsgFlags::empty())
                .next()
                .unwrap()
                .unwrap();
            let ErrqueueItem::Timestamps(ts) = decode_errqueue(t, &m).unwrap() else {
                panic!()
            };
            assert_eq!(ts.ts, [(1, 2), (0, 0), (-3, 4)], "{t:?}");
            assert_eq!(ts.new, ty == s.so_timestamping_new);
        }
    }
}

/// Simulates a v8 kernel's answer: `ranges` written into the placeholder at
/// the start of the buffer, `msg_controllen` set to what it wrote.
pub(crate) fn kernel_writes(c: &mut Control<'_>, ranges: &[(u32, u32, u8)]) -> usize {
    let t = c.target();
    let slot = c.zc_slot().unwrap();
    let l = t.cmsg();
    let data_len = v8::zc_info_size(slot.capacity);
    let start = slot.offset + l.header_size();
    let mut data = c.as_bytes()[start..start + data_len].to_vec();
    // A misbehaving kernel may write more elements than there is room for.
    data.resize(data_len.max(4 + ranges.len() * 12), ZC_POISON);
    data[..4].copy_from_slice(&zc_info_bytes(t.endian, ranges.len() as u32));
    for (i, &(lo, hi, z)) in ranges.iter().enumerate() {
        let at = 4 + i * 12;
        let pad: [u8; 3] = data[at + 9..at + 12].try_into().unwrap();
        data[at..at + 12].copy_from_slice(&elem_bytes(t.endian, lo, hi, z, pad));
    }
    let level = t.family.socket().sol_socket;
    let msg = forge(t, level, v8::scm_zc_notification(t.family), &data);
    c.buffer_mut()[..msg.len()].copy_from_slice(&msg);
    msg.len()
}

#[test]
fn placeholder_states_are_told_apart() {
    type Case<'a> = (&'a [(u32, u32, u8)], Option<Vec<ZcRange>>);
    let r = |lo, hi, copied| ZcRange { lo, hi, copied };
    let cases: [Case<'_>; 3] = [
        // Zero completions written: not "unwritten".
        (&[], Some(Vec::new())),
        (
            &[(3, 9, 0), (u32::MAX, 1, 1)],
            Some(std::vec![r(3, 9, true), r(u32::MAX, 1, false)]),
        ),
        // Capacity fully used.
        (
            &[(0, 0, 1), (1, 1, 1), (2, 2, 0), (3, 3, 1)],
            Some(std::vec![
                r(0, 0, false),
                r(1, 1, false),
                r(2, 2, true),
                r(3, 3, false)
            ]),
        ),
    ];
    for t in all_targets() {
        for first in [true, false] {
            for (ranges, want) in &cases {
                let mut buf = ControlBuf::<512>::new();
                let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
                if !first {
                    b.timestamping(TimestampingFlags::TX_SOFTWARE).unwrap();
                }
                b.zc_placeholder(4).unwrap();
                let mut c = b.finish();
                assert_eq!(
                    c.zc_outcome(c.len(), MsgFlags::empty()),
                    Ok(ZcOutcome::Unwritten { capacity: 4 })
                );
                let n = kernel_writes(&mut c, ranges);
                let Ok(ZcOutcome::Written(done)) = c.zc_outcome(n, MsgFlags::empty()) else {
                    panic!("{t:?}")
                };
                assert_eq!(
                    Some(done.iter().collect::<Vec<_>>()),
                    *want,
                    "{t:?} first={first}"
                );
            }
        }
    }
}

#[test]
fn corrupt_answers_are_errors_never_completions() {
    let t = Arch::Powerpc.target();
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
    b.zc_placeholder(2).unwrap();
    let mut c = b.finish();
    let n = kernel_writes(&mut c, &[(1, 2, 7)]);
    assert_eq!(
        c.zc_outcome(n, MsgFlags::empty()),
        Err(ZcError::BadElement {
            index: 0,
            zerocopy: 7
        })
    );
    let n = kernel_writes(&mut c, &[(1, 2, 1), (3, 4, 1), (5, 6, 1)]);
    assert!(matches!(
        c.zc_outcome(n, MsgFlags::empty()),
        Err(ZcError::SizeChanged { .. })
    ));
    // Length beyond capacity.
    let hdr = t.cmsg().header_size();
    c.buffer_mut()[hdr..hdr + 4].copy_from_slice(&zc_info_bytes(t.endian, 3));
    assert_eq!(
        c.zc_outcome(c.len(), MsgFlags::empty()),
        Err(ZcError::LengthOverCapacity {
            length: 3,
            capacity: 2
        })
    );
    // Length 1 but element 1 disturbed.
    c.buffer_mut()[hdr..hdr + 4].copy_from_slice(&zc_info_bytes(t.endian, 1));
    c.buffer_mut()[hdr + 4 + 8] = 0;
    c.buffer_mut()[hdr + 4 + 12] = 0;
    assert_eq!(
        c.zc_outcome(c.len(), MsgFlags::empty()),
        Err(ZcError::PoisonDisturbed { index: 1 })
    );
    // msg_controllen changed but nothing recognisable came back.
    c.buffer_mut()[..hdr].fill(0);
    let bad = forge(t, 1, 1, &[]);
    c.buffer_mut()[..bad.len()].copy_from_slice(&bad);
    assert_eq!(
        c.zc_outcome(bad.len(), MsgFlags::empty()),
        Err(ZcError::Missing)
    );
}

#[test]
fn a_four_byte_ts_opt_id_lookalike_can_never_be_built() {
    // A mainline parisc kernel accepts exactly 4 data bytes of type 0x404C.
    let mut buf = ControlBuf::<64>::new();
    let mut b = ControlBuilder::new(Arch::Hppa.target(), buf.as_mut_bytes()).unwrap();
    assert!(b.zc_placeholder(0).is_err());
    let slot = b.zc_placeholder(1).unwrap();
    let c = b.finish();
    let data_len = c.as_bytes().len() - 12;
    assert_ne!(data_len, 4);
    assert_eq!(slot.capacity, 1);
}

#[test]
fn tracker_handles_wrapping_out_of_order_and_bogus_ranges() {
    let mut t = CompletionTracker::<u32, 8>::starting_at(u32::MAX - 2);
    let ids: Vec<u32> = (0..6).map(|k| t.register(k).unwrap()).collect();
    assert_eq!(ids, [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1, 2]);
    let mut got = Vec::new();
    let r = |lo, hi| ZcRange {
        lo,
        hi,
        copied: true,
    };
    // Ids never sent: refused, nothing released.
    assert_eq!(
        t.complete(r(2, 3), |_, k, _| got.push(k)),
        Err(CompletionError::NotOutstanding {
            range: r(2, 3),
            id: 3
        })
    );
    assert!(got.is_empty());
    t.complete(r(u32::MAX, 0), |_, k, _| got.push(k)).unwrap();
    assert_eq!(
        t.complete(r(0, 1), |_, k, _| got.push(k)),
        Err(CompletionError::AlreadyCompleted {
            range: r(0, 1),
            id: 0
        })
    );
    t.complete(r(u32::MAX - 2, u32::MAX - 1), |_, k, _| got.push(k))
        .unwrap();
    assert_eq!(t.outstanding(), 2);
    t.complete(
        ZcRange {
            lo: 1,
            hi: 2,
            copied: false,
        },
        |_, k, _| got.push(k),
    )
    .unwrap();
    assert_eq!(got, [2, 3, 0, 1, 4, 5]);
    assert_eq!(t.outstanding(), 0);
    let s = t.stats();
    assert_eq!(
        (s.sent, s.copied, s.zerocopy, s.ranges, s.copied_streak),
        (6, 4, 2, 3, 0)
    );
    // A range of 2^32 ids is refused quickly.
    assert!(t
        .complete(
            ZcRange {
                lo: 0,
                hi: u32::MAX,
                copied: true
            },
            |_, _, _| ()
        )
        .is_err());
}

#[test]
fn tracker_full_returns_the_token() {
    let mut t = CompletionTracker::<&str, 1>::new();
    t.register("a").unwrap();
    let full = |token| Refused {
        token,
        reason: Refusal::Full,
    };
    assert_eq!(t.register("b"), Err(full("b")));
    let mut z = CompletionTracker::<&str, 0>::new();
    assert_eq!(z.register("c"), Err(full("c")));
    assert_eq!(z.register_in_doubt("d"), Err(full("d")));
    assert!(z
        .complete(
            ZcRange {
                lo: 0,
                hi: 0,
                copied: true
            },
            |_, _, _| ()
        )
        .is_err());
}

#[test]
fn tracker_errors_say_which_ids() {
    let mut t = CompletionTracker::<u8, 2>::new();
    t.register(0).unwrap();
    t.register(1).unwrap();
    assert!(t.is_full());
    let full = t.register(2).unwrap_err();
    assert_eq!(
        full.to_string(),
        "completion tracker full: wait for completions before sending more"
    );
    let r = |lo, hi| ZcRange {
        lo,
        hi,
        copied: false,
    };
    let e = t.complete(r(1, 2), |_, _, _| ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "completion 1..=2 covers id 2, which is not outstanding"
    );
    // Id 1 completed while 0 is outstanding stays in the window.
    t.complete(r(1, 1), |_, _, _| ()).unwrap();
    let e = t.complete(r(0, 1), |_, _, _| ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "completion 0..=1 completes id 1 a second time"
    );
}

#[test]
fn advice_turns_after_a_streak_of_copies() {
    let mut t = CompletionTracker::<(), 128>::new();
    for _ in 0..64 {
        t.register(()).unwrap();
    }
    assert_eq!(t.advice(), Advice::KeepZerocopy);
    t.complete(
        ZcRange {
            lo: 0,
            hi: 63,
            copied: true,
        },
        |_, _, _| (),
    )
    .unwrap();
    assert_eq!(t.advice(), Advice::PreferCopy);
}

proptest! {
    #![proptest_config(crate::tests::proptest_config())]
    /// Any sequence of sends and (possibly bogus) ranges releases each token
    /// at most once, and exactly once when every id's range arrives.
    #[test]
    fn tracker_releases_each_token_at_most_once(
        start in any::<u32>(),
        ops in proptest::collection::vec((0u8..3, any::<u8>(), 0u8..6, any::<bool>()), 0..200),
    ) {
        let mut t = CompletionTracker::<u64, 16>::starting_at(start);
        let mut next_token = 0u64;
        let mut released = std::collections::BTreeSet::new();
        let mut sent = std::collections::BTreeMap::new();
        for (op, a, len, copied) in ops {
            match op {
                0 => {
                    if let Ok(id) = t.register(next_token) {
                        sent.insert(id, next_token);
                    }
                    next_token += 1;
                }
                _ => {
                    let lo = start.wrapping_add(u32::from(a) % 24);
                    let range = ZcRange { lo, hi: lo.wrapping_add(u32::from(len)), copied };
                    let before = released.len();
                    let res = t.complete(range, |id, tok, c| {
                        assert_eq!(c, copied);
                        assert_eq!(sent.get(&id), Some(&tok));
                        assert!(released.insert(tok), "token released twice");
                    });
                    match res {
                        Ok(n) => prop_assert_eq!(n as u64, range.count()),
                        Err(_) => prop_assert_eq!(released.len(), before),
                    }
                }
            }
            prop_assert_eq!(t.outstanding(), sent.len() - released.len());
        }
        // Complete everything still outstanding, one id at a time.
        for (&id, _) in sent.iter() {
            let _ = t.complete(ZcRange { lo: id, hi: id, copied: false }, |_, tok, _| { released.insert(tok); });
        }
        prop_assert_eq!(released.len(), sent.len());
        prop_assert_eq!(t.outstanding(), 0);
    }

    /// The walker never panics and always terminates on arbitrary input.
    #[test]
    fn walker_total_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<u16>(), arch in 0usize..15, flags in any::<u32>()) {
        let t = Arch::ALL[arch].target();
        let n = Walker::new(t, &bytes, usize::from(cut) % (bytes.len() + 2), MsgFlags::from_bits_retain(flags)).take(1000).count();
        prop_assert!(n <= bytes.len() / t.cmsg().header_size() + 1);
    }
}

#[test]
fn apply_errqueue_applies_every_usable_message_and_keeps_the_first_error() {
    let zc = |lo, hi, code| Ee {
        errno: 0,
        origin: 5,
        ty: 0,
        code,
        info: lo,
        data: hi,
    };
    let icmp = Ee {
        errno: 111,
        origin: 2,
        ty: 3,
        code: 3,
        info: 0,
        data: 0,
    };
    for t in all_targets() {
        let mut tracker = CompletionTracker::<char, 8>::new();
        for c in ['a', 'b', 'c', 'd'] {
            tracker.register(c).unwrap();
        }
        // 0..=1 copied, an ICMP error, 5 (never sent), 2, a short
        // IP_RECVERR, then 3: the refusal is the first error, and every
        // good message on either side of the bad ones is applied.
        let mut b = recverr(t, 0, 11, zc(0, 1, 1), &[]);
        b.extend(recverr(t, 0, 11, icmp, &[2, 0, 0, 0, 127, 0, 0, 1]));
        b.extend(recverr(t, 0, 11, zc(5, 5, 0), &[]));
        b.extend(recverr(t, 0, 11, zc(2, 2, 0), &[]));
        b.extend(forge(t, 0, 11, &[0; 8]));
        b.extend(recverr(t, 0, 11, zc(3, 3, 0), &[]));
        let (mut freed, mut others) = (Vec::new(), 0);
        let r = apply_errqueue(
            &mut tracker,
            t,
            &b,
            b.len(),
            MsgFlags::ERRQUEUE,
            |id, tok, copied| freed.push((id, tok, copied)),
            |_| others += 1,
        );
        assert_eq!((r.ranges, r.released, r.other), (4, 4, 1), "{t:?}");
        assert_eq!(others, 1);
        assert_eq!(
            freed,
            [
                (0, 'a', true),
                (1, 'b', true),
                (2, 'c', false),
                (3, 'd', false)
            ]
        );
        let refused = CompletionError::NotOutstanding {
            range: ZcRange {
                lo: 5,
                hi: 5,
                copied: false,
            },
            id: 5,
        };
        assert_eq!(r.error, Some(ApplyError::Completion(refused)));
        assert_eq!(tracker.outstanding(), 0);
    }
}

#[test]
fn apply_errqueue_reports_decode_and_walk_errors() {
    let t = Arch::Mips.target();
    let mut tracker = CompletionTracker::<u8, 4>::new();
    tracker.register(7).unwrap();
    // A short IP_RECVERR first, then a completion, then a header whose
    // length runs past the end: the decode error is the one reported.
    let mut b = forge(t, 0, 11, &[0; 8]);
    b.extend(recverr(
        t,
        0,
        11,
        Ee {
            errno: 0,
            origin: 5,
            ty: 0,
            code: 0,
            info: 0,
            data: 0,
        },
        &[],
    ));
    let mut tail = forge(t, 1, 2, &[]);
    let header = Header {
        len: 4096,
        level: 1,
        ty: 2,
    };
    assert!(write_header(t, &mut tail, header));
    b.extend(&tail);
    let mut freed = Vec::new();
    let r = apply_errqueue(
        &mut tracker,
        t,
        &b,
        b.len(),
        MsgFlags::ERRQUEUE,
        |_, tok, _| freed.push(tok),
        |_| {},
    );
    assert_eq!(
        (r.ranges, r.released, r.other, freed),
        (1, 1, 0, std::vec![7])
    );
    let Some(ApplyError::Decode(e)) = r.error else {
        panic!("{:?}", r.error)
    };
    assert_eq!(ApplyError::Decode(e).to_string(), e.to_string());
    // Only the bad header: the walk error, in its own words.
    let r = apply_errqueue(
        &mut tracker,
        t,
        &tail,
        tail.len(),
        MsgFlags::empty(),
        |_, _, _| {},
        |_| {},
    );
    let Some(ApplyError::Walk(w)) = r.error else {
        panic!("{:?}", r.error)
    };
    assert!(matches!(
        w.kind,
        WalkErrorKind::LenPastEnd { len: 4096, .. }
    ));
    assert_eq!(ApplyError::Walk(w).to_string(), w.to_string());
    let c = CompletionError::AlreadyCompleted {
        range: ZcRange {
            lo: 0,
            hi: 0,
            copied: false,
        },
        id: 0,
    };
    assert_eq!(ApplyError::Completion(c).to_string(), c.to_string());
    assert_eq!(
        r,
        Applied {
            error: r.error,
            ..Applied::default()
        }
    );
}

#[test]
fn settling_a_send_in_doubt_as_unconsumed_frees_its_id_for_the_next_send() {
    let mut t = CompletionTracker::<char, 4>::starting_at(u32::MAX);
    t.register('a').unwrap();
    assert_eq!(t.register_in_doubt('b'), Ok(0));
    assert_eq!(t.settle_unconsumed(), Some('b'));
    assert_eq!(t.settle_unconsumed(), None);
    assert_eq!((t.outstanding(), t.next_id(), t.stats().sent), (1, 0, 1));
    // The id the failed send would have held is the next send's.
    assert_eq!(t.register('c'), Ok(0));
    let mut freed = Vec::new();
    let range = ZcRange {
        lo: u32::MAX,
        hi: 0,
        copied: false,
    };
    assert_eq!(t.complete(range, |id, tok, _| freed.push((id, tok))), Ok(2));
    assert_eq!(freed, [(u32::MAX, 'a'), (0, 'c')]);
    assert_eq!((t.outstanding(), t.stats().sent), (0, 2));
}

#[test]
fn outstanding_tokens_are_taken_in_id_order_from_a_wrapped_window() {
    let mut t = CompletionTracker::<char, 4>::new();
    for c in ['a', 'b', 'c', 'd'] {
        t.register(c).unwrap();
    }
    let done = |lo, hi| ZcRange {
        lo,
        hi,
        copied: false,
    };
    // The window's head moves to slot 2; e and f wrap to slots 0 and 1;
    // d completes out of order and is skipped.
    t.complete(done(0, 1), |_, _, _| {}).unwrap();
    t.register('e').unwrap();
    t.register('f').unwrap();
    t.complete(done(3, 3), |_, _, _| {}).unwrap();
    t.register_in_doubt('g').unwrap_err();
    let mut left = Vec::new();
    t.take_outstanding(|id, tok| left.push((id, tok)));
    assert_eq!(left, [(2, 'c'), (4, 'e'), (5, 'f')]);
    assert_eq!((t.outstanding(), t.next_id(), t.in_doubt()), (0, 6, None));
    // The window is empty and whole again, starting at the next id.
    for (k, c) in ['h', 'i', 'j', 'k'].into_iter().enumerate() {
        assert_eq!(t.register(c), Ok(6 + k as u32));
    }
}

#[test]
fn leaked_tokens_are_counted_and_never_dropped() {
    use core::cell::Cell;
    /// Counts its drops; no heap, so leaking it leaks nothing under Miri.
    #[derive(Debug)]
    struct Counted<'a>(&'a Cell<u32>);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Cell::new(0);
    let mut t = CompletionTracker::<Counted<'_>, 4>::new();
    for _ in 0..3 {
        t.register(Counted(&drops)).unwrap();
    }
    assert_eq!(t.leak_outstanding(), 3);
    assert_eq!(drops.get(), 0);
    assert_eq!((t.outstanding(), t.next_id()), (0, 3));
    assert_eq!(t.leak_outstanding(), 0);
    drop(t);
    assert_eq!(drops.get(), 0);
}

#[test]
fn room_is_the_window_left_and_none_while_in_doubt() {
    let mut t = CompletionTracker::<(), 4>::new();
    assert_eq!(t.room(), 4);
    t.register(()).unwrap();
    assert_eq!(t.room(), 3);
    t.register(()).unwrap();
    assert_eq!(t.room(), 2);
    t.register_in_doubt(()).unwrap();
    assert_eq!(t.room(), 0);
}

/// `UDP_SEGMENT` on every target: the message a C sender would build,
/// `SOL_UDP`/`UDP_SEGMENT` with the size as a `u16` in the target's order.
#[test]
fn udp_segment_matches_a_hand_built_message_on_every_target() {
    for t in all_targets() {
        let mut buf = ControlBuf::<64>::new();
        let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
        b.udp_segment(0x1234).unwrap();
        let c = b.finish();
        let size = match t.endian {
            Endian::Big => 0x1234u16.to_be_bytes(),
            Endian::Little => 0x1234u16.to_le_bytes(),
        };
        let n = t.numbers();
        assert_eq!((n.sol_udp, n.udp_segment), (17, 103), "{t:?}");
        assert_eq!(c.as_bytes(), &forge(t, 17, 103, &size)[..], "{t:?}");
    }
}
