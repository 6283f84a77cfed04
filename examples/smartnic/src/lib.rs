//! A SmartNIC-firmware-style host of the engine (static memory, no allocator); it arrives with the FFI issue.
#![no_std]
