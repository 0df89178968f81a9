//! The `relay` binary: see `relay --help` and the README.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    relay::cli::main()
}
