//! The C ABI over `vs-proto` and `vs-sched`; the exported functions arrive with the FFI issue (#6).
#![no_std]
