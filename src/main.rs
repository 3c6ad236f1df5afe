//! `scl`: the native command-line tool (model info, prediction, benchmarks, training,
//! evaluation). In the browser the library's `web` module is the entry point instead.

#[cfg(not(target_family = "wasm"))]
mod cli;

#[cfg(not(target_family = "wasm"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_family = "wasm")]
fn main() {}
