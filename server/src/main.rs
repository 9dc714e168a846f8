//! The `floe` binary: see [`floe::cli`].

fn main() -> std::process::ExitCode {
    floe::cli::main()
}
