//! Entry points for the fuzz targets in `fuzz/`: the director's readers of input it does not
//! control — the rules file, vsadm's command line, the control socket's requests — driven with
//! arbitrary bytes. Each panics on a broken promise, which the fuzzer reports.

use crate::run::config::{self, Config};
use crate::run::{control, ipvs};

/// The rules-file parser on any text. Text that parses as a configuration is written back as
/// rules (`ipvsadm -S`'s form, which vsd saves and hands out) that parse to the same one.
pub fn rules(text: &str) {
    let _ = crate::rules::parse(text);
    if let Ok(config) = Config::parse(text) {
        assert_saves_faithfully(&config);
    }
}

/// vsadm's command-line parser (ipvsadm's, as popt reads it) on any words. Host names resolve
/// from a fixed table (`localhost` only): the system resolver is not ours to fuzz, and asking
/// it would send the fuzzer's names to the network's DNS servers.
pub fn vsadm(words: &[String]) {
    let hosts: crate::vsadm::parse::Resolver =
        |name| (name == "localhost").then_some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let _ = crate::vsadm::parse::parse_with("vsadm", words, hosts);
}

/// A control-socket request line against a director configured by `rules`, as far as it goes
/// without live interfaces: the decoding, and the checks a configuration change passes before
/// the packet threads see it (`set-config`: the rules and the engine's verdict; `ipvs`: the
/// commands on a copy, all or none, whose result saves faithfully).
pub fn control(rules: &str, line: &str) {
    if line.len() > control::MAX_REQUEST {
        return;
    }
    let Ok(request) = control::decode(line) else { return };
    match request.op.as_str() {
        "set-config" => {
            if let Some(text) = request.rules
                && let Ok(next) = Config::parse(&text)
                && config::validate(&next).is_ok()
            {
                assert_saves_faithfully(&next);
            }
        }
        "ipvs" => {
            let current = Config::parse(rules).unwrap_or_default();
            match ipvs::plan(&current, &request.commands) {
                Ok(Some(next)) => assert_saves_faithfully(&next),
                Ok(None) => {}
                Err((index, message)) => {
                    assert!(index < request.commands.len().max(1), "failing index {index} out of range");
                    assert!(!message.is_empty(), "a refusal without a message");
                }
            }
        }
        _ => {}
    }
}

/// The configuration's rules text parses back to the same services, real servers and checks.
fn assert_saves_faithfully(config: &Config) {
    let saved = config.save_text();
    let again = Config::parse(&saved).unwrap_or_else(|e| panic!("saved rules do not parse: {e}\n{saved}"));
    assert_eq!(again.services, config.services, "saved rules describe other services:\n{saved}");
    let checks = |c: &Config| c.checks.iter().map(|k| (k.service, k.addr, k.port, k.spec.clone())).collect::<Vec<_>>();
    assert_eq!(checks(&again), checks(config), "saved rules describe other checks:\n{saved}");
}
