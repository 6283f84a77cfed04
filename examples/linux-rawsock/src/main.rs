//! The raw-socket Linux director; it arrives with the engine and director issues.

fn main() {
    eprintln!("vs-linux-rawsock: the director arrives with the engine (issue 4); nothing to run yet");
    std::process::exit(2);
}
