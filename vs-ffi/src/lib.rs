//! The C ABI of the vs IPVS dataplane (`include/vs.h`), after rustls-ffi's recipe: opaque
//! handles, caller-supplied memory, explicit status codes, every pointer checked, and no panic
//! crossing the boundary.
//!
//! With the default `std` feature every entry point catches panics and answers
//! [`vs_status::VS_ERR_PANIC`] (the engine is then poisoned and refuses further calls); built
//! with `--no-default-features` the crate is `no_std`, uses no allocator, and a panic calls the
//! hook registered with `vs_set_panic_hook` before it stops.
#![cfg_attr(not(feature = "std"), no_std)]
#![allow(non_camel_case_types)] // C names: vs_status, vs_engine, ...
#![allow(unsafe_code)]
// The boundary: raw pointers from C, checked before use.
// Every entry point that takes a pointer is `unsafe` (the crate is also an rlib, so Rust
// callers see the contract), and every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

mod boundary;
mod config;
mod engine;
mod plugin;
mod process;
mod service;
mod stats;
mod status;
mod types;

pub use boundary::*;
pub use config::*;
pub use engine::*;
pub use plugin::*;
pub use process::*;
pub use service::*;
pub use stats::*;
pub use status::*;
pub use types::*;
