//! The `reviewer` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    reviewer::cli::main()
}
