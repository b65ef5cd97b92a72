//! `bench --async-tcp` (feature `async-bench`): TCP over loopback from a
//! tokio task with [`AsyncZcSender`](msgzc_cmsg::sys::tokio::AsyncZcSender),
//! against tokio's own `write_all` and against the blocking [`ZcSocket`]
//! (`zc-drain`), at each `--size`, in interleaved rounds:
//!
//! - `tokio-zc`: `AsyncZcSender::send` of one shared buffer (`Arc<[u8]>`)
//!   on a current-thread runtime, buffers collected as they come back;
//! - `tokio-write_all`: `AsyncWriteExt::write_all` on a tokio `TcpStream`
//!   *without* `SO_ZEROCOPY` (on a socket with it, tokio's own writes spin
//!   after the first completion: see `msgzc_cmsg::sys::tokio`);
//! - `blocking-zc`: [`ZcSocket::send`] on a blocking socket, the error
//!   queue drained every `--interval` sends (the `zc-drain` mode);
//! - `blocking-copy`: plain blocking `send` (a reference).
//!
//! Each run has its own runtime and connection; the receiver is a plain
//! thread that reads everything. The sender's CPU time is its thread's,
//! which for a current-thread runtime includes the reactor.
//!
//! [`ZcSocket`]: msgzc_cmsg::sys::ZcSocket
//! [`ZcSocket::send`]: msgzc_cmsg::sys::ZcSocket::send

use super::rounds::{self, Common};
use std::process::ExitCode;

/// The largest `--size`: what one send may carry.
const MAX_SIZE: usize = 1 << 20;

// Only the tokio runs (feature `async-bench`) use the modes.
#[cfg_attr(not(feature = "async-bench"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    TokioZc,
    TokioWriteAll,
    BlockingZc,
    BlockingCopy,
}

#[cfg_attr(not(feature = "async-bench"), allow(dead_code))]
impl Mode {
    const ALL: [Mode; 4] = [
        Mode::TokioZc,
        Mode::TokioWriteAll,
        Mode::BlockingZc,
        Mode::BlockingCopy,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::TokioZc => "tokio-zc",
            Mode::TokioWriteAll => "tokio-write_all",
            Mode::BlockingZc => "blocking-zc",
            Mode::BlockingCopy => "blocking-copy",
        }
    }
}

/// `bench --async-tcp` (feature `async-bench`): tokio's zerocopy sender
/// against tokio's `write_all` and the blocking socket, in interleaved
/// rounds.
#[derive(Clone, Debug, clap::Args)]
pub(super) struct Opts {
    #[command(flatten)]
    common: Common,
    /// Payload sizes, one table row each.
    #[arg(long = "size", value_name = "BYTES,..", value_delimiter = ',',
          default_value = "8192,65536", value_parser = rounds::number_in(1, MAX_SIZE))]
    sizes: Vec<usize>,
    /// Sends between drains of the blocking zerocopy sender.
    #[arg(long, default_value_t = 32, value_parser = rounds::number_in(1, super::WINDOW))]
    interval: usize,
}

/// The `--async-tcp` bench.
pub(super) fn main(o: &Opts) -> ExitCode {
    run(o)
}

#[cfg(not(feature = "async-bench"))]
fn run(_: &Opts) -> ExitCode {
    eprintln!("bench --async-tcp: built without the async-bench feature (cargo run --features async-bench)");
    ExitCode::from(2)
}

#[cfg(feature = "async-bench")]
fn run(o: &Opts) -> ExitCode {
    tokio_runs::run(o)
}

#[cfg(feature = "async-bench")]
mod tokio_runs {
    use super::super::rounds::{self, Rounds, Run, Spread};
    use super::{Mode, Opts};
    use msgzc_cmsg::sys::tokio::AsyncZcSender;
    use msgzc_conformance_agent::bench::engine;
    use msgzc_conformance_protocol::bench::{Measured, Mode as BenchMode, Proto, WINDOW};
    use std::fmt::Write as _;
    use std::net::{SocketAddr, TcpStream};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;

    /// A blocking sender of the main bench, as a [`Run`] with the thread's
    /// CPU time.
    fn blocking(s: &TcpStream, mode: Mode, payload: &[u8], o: &Opts) -> Result<Run, String> {
        let cpu0 = rounds::thread_cpu();
        let m: Measured = match mode {
            Mode::BlockingZc => {
                engine::run_zc(s, BenchMode::Drain, payload, o.interval, o.common.secs)?
            }
            _ => engine::run_copy(s, payload, o.common.secs)?,
        };
        Ok(Run {
            units: m.bytes,
            bytes: m.bytes,
            sends: m.sends,
            secs: m.secs,
            cpu: rounds::thread_cpu() - cpu0,
            calls: Some(m.calls.total()),
            copied: m.copied,
            completions: m.copied + m.zerocopy,
        })
    }

    /// `AsyncZcSender` for `secs`, then every buffer back.
    async fn tokio_zc(
        s: tokio::net::TcpStream,
        payload: Arc<[u8]>,
        secs: f64,
    ) -> Result<Run, String> {
        let mut zc =
            AsyncZcSender::<_, Arc<[u8]>>::with_window(s, WINDOW).map_err(|e| e.to_string())?;
        let mut run = Run::default();
        let (start, cpu0) = (Instant::now(), rounds::thread_cpu());
        while start.elapsed().as_secs_f64() < secs {
            zc.send(payload.clone()).await.map_err(|e| e.to_string())?;
            run.bytes += payload.len() as u64;
            run.sends += 1;
            // Returned buffers are dropped: they are all the same one.
            zc.completed().map_err(|e| e.to_string())?.for_each(drop);
        }
        while zc
            .next_completed()
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {}
        run.secs = start.elapsed().as_secs_f64();
        run.cpu = rounds::thread_cpu() - cpu0;
        run.units = run.bytes;
        let s = zc.sender().socket().tracker().stats();
        (run.copied, run.completions) = (s.copied, s.copied + s.zerocopy);
        let (w, c) = (zc.wait_counts(), zc.sender().socket().syscalls());
        // Each wakeup reads the watcher's events: one `epoll_wait`.
        run.calls = Some(c.sendmsg + c.recvmmsg + c.poll + w.wakeups);
        eprintln!(
            "  tokio-zc: {} wakeups ({} stale) for {} sends",
            w.wakeups, w.empty, run.sends
        );
        let closed = zc.close(Duration::from_secs(5)).await;
        if !closed.unconfirmed.is_empty() {
            return Err(format!(
                "{} buffers never came back",
                closed.unconfirmed.len()
            ));
        }
        Ok(run)
    }

    /// tokio's `write_all` (no `SO_ZEROCOPY`) for `secs`.
    async fn tokio_write_all(
        mut s: tokio::net::TcpStream,
        payload: &[u8],
        secs: f64,
    ) -> Result<Run, String> {
        let mut run = Run::default();
        let (start, cpu0) = (Instant::now(), rounds::thread_cpu());
        while start.elapsed().as_secs_f64() < secs {
            s.write_all(payload)
                .await
                .map_err(|e| format!("write_all: {e}"))?;
            run.bytes += payload.len() as u64;
            run.sends += 1;
        }
        run.secs = start.elapsed().as_secs_f64();
        run.cpu = rounds::thread_cpu() - cpu0;
        run.units = run.bytes;
        Ok(run)
    }

    /// A tokio mode on its own current-thread runtime.
    fn on_tokio(s: TcpStream, mode: Mode, payload: Vec<u8>, secs: f64) -> Result<Run, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        rt.block_on(async move {
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            let s = tokio::net::TcpStream::from_std(s).map_err(|e| e.to_string())?;
            match mode {
                Mode::TokioZc => tokio_zc(s, payload.into(), secs).await,
                _ => tokio_write_all(s, &payload, secs).await,
            }
        })
    }

    fn one(o: &Opts, mode: Mode, size: usize) -> Result<Run, String> {
        let o = o.clone();
        rounds::with_receiver(Proto::Tcp4, o.common.cpu, move |to: SocketAddr| {
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            let payload = vec![0x5au8; size];
            match mode {
                Mode::TokioZc | Mode::TokioWriteAll => on_tokio(s, mode, payload, o.common.secs),
                _ => blocking(&s, mode, &payload, &o),
            }
        })
    }

    fn mb_per_s(r: &Run) -> f64 {
        r.bytes as f64 / 1e6 / r.secs
    }

    fn cpu_ms_per_mb(r: &Run) -> f64 {
        r.cpu * 1e3 / (r.bytes as f64 / 1e6).max(1e-9)
    }

    fn rows(t: &mut String, size: usize, r: &Rounds) {
        for (i, mode) in Mode::ALL.iter().enumerate() {
            let total = r.total(i);
            let failed = r.failures(i).map_or(String::new(), |e| format!(" ({e})"));
            let vs = |f: fn(&Run) -> f64| match i {
                0 => "-".to_string(),
                _ => Spread::text(r.ratio(0, i, f), 2),
            };
            let calls = match total.calls {
                Some(c) => format!("{:.3}", c as f64 / total.sends.max(1) as f64),
                None => "-".into(),
            };
            let copied = match total.completions {
                0 => "-".into(),
                n => format!("{}/{n}", total.copied),
            };
            let _ = writeln!(
                t,
                "| {size} | {}{failed} | {} | {} | {} | {} | {calls} | {copied} |",
                mode.name(),
                Spread::text(r.each(i, mb_per_s), 0),
                vs(mb_per_s),
                Spread::text(r.each(i, cpu_ms_per_mb), 3),
                vs(cpu_ms_per_mb),
            );
        }
    }

    fn markdown(o: &Opts, all: &[(usize, Rounds)], load: (&str, &str)) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{}\n", rounds::machine(load));
        let sizes: Vec<String> = o.sizes.iter().map(usize::to_string).collect();
        let _ = writeln!(
            t,
            "Command: `cargo run --release -p msgzc-conformance --features async-bench -- bench --async-tcp \
             --size {} --interval {} {}`\n",
            sizes.join(","),
            o.interval,
            o.common.args()
        );
        t.push_str(
            "| payload | sender | MB/s, median (range) | tokio-zc's MB/s over this | \
             sender CPU ms/MB, median (range) | tokio-zc's CPU/MB over this | syscalls/send | copied completions |\n",
        );
        t.push_str("|---|---|---|---|---|---|---|---|\n");
        for (size, r) in all {
            rows(&mut t, *size, r);
        }
        let _ = writeln!(
            t,
            "\nEach of {} rounds runs every sender for {} s per payload, in an order rotated each round, \
             each on a fresh TCP connection over loopback (IPv4) to a receiver thread that reads \
             everything; ratios divide tokio-zc by the other sender of the same round, median and range \
             over the rounds. Sender CPU: the sending thread's user and system time per MB sent (for the \
             tokio senders, the current-thread runtime and its reactor), which includes loopback's \
             receive path and, for zerocopy, the deferred copy that completes every send on loopback. \
             Syscalls per send (a send is one payload handed over, however many calls it took): \
             `sendmsg`, error-queue reads and polls, and for tokio-zc one `epoll_wait` of its watcher per \
             wakeup (tokio's own `epoll_wait` is not counted; tokio's `write_all` is not counted at all).",
            o.common.rounds, o.common.secs
        );
        t
    }

    pub(super) fn run(o: &Opts) -> ExitCode {
        if let Err(e) = msgzc_cmsg::sys::loopback_up() {
            eprintln!("bench: note: could not bring lo up: {e}");
        }
        let before = rounds::loadavg();
        println!(
            "msgzc bench --async-tcp: payloads {:?}, {} s per run, {} rounds, load {before}",
            o.sizes, o.common.secs, o.common.rounds
        );
        let all: Vec<(usize, Rounds)> = o
            .sizes
            .iter()
            .map(|&size| {
                let r = rounds::interleave(
                    o.common.rounds,
                    Mode::ALL.len(),
                    |i| one(o, Mode::ALL[i], size),
                    |i, r| match r {
                        Ok(m) => format!(
                            "{size:>6} {:<16} {:>8.0} MB/s  {:.3} CPU ms/MB",
                            Mode::ALL[i].name(),
                            mb_per_s(m),
                            cpu_ms_per_mb(m)
                        ),
                        Err(e) => format!("{size:>6} {:<16} failed: {e}", Mode::ALL[i].name()),
                    },
                );
                (size, r)
            })
            .collect();
        let table = markdown(o, &all, (&before, &rounds::loadavg()));
        println!("\n{table}");
        if let Err(e) = rounds::write_markdown(&o.common, &table) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        let failed = all
            .iter()
            .any(|(_, r)| (0..Mode::ALL.len()).any(|i| r.failures(i).is_some()));
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the binary parses them.
    fn parse(s: &str) -> Result<Opts, String> {
        match super::super::tests::parse(&format!("--async-tcp {s}"))?.rounds {
            Some(super::super::RoundsBench::AsyncTcp(o)) => Ok(o),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn parses_sizes_and_interval() {
        let o = parse("--size 8192,65536 --interval 8 --secs 0.5").unwrap();
        assert_eq!(
            (o.sizes, o.interval, o.common.secs),
            (vec![8192, 65536], 8, 0.5)
        );
        let d = parse("").unwrap();
        assert_eq!(
            (d.sizes, d.interval, d.common.rounds),
            (vec![8192, 65536], 32, 5)
        );
        assert!(parse("--size 0").is_err());
        assert!(parse("--interval 1,2").is_err());
        assert!(parse("--interval 0").is_err());
        assert!(parse("--bogus").is_err());
    }
}
