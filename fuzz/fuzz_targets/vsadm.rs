//! Fuzz vsadm's command-line parser: the input is split into words at NUL bytes (any other
//! byte, spaces included, may be part of a word, as in a real argument vector).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let words: Vec<String> = data.split(|b| *b == 0).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    vs_linux_rawsock::fuzzing::vsadm(&words);
});
