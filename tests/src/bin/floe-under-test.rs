//! The `floe` command line, for the end-to-end tests.

fn main() -> std::process::ExitCode {
    floe_cli::main()
}
