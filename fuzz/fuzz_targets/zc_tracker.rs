//! Arbitrary interleavings of sends and completion ranges (in order, out of
//! order, coalesced, duplicated, wrapping, bogus) against a model of the
//! kernel's id counter. Invariants: a token is released once, only when a
//! range covering its id is accepted, with that range's `copied` bit; a
//! refused range releases nothing; the accounting always matches the model.
//! Sends in doubt (a failed send the kernel may have counted) block
//! registration until a range covers them or they are settled as never
//! counted, which gives the token and the id back.
#![no_main]

mod input;

use input::Input;
use libfuzzer_sys::fuzz_target;
use msgzc_cmsg::{CompletionError, CompletionTracker, Refusal, Refused, ZcRange};

const N: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Outstanding(u64),
    Released,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    // Start near the wrap point half of the time.
    let first = match input.u8() % 4 {
        0 => 0,
        1 => u32::MAX - u32::from(input.u8() % 16),
        _ => input.u32(),
    };
    let mut t = CompletionTracker::<u64, N>::starting_at(first);
    // sends[i] is the send with id first + i.
    let mut sends: Vec<State> = Vec::new();
    let mut next_token = 0u64;
    let mut released_tokens = std::collections::HashSet::new();
    let (mut accepted, mut zerocopy, mut copied) = (0u64, 0u64, 0u64);
    // Index in `sends` of the send in doubt.
    let mut doubt: Option<usize> = None;

    while !input.is_empty() {
        let op = input.u8();
        // The window: from the oldest outstanding send to the next id.
        let oldest = sends
            .iter()
            .position(|s| matches!(s, State::Outstanding(_)));
        let window = oldest.map_or(0, |o| sends.len() - o);
        if op % 16 == 15 {
            // Settle the send in doubt as never counted: the last send.
            let back = t.settle_unconsumed();
            match doubt.take() {
                Some(i) => {
                    assert_eq!(i + 1, sends.len(), "the send in doubt is the last");
                    let State::Outstanding(token) = sends[i] else {
                        panic!("send in doubt {i} not outstanding")
                    };
                    assert_eq!(back, Some(token));
                    sends.pop();
                }
                None => assert_eq!(back, None, "settled without a send in doubt"),
            }
        } else if op % 2 == 0 {
            // Now and then a failed send whose id may have been kept.
            let in_doubt = op % 16 == 14;
            let token = next_token;
            next_token += 1;
            let r = if in_doubt {
                t.register_in_doubt(token)
            } else {
                t.register(token)
            };
            match r {
                Ok(id) => {
                    assert!(window < N, "registered into a full window");
                    assert!(doubt.is_none(), "registered while in doubt");
                    assert_eq!(id, first.wrapping_add(sends.len() as u32));
                    if in_doubt {
                        doubt = Some(sends.len());
                    }
                    sends.push(State::Outstanding(token));
                }
                Err(Refused {
                    token: back,
                    reason,
                }) => {
                    match reason {
                        Refusal::InDoubt { id } => {
                            let i = doubt.expect("refused as in doubt without one");
                            assert_eq!(id, first.wrapping_add(i as u32));
                        }
                        _ => {
                            assert!(doubt.is_none(), "in doubt but refused otherwise");
                            assert_eq!(window, N, "refused with room in the window");
                        }
                    }
                    assert_eq!(back, token, "a refused token must come back");
                }
            }
        } else {
            // Ranges anchored near the sends so far, sometimes far off.
            let base = first.wrapping_add(sends.len() as u32);
            let lo = match op % 8 {
                1 => input.u32(),
                _ => base.wrapping_sub(u32::from(input.u8() % 24)),
            };
            let hi = match input.u8() % 8 {
                0 => input.u32(),
                k => lo.wrapping_add(u32::from(k) - 1),
            };
            let range = ZcRange {
                lo,
                hi,
                copied: op & 0x80 != 0,
            };
            // Valid iff every id in it is an outstanding send.
            let sent = sends.len();
            let index = move |id: u32| {
                let i = id.wrapping_sub(first) as usize;
                (i < sent).then_some(i)
            };
            let valid = range.count() <= sends.len() as u64
                && range
                    .ids()
                    .all(|id| index(id).is_some_and(|i| matches!(sends[i], State::Outstanding(_))));
            let before = t.outstanding();
            let mut got = Vec::new();
            let r = t.complete(range, |id, token, c| got.push((id, token, c)));
            match r {
                Ok(n) => {
                    assert!(valid, "accepted {range:?}");
                    assert_eq!(n as u64, range.count());
                    assert_eq!(got.len(), n);
                    for (k, &(id, token, c)) in got.iter().enumerate() {
                        assert_eq!(id, lo.wrapping_add(k as u32), "released out of id order");
                        assert_eq!(c, range.copied);
                        let i = index(id).expect("checked valid");
                        assert_eq!(
                            sends[i],
                            State::Outstanding(token),
                            "wrong token for id {id}"
                        );
                        assert!(
                            released_tokens.insert(token),
                            "token {token} released twice"
                        );
                        sends[i] = State::Released;
                        if doubt == Some(i) {
                            // A completion covering it: the kernel kept it.
                            doubt = None;
                        }
                    }
                    accepted += 1;
                    if range.copied {
                        copied += n as u64;
                    } else {
                        zerocopy += n as u64;
                    }
                }
                Err(e) => {
                    assert!(!valid, "refused valid {range:?}: {e}");
                    assert!(got.is_empty(), "a refused range released tokens");
                    assert_eq!(t.outstanding(), before);
                    let (CompletionError::NotOutstanding { range: er, id }
                    | CompletionError::AlreadyCompleted { range: er, id }) = e;
                    assert_eq!(er, range);
                    assert!(range.contains(id), "error names id {id} outside {range:?}");
                    let bad = index(id).map(|i| sends[i]);
                    assert!(
                        !matches!(bad, Some(State::Outstanding(_))),
                        "error names outstanding id {id}"
                    );
                    if let CompletionError::AlreadyCompleted { .. } = e {
                        assert_eq!(bad, Some(State::Released));
                    }
                }
            }
        }
        let outstanding = sends
            .iter()
            .filter(|s| matches!(s, State::Outstanding(_)))
            .count();
        assert_eq!(t.outstanding(), outstanding);
        assert_eq!(t.in_doubt(), doubt.map(|i| first.wrapping_add(i as u32)));
        assert_eq!(t.next_id(), first.wrapping_add(sends.len() as u32));
        let oldest = sends
            .iter()
            .position(|s| matches!(s, State::Outstanding(_)));
        assert_eq!(t.is_full(), oldest.map_or(0, |o| sends.len() - o) == N);
        let s = t.stats();
        assert_eq!(s.sent, sends.len() as u64);
        assert_eq!(
            (s.ranges, s.zerocopy, s.copied),
            (accepted, zerocopy, copied)
        );
    }
});
