//! The architecture model: ABI families, word sizes, byte orders and the
//! named Linux targets this project covers.

use crate::cmsghdr::CmsgLayout;

/// The five socket-ABI families of Linux.
///
/// Most architectures take their socket numbers from
/// `include/uapi/asm-generic/socket.h`; alpha, mips, parisc and sparc have
/// their own `arch/<arch>/include/uapi/asm/socket.h` with different values for
/// `SOL_SOCKET` and many `SO_*` options, and their own `errno.h`. powerpc
/// overrides a few unrelated `SO_*` numbers but uses the generic values for
/// everything this crate describes, so it belongs to [`Family::Generic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `asm-generic/socket.h`: x86, arm, riscv, s390, powerpc and others.
    Generic,
    /// `arch/alpha/include/uapi/asm/socket.h`.
    Alpha,
    /// `arch/mips/include/uapi/asm/socket.h`.
    Mips,
    /// `arch/parisc/include/uapi/asm/socket.h` (hppa).
    Parisc,
    /// `arch/sparc/include/uapi/asm/socket.h`.
    Sparc,
}

impl Family {
    /// Every family, in declaration order.
    pub const ALL: [Family; 5] = [
        Family::Generic,
        Family::Alpha,
        Family::Mips,
        Family::Parisc,
        Family::Sparc,
    ];

    /// Lower-case name, as used in reports (`"generic"`, `"parisc"`, ...).
    ///
    /// ```
    /// assert_eq!(msgzc_abi::Family::Parisc.name(), "parisc");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Family::Generic => "generic",
            Family::Alpha => "alpha",
            Family::Mips => "mips",
            Family::Parisc => "parisc",
            Family::Sparc => "sparc",
        }
    }
}

/// Width of the C `long` (and `size_t`) of a process.
///
/// It decides the control-message header layout: `cmsg_len` is a `size_t`
/// and `CMSG_ALIGN` rounds to `sizeof(long)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WordSize {
    /// ILP32 processes, including 32-bit tasks on a 64-bit kernel (compat).
    W32,
    /// LP64 processes.
    W64,
}

impl WordSize {
    /// Size of `long` in bytes.
    ///
    /// ```
    /// assert_eq!(msgzc_abi::WordSize::W32.bytes(), 4);
    /// ```
    pub const fn bytes(self) -> usize {
        match self {
            WordSize::W32 => 4,
            WordSize::W64 => 8,
        }
    }
}

/// Byte order of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endian {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

/// What decides every number and layout of the notification ABI for one
/// process: its socket family, word size and byte order.
///
/// Two architectures with equal `Target`s (x86_64 and aarch64, say) share
/// this ABI byte for byte. A 32-bit task on a 64-bit kernel has the 32-bit
/// target of its own architecture: the kernel's compat layer converts to and
/// from that layout, so user space never sees the 64-bit one.
///
/// ```
/// use msgzc_abi::{Arch, Endian, Family, Target, WordSize};
///
/// let mips = Arch::Mips.target();
/// assert_eq!(mips, Target::new(Family::Mips, WordSize::W32, Endian::Big));
/// assert_eq!(mips.cmsg().header_size(), 12);
/// assert_eq!(Target::by_name("mips"), Some(mips));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Socket-ABI family.
    pub family: Family,
    /// Word size of the process.
    pub word: WordSize,
    /// Byte order of the process.
    pub endian: Endian,
}

impl Target {
    /// A target from its three parts.
    pub const fn new(family: Family, word: WordSize, endian: Endian) -> Self {
        Target {
            family,
            word,
            endian,
        }
    }

    /// The target of a named architecture (see [`Arch::from_name`]).
    pub fn by_name(name: &str) -> Option<Target> {
        Arch::from_name(name).map(Arch::target)
    }

    /// The target this code was compiled for, or `None` when it is not one of
    /// the named Linux targets (bare metal, other operating systems, x32...).
    ///
    /// It is decided at compile time, never guessed.
    pub const fn native() -> Option<Target> {
        match Arch::native() {
            Some(arch) => Some(arch.target()),
            None => None,
        }
    }

    /// The control-message header layout of processes of this target.
    pub const fn cmsg(self) -> CmsgLayout {
        match self.word {
            WordSize::W32 => CmsgLayout::Bits32,
            WordSize::W64 => CmsgLayout::Bits64,
        }
    }

    /// Whether this target stores integers most significant byte first.
    pub const fn is_big_endian(self) -> bool {
        matches!(self.endian, Endian::Big)
    }
}

macro_rules! arches {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $name:literal, $family:ident, $word:ident, $endian:ident,
            compat: $compat:expr;
    )*) => {
        /// The named Linux architectures this project covers, each with the
        /// target its user space sees.
        ///
        /// ```
        /// use msgzc_abi::Arch;
        ///
        /// assert_eq!(Arch::ALL.len(), 16);
        /// assert_eq!(Arch::from_name("hppa"), Some(Arch::Hppa));
        /// assert_eq!(Arch::Hppa.name(), "hppa");
        /// assert_eq!(Arch::Mips64.compat_guest(), Some(Arch::Mips));
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Arch {
            $( $(#[$doc])* $variant, )*
        }

        impl Arch {
            /// Every named architecture.
            pub const ALL: [Arch; [$($name),*].len()] = [$(Arch::$variant),*];

            /// The short name (`"x86_64"`, `"mips64el"`, ...).
            pub const fn name(self) -> &'static str {
                match self { $(Arch::$variant => $name,)* }
            }

            /// The architecture with this short name.
            pub fn from_name(name: &str) -> Option<Arch> {
                match name {
                    $($name => Some(Arch::$variant),)*
                    _ => None,
                }
            }

            /// The ABI of this architecture's user space.
            pub const fn target(self) -> Target {
                match self {
                    $(Arch::$variant => Target::new(
                        Family::$family, WordSize::$word, Endian::$endian),)*
                }
            }

            /// The 32-bit architecture whose binaries this 64-bit
            /// architecture's kernel can run through its compat layer, among
            /// the named ones.
            pub const fn compat_guest(self) -> Option<Arch> {
                match self { $(Arch::$variant => $compat,)* }
            }
        }
    };
}

arches! {
    /// x86-64 (LP64).
    X86_64 = "x86_64", Generic, W64, Little,
        compat: Some(Arch::I686);
    /// 32-bit x86.
    I686 = "i686", Generic, W32, Little,
        compat: None;
    /// 64-bit Arm.
    Aarch64 = "aarch64", Generic, W64, Little,
        compat: Some(Arch::Armv7);
    /// 32-bit Arm, hard float.
    Armv7 = "armv7", Generic, W32, Little,
        compat: None;
    /// 64-bit RISC-V.
    Riscv64 = "riscv64", Generic, W64, Little,
        compat: None;
    /// 32-bit big-endian PowerPC.
    Powerpc = "powerpc", Generic, W32, Big,
        compat: None;
    /// 64-bit little-endian PowerPC.
    Powerpc64le = "powerpc64le", Generic, W64, Little,
        compat: None;
    /// 64-bit IBM Z (big-endian).
    S390x = "s390x", Generic, W64, Big,
        compat: None;
    /// 32-bit big-endian MIPS (o32).
    Mips = "mips", Mips, W32, Big,
        compat: None;
    /// 32-bit little-endian MIPS (o32).
    Mipsel = "mipsel", Mips, W32, Little,
        compat: None;
    /// 64-bit big-endian MIPS (n64).
    Mips64 = "mips64", Mips, W64, Big,
        compat: Some(Arch::Mips);
    /// 64-bit little-endian MIPS (n64).
    Mips64el = "mips64el", Mips, W64, Little,
        compat: Some(Arch::Mipsel);
    /// 64-bit SPARC (big-endian).
    Sparc64 = "sparc64", Sparc, W64, Big,
        compat: Some(Arch::Sparc);
    /// Alpha (64-bit, little-endian).
    Alpha = "alpha", Alpha, W64, Little,
        compat: None;
    /// PA-RISC, 32-bit user space (big-endian).
    Hppa = "hppa", Parisc, W32, Big,
        compat: None;
    /// 32-bit SPARC (big-endian, V8+: the 32-bit user space a sparc64
    /// kernel runs through its compat layer; there is no 32-bit SPARC
    /// kernel among the named ones; last in [`Arch::ALL`], so that the fuzz
    /// corpus' first bytes keep naming the targets they did).
    Sparc = "sparc", Sparc, W32, Big,
        compat: None;
}

impl Arch {
    /// The architecture this code was compiled for, if it is a named one.
    /// Android counts as Linux: its kernel is Linux, and the kernel, not
    /// the C library, defines every number and layout here.
    pub const fn native() -> Option<Arch> {
        cfg_if::cfg_if! {
            if #[cfg(not(any(target_os = "linux", target_os = "android")))] {
                None
            } else if #[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))] {
                Some(Arch::X86_64)
            } else if #[cfg(target_arch = "x86")] {
                Some(Arch::I686)
            } else if #[cfg(target_arch = "aarch64")] {
                Some(Arch::Aarch64)
            } else if #[cfg(target_arch = "arm")] {
                Some(Arch::Armv7)
            } else if #[cfg(target_arch = "riscv64")] {
                Some(Arch::Riscv64)
            } else if #[cfg(target_arch = "powerpc")] {
                Some(Arch::Powerpc)
            } else if #[cfg(all(target_arch = "powerpc64", target_endian = "little"))] {
                Some(Arch::Powerpc64le)
            } else if #[cfg(target_arch = "s390x")] {
                Some(Arch::S390x)
            } else if #[cfg(all(target_arch = "mips", target_endian = "big"))] {
                Some(Arch::Mips)
            } else if #[cfg(all(target_arch = "mips", target_endian = "little"))] {
                Some(Arch::Mipsel)
            } else if #[cfg(all(target_arch = "mips64", target_endian = "big",
                                target_pointer_width = "64"))] {
                Some(Arch::Mips64)
            } else if #[cfg(all(target_arch = "mips64", target_endian = "little",
                                target_pointer_width = "64"))] {
                Some(Arch::Mips64el)
            } else if #[cfg(target_arch = "sparc64")] {
                Some(Arch::Sparc64)
            } else if #[cfg(target_arch = "sparc")] {
                Some(Arch::Sparc)
            } else {
                // Not a named target (x32, mips n32, big-endian ppc64, ...):
                // say so rather than guess a layout.
                None
            }
        }
    }
}

impl core::fmt::Display for Arch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for (i, a) in Arch::ALL.iter().enumerate() {
            assert_eq!(Arch::from_name(a.name()), Some(*a));
            for b in &Arch::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
        assert_eq!(Arch::from_name("sparc32"), None);
        assert_eq!(Arch::from_name("sparc"), Some(Arch::Sparc));
        assert_eq!(Arch::from_name(""), None);
    }

    #[test]
    fn every_family_has_a_named_target() {
        for f in Family::ALL {
            assert!(Arch::ALL.iter().any(|a| a.target().family == f), "{f:?}");
        }
    }

    #[test]
    fn compat_guests_share_family_and_byte_order() {
        for a in Arch::ALL {
            if let Some(g) = a.compat_guest() {
                let (t, u) = (a.target(), g.target());
                assert_eq!(t.word, WordSize::W64);
                assert_eq!(u.word, WordSize::W32);
                assert_eq!((t.family, t.endian), (u.family, u.endian));
            }
        }
    }

    #[test]
    fn native_is_known_on_the_test_host() {
        // The test suite only runs on named Linux targets.
        let native = Arch::native().expect("tests run on a named Linux target");
        let t = native.target();
        assert_eq!(t.word.bytes(), core::mem::size_of::<usize>());
        assert_eq!(t.is_big_endian(), cfg!(target_endian = "big"));
    }
}
