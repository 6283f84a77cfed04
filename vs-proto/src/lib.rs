//! `vs-proto`: the allocation-free packet core of the vs IPVS dataplane.
//!
//! The [`wire`] module holds zero-copy views over Ethernet, VLAN, ARP, IPv4, IPv6 (with a bounded,
//! allow-listed extension-header walk), TCP, UDP and ICMP/ICMPv6 headers, a one-pass validated
//! [`wire::Summary`] of a packet, Internet checksums (full and RFC 1624 incremental), in-place
//! rewrites that keep every checksum valid, and IP-in-IP / IPv6 encapsulation into headroom.
//!
//! The crate is `no_std`, links neither `std` nor `alloc`, contains no `unsafe` code, and is
//! written so that no input can make it panic: every slice access is checked (`clippy::indexing_slicing`
//! is denied), no value derived from a packet is unwrapped, and arithmetic on packet-derived numbers
//! is checked or explicitly wrapping.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs, clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects,
        clippy::as_conversions,
        clippy::cast_possible_truncation,
    )
)]

pub mod conn;
pub mod engine;
pub mod wire;
