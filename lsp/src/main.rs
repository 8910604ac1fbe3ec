//! `flow-lsp`: the Flow language server on standard input and output.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(flow_lsp::run_stdio()).unwrap_or(1))
}
