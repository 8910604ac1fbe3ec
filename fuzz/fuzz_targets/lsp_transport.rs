//! The language server's framing: any byte stream is read message by message, each a
//! message, a malformed body, or the end; never a panic, a hang or an allocation of what a
//! header claims.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let mut input = std::io::BufReader::new(bytes);
    for _ in 0..64 {
        if let flow_lsp::transport::Incoming::Closed = flow_lsp::transport::read(&mut input) {
            break;
        }
    }
});
