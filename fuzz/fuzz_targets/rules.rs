//! Fuzz vsd's rules-file parser: nothing may panic, and a configuration it accepts saves as
//! rules that read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        vs_linux_rawsock::fuzzing::rules(text);
    }
});
