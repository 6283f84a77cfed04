//! A rendezvous (highest-random-weight) scheduler plugin; it arrives with the plugin ABI (#6).
#![no_std]
