//! Helpers shared by the test files of this crate.
#![allow(dead_code)]

#[path = "../../../../vs-proto/tests/common/capture.rs"]
mod capture;
#[allow(unused_imports)] // Each test binary uses its own share of the helpers.
pub(crate) use capture::{run_tshark, tshark_fields, write_pcap};
