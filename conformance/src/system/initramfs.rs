//! The initramfs: a newc archive written in memory, without root or `cpio`.

/// One newc (`070701`) entry.
fn newc_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
    let namesize = name.len() + 1;
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        if mode & 0o170000 == 0o040000 { 2 } else { 1 },
        0, // mtime: reproducible archives
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        namesize as u32,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// An uncompressed newc initramfs holding `init` as `/init` (mode 0755),
/// `/dev/console` (c 5 1), `/dev/null` (c 1 3) and empty `/proc`, `/sys`.
/// Written in memory: no root, no `cpio`.
/// `extra` adds executables (mode 0755) at top-level names after `init`.
pub fn initramfs_with(init: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    const DIR: u32 = 0o040755;
    const CHR: u32 = 0o020000;
    let size: usize = extra.iter().map(|(_, d)| d.len()).sum();
    let mut out = Vec::with_capacity(init.len() + size + 1024);
    newc_entry(&mut out, 1, "dev", DIR, (0, 0), &[]);
    newc_entry(&mut out, 2, "dev/console", CHR | 0o600, (5, 1), &[]);
    newc_entry(&mut out, 3, "dev/null", CHR | 0o666, (1, 3), &[]);
    newc_entry(&mut out, 4, "proc", DIR, (0, 0), &[]);
    newc_entry(&mut out, 5, "sys", DIR, (0, 0), &[]);
    newc_entry(&mut out, 6, "init", 0o100755, (0, 0), init);
    for (ino, (name, data)) in (7..).zip(extra) {
        newc_entry(&mut out, ino, name, 0o100755, (0, 0), data);
    }
    newc_entry(&mut out, 0, "TRAILER!!!", 0, (0, 0), &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry read back: (name, mode, rdev, data).
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Reads back a newc archive.
    fn read_newc(mut b: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let total = b.len();
        loop {
            assert_eq!(&b[..6], b"070701");
            let f = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, rmaj, rmin, namesize) = (f(1), f(6), f(9), f(10), f(11));
            let name_end = 110 + namesize as usize;
            let name = std::str::from_utf8(&b[110..name_end - 1])
                .unwrap()
                .to_string();
            let data_at = name_end.div_ceil(4) * 4;
            let data = b[data_at..data_at + size as usize].to_vec();
            let next = (data_at + size as usize).div_ceil(4) * 4;
            assert_eq!((total - b.len()) % 4, 0, "entries start 4-aligned");
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.iter().all(|&x| x == 0));
                return out;
            }
            out.push((name, mode, (rmaj, rmin), data));
        }
    }

    #[test]
    fn initramfs_is_newc_with_init_and_console() {
        let img = initramfs_with(b"\x7fELF-ish payload", &[]);
        assert_eq!(img.len() % 4, 0);
        let e = read_newc(&img);
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            ["dev", "dev/console", "dev/null", "proc", "sys", "init"]
        );
        assert_eq!((e[1].1, e[1].2), (0o020600, (5, 1)));
        assert_eq!((e[2].1, e[2].2), (0o020666, (1, 3)));
        assert_eq!(e[5].1, 0o100755);
        assert_eq!(e[5].3, b"\x7fELF-ish payload");
        assert_eq!(e[0].1 & 0o170000, 0o040000);
        let img = initramfs_with(b"init", &[("msg_zerocopy", b"\x7fELF2"), ("x", b"")]);
        let e = read_newc(&img);
        assert_eq!(e.len(), 8);
        assert_eq!((e[6].0.as_str(), e[6].1), ("msg_zerocopy", 0o100755));
        assert_eq!(e[6].3, b"\x7fELF2");
        assert_eq!((e[7].0.as_str(), e[7].3.len()), ("x", 0));
    }
}
