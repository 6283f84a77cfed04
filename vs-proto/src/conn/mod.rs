//! Connections: the fixed-capacity table, IPVS's TCP state machine and per-state timeouts.
//!
//! Unlike the wire layer, this module does no arithmetic on values taken from packets: indices
//! are bounded by the capacity checked at initialisation (at most 2^31), hashes use wrapping
//! operations, and enum discriminants are converted with `as`. The crate's
//! `arithmetic_side_effects` and `as_conversions` lints are relaxed here for that reason.
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::cast_possible_truncation)]

pub mod state;
pub mod table;
pub mod timeout;

pub use state::{ConnState, Direction, TcpEvent, tcp_transition};
pub use table::{
    AlignedMemory, BorrowedMemory, Conn, ConnIndex, ConnTable, Forward, InsertError, MemoryError, NO_LINK, NewConn,
    OwnedMemory, OwnedTable, Table, TableMemory, buckets_for,
};
pub use timeout::Timeouts;
