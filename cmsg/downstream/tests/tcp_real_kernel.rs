//! 64 MiB over TCP on the host kernel's loopback with owned buffers, the
//! socket non-blocking and its send buffer small so that sends are taken
//! in parts; the receiver checks every byte.

use msgzc_cmsg::sys::ZcSender;
use msgzc_downstream::{byte_at, stream};
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;

const TOTAL: u64 = 64 << 20;

fn small_sndbuf(s: &TcpStream, bytes: libc::c_int) -> io::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = (&bytes as *const libc::c_int).cast();
    // SAFETY: setsockopt reads one c_int from a live local.
    let r = unsafe { libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, ptr, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[test]
fn tcp_64_mib_real_kernel_owned_buffers_with_partial_sends_every_byte_checked() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (mut server, _) = listener.accept()?;
    let reader = thread::spawn(move || -> io::Result<u64> {
        let (mut at, mut buf) = (0u64, vec![0u8; 1 << 16]);
        loop {
            let n = server.read(&mut buf)?;
            if n == 0 {
                return Ok(at);
            }
            for &b in &buf[..n] {
                assert_eq!(b, byte_at(at), "byte {at} differs");
                at += 1;
            }
        }
    });
    client.set_nonblocking(true)?;
    small_sndbuf(&client, 64 << 10)?;
    let mut zc = ZcSender::<_, Vec<u8>>::new(client)?;
    let n = stream(&mut zc, TOTAL, 16, 256 << 10)?;
    assert!(n.partial > 0, "no partial send: {n:?}");
    let stats = zc.socket().tracker().stats();
    println!("{n:?}; {stats:?}; {:?}", zc.socket().syscalls());
    drop(zc);
    assert_eq!(reader.join().unwrap()?, TOTAL);
    Ok(())
}
