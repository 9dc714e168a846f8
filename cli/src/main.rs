//! The `floe` binary: see [`floe_cli`].

fn main() -> std::process::ExitCode {
    floe_cli::main()
}
