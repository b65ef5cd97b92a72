//! What the conformance guests and the host judge share: the typed
//! [`Case`]s with their constants, and the line format the guests print
//! (`CASE name=..`, `CALL ..`, `RAW ..`, `END ..`, ... `DONE`), with a
//! writer ([`Record`]) and a parser ([`Line`], [`GuestLog`]).
//!
//! The benchmark's request and result lines are in [`mod@bench`].
//!
//! The C guest (`conformance/guest-c/guest.c`) prints the same lines by
//! hand; this crate is the format's one Rust description.
//!
//! ```
//! use msgzc_conformance_protocol::{Case, GuestLog, Record, Status};
//!
//! let text = format!(
//!     "{}\n{}\n{}\n{}\n",
//!     Record::Guest { target: "mips", lang: "rust", pid: 1 },
//!     Record::Case(Case::Probe),
//!     Record::End { case: Case::Probe, status: Status::Ok, detail: "placeholder written" },
//!     Record::Done,
//! );
//! let log = GuestLog::parse(&text);
//! assert_eq!(log.target.as_deref(), Some("mips"));
//! assert!(log.done);
//! let end = &log.lines(Case::Probe).unwrap()[0];
//! assert_eq!(end.get("detail"), Some("placeholder_written"));
//! assert_eq!(end.status(), Some(Status::Ok));
//! ```

pub mod bench;
mod cases;
mod facts;
mod line;

pub use cases::*;
pub use facts::{jobj, jstr, table_row};
pub use line::{hex, unhex, word, GuestLog, Line, Record, Status};
