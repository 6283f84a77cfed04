//! `vsd`, the vs director (see the library's documentation for its commands).

fn main() -> std::process::ExitCode {
    vs_linux_rawsock::main()
}
