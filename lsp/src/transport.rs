//! JSON-RPC messages over stdio, framed with `Content-Length` headers (the Language Server
//! Protocol's base protocol).
//!
//! Written here rather than taken from a library because a server must survive what a
//! broken client sends: a body that is not JSON gets a `ParseError` response and the next
//! message is read; headers that make no sense are skipped to the next blank line; only the
//! end of the input ends the server.

use std::io::{BufRead, Read, Write};

use serde_json::{Value as Json, json};

/// What reading the next message gave.
#[derive(Debug)]
pub enum Incoming {
    /// A JSON value (a request, notification or response, or something else to reject).
    Message(Json),
    /// A body that is not JSON: answer with a parse error.
    Malformed(String),
    /// The client closed the input.
    Closed,
}

/// The largest message accepted (64 MiB): a length above it is refused, not allocated.
const MAX_LENGTH: usize = 64 * 1024 * 1024;

/// Reads one message.
pub fn read(input: &mut impl BufRead) -> Incoming {
    let mut length: Option<usize> = None;
    let mut saw_header = false;
    loop {
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) => return Incoming::Closed,
            Ok(_) => {}
            // A header that is not UTF-8: skip it.
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => continue,
            Err(_) => return Incoming::Closed,
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if saw_header {
                break;
            }
            continue;
        }
        saw_header = true;
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok();
        }
    }
    let Some(length) = length else {
        return Incoming::Malformed("a message without a valid Content-Length header".to_owned());
    };
    if length > MAX_LENGTH {
        // Skip what it announced, as far as it goes, and say why.
        let _ = std::io::copy(&mut input.by_ref().take(length as u64), &mut std::io::sink());
        return Incoming::Malformed(format!("a message of {length} bytes is larger than {MAX_LENGTH}"));
    }
    let mut body = vec![0; length];
    if input.read_exact(&mut body).is_err() {
        return Incoming::Closed;
    }
    match serde_json::from_slice(&body) {
        Ok(json) => Incoming::Message(json),
        Err(error) => Incoming::Malformed(format!("the message is not JSON: {error}")),
    }
}

/// Writes one message; a closed output is ignored (the client is gone).
pub fn write(output: &mut impl Write, message: &Json) {
    let body = message.to_string();
    let _ = write!(output, "Content-Length: {}\r\n\r\n{body}", body.len());
    let _ = output.flush();
}

/// A JSON-RPC error response.
pub fn error(id: Json, code: i64, message: &str) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A JSON-RPC result response.
pub fn result(id: Json, result: Json) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A notification.
pub fn notification(method: &str, params: Json) -> Json {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// JSON-RPC and LSP error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const SERVER_NOT_INITIALIZED: i64 = -32002;
}
