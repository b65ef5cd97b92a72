//! The console: the guest's protocol lines sorted from the firmware's and
//! kernel's noise.

use msgzc_conformance_protocol::bench;

/// What the console showed, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Console {
    /// The guest's protocol lines, in order (for [`GuestLog::parse`](crate::judge::GuestLog::parse)).
    pub lines: Vec<String>,
    /// The release from the kernel's banner (`Linux version X ...`).
    pub banner: Option<String>,
    /// The release the guest printed (`NOTE kernel=X`).
    pub guest_kernel: Option<String>,
    /// `Kernel panic - not syncing: WHY`.
    pub panic: Option<String>,
    /// Whether the guest printed `DONE`.
    pub done: bool,
}

/// The first words of the guest protocol's lines (the bench agent's
/// [`bench::KINDS`] besides).
const KINDS: [&str; 13] = [
    "GUEST", "CASE", "FACTS", "CALL", "RAW", "VALUE", "PROBE", "MODE", "INLINE", "DATA", "NOTE",
    "END", "DONE",
];

/// Whether `kind` starts a line of the guests' protocol.
fn is_kind(kind: &str) -> bool {
    KINDS.contains(&kind) || bench::KINDS.contains(&kind)
}

/// Drops terminal escape sequences (firmware clears screens) and control
/// characters other than tab.
fn strip_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte; otherwise ESC and one char.
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                it.next();
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// Sorts a console transcript: protocol lines, banner, panic, `DONE`.
pub fn parse_console(raw: &str) -> Console {
    let mut con = Console::default();
    for line in raw.split('\n') {
        let line = strip_controls(line);
        let line = line.trim();
        // The kernel's own lines, with or without a printk timestamp.
        let msg = match line.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or(line, |(_, m)| m.trim_start()),
            None => line,
        };
        if let Some(rest) = msg.strip_prefix("Linux version ") {
            con.banner
                .get_or_insert_with(|| rest.split_whitespace().next().unwrap_or("").to_string());
            continue;
        }
        if let Some(i) = msg.find("Kernel panic - not syncing:") {
            con.panic.get_or_insert_with(|| {
                msg[i + "Kernel panic - not syncing:".len()..]
                    .trim()
                    .to_string()
            });
            continue;
        }
        let kind = line.split_whitespace().next().unwrap_or("");
        if !is_kind(kind) || (kind == "DONE" && line != "DONE") {
            continue;
        }
        if kind == "DONE" {
            con.done = true;
        }
        if let Some(k) = line.strip_prefix("NOTE kernel=") {
            con.guest_kernel = k.split_whitespace().next().map(String::from);
        }
        con.lines.push(line.to_string());
    }
    con
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::GuestLog;

    #[test]
    fn console_separates_guest_lines_from_noise() {
        let raw = "\x1b[2J\x1bcSeaBIOS (version 1.16)\n\
            [    0.000000] Linux version 6.1.0-50-arm64 (debian-kernel@lists) #1 SMP\n\
            Linux version 6.1.176 (root@host) (gcc 12) #1\n\
            NOTE kernel=6.1.0-50-arm64 machine=aarch64\n\
            GUEST target=aarch64 lang=rust pid=1\n\
            CASE name=probe\n\
            random: crng init done\n\
            DATA sock=a len=2 hex=0a0b\n\
            END case=probe status=ok detail=x\n\
            DONE\n\
            reboot: Power down\n";
        let c = parse_console(raw);
        assert_eq!(c.banner.as_deref(), Some("6.1.0-50-arm64"));
        assert_eq!(c.guest_kernel.as_deref(), Some("6.1.0-50-arm64"));
        assert!(c.done);
        assert_eq!(c.panic, None);
        assert_eq!(c.lines.len(), 6);
        assert_eq!(c.lines[1], "GUEST target=aarch64 lang=rust pid=1");
        assert_eq!(c.lines[3], "DATA sock=a len=2 hex=0a0b");
        let log = GuestLog::parse(&(c.lines.join("\n") + "\n"));
        assert!(log.done);
        assert_eq!(log.target.as_deref(), Some("aarch64"));
    }

    #[test]
    fn console_recognises_panics() {
        let c = parse_console(
            "GUEST target=mips lang=c pid=1\n\
             [    2.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000004\n",
        );
        assert_eq!(
            c.panic.as_deref(),
            Some("Attempted to kill init! exitcode=0x00000004")
        );
        assert!(!c.done);
    }
}
