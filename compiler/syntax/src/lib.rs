//! Parsing Flow source text into an owned syntax tree.
//!
//! **API boundary.** [`parse`] takes a file's text and returns a [`Parse`]: the tree
//! ([`ast`]) and the syntax diagnostics. It never fails and never panics: text that cannot
//! be parsed becomes `Error` nodes, so later phases and the language server see the rest of
//! the file. The grammar lives in `flow-grammar`; this crate drives it one declaration or
//! flow item at a time so that it can recover after an error, words pest's failures for
//! policy stewards, and decodes literals.

pub mod ast;
mod errors;
pub mod format;
pub mod lexer;
pub mod literal;
mod parser;
#[cfg(test)]
mod tests;
mod tree;

pub use parser::{Parse, parse, parse_with_pest_only};
pub use tree::MAX_EXPR_DEPTH;
