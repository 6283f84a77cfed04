//! `pcap_frames OUT_DIR FILE...`: write every frame of the given captures to its own file in
//! `OUT_DIR` (used to seed the fuzzer's corpus from real captures).

#[path = "dissect/capture.rs"]
#[allow(dead_code)]
mod capture;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, files)) = args.split_first() else {
        eprintln!("usage: pcap_frames OUT_DIR FILE...");
        return ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("pcap_frames: {out}: {e}");
        return ExitCode::FAILURE;
    }
    let mut written = 0usize;
    for file in files {
        let stem = std::path::Path::new(file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let result = capture::for_each_frame(file, |n, link, data| {
            let kind = match link {
                Ok(capture::Link::Ethernet) => "eth",
                Ok(capture::Link::RawIp) => "ip",
                Err(_) => return,
            };
            if std::fs::write(format!("{out}/{stem}-{n}.{kind}"), data).is_ok() {
                written += 1;
            }
        });
        if let Err(e) = result {
            eprintln!("pcap_frames: {e}");
        }
    }
    eprintln!("pcap_frames: {written} frames written to {out}");
    ExitCode::SUCCESS
}
