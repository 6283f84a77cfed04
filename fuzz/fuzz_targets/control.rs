//! Fuzz the control socket's requests against a director serving two services: nothing may
//! panic, a refused batch names a command of the batch, and an accepted change saves as rules
//! that read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

const RULES: &str = "-A -t 198.18.0.100:80 -s wlc\n\
                     -a -t 198.18.0.100:80 -r 198.18.1.1:8080 -m -w 1\n\
                     -a -t 198.18.0.100:80 -r 198.18.1.2:8080 -m -w 2\n\
                     -A -u [2001:db8::100]:53 -s rr -p 60\n\
                     -a -u [2001:db8::100]:53 -r [2001:db8::1]:53 -g\n";

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        vs_linux_rawsock::fuzzing::control(RULES, line);
    }
});
