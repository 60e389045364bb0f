//! DolphinDB's client API protocol, as a pure codec: no sockets, no tokio.
//!
//! A data node that speaks this protocol lets DolphinDB's official clients (Python, Java, C++)
//! and every tool built on them work with xrepl unchanged. The facts come from
//! `/work/shared/spec/dolphindb-api.md` and were checked on the wire against the Python
//! client 3.0.6.1 (`proto/tests/dolphindb_codec.rs` holds its captured requests).
//!
//! Layers, in the order a request meets them: [`request`] (the first line of a request and its
//! text body), [`decode`] (the argument objects that follow the body, into
//! [`Value`](xrepl_core::value::Value)s), [`encode`] (values into objects) and [`reply`] (the
//! reply header, printed output, an error or one object). [`types`] holds the type and form
//! codes.
//!
//! **Invariant:** nothing read from the network panics or allocates by a declared length:
//! vectors grow as their bytes arrive, strings and nesting are bounded, and every refusal is a
//! one-line message that names what was refused.

pub mod decode;
pub mod encode;
pub mod reply;
pub mod request;
pub mod types;

pub use decode::{read_object, DecodeError};
pub use encode::write_object;
pub use reply::{connect_reply, encode_reply};
pub use request::{parse_body, parse_header, starts_api, Body, Header};

/// The longest text body a request may declare (its first line's `bodyLength`): 256 MiB.
/// Scripts are text; the data travels as objects after the body.
pub const MAX_BODY: usize = 256 << 20;

/// The most arguments a `function` request, or variables a `variable` request, may declare.
pub const MAX_ARGS: usize = 1024;

/// The longest single string (a STRING or SYMBOL element, a table or column name): 64 MiB.
pub const MAX_STRING: usize = 64 << 20;

/// How deeply objects may nest (tuples in tuples, dictionaries of tuples, tables in tuples).
pub const MAX_DEPTH: usize = 64;

/// How many bytes of strings (256 MiB, counting each `String` too) the symbol vectors of one
/// object may expand to. A symbol base is sent once and its entries referenced by 4-byte
/// indices, so without a bound a small input could ask for any amount of memory (each
/// referenced entry is copied per row).
pub const MAX_SYMBOL_EXPANSION: usize = 256 << 20;

/// The start of a text for an error message: at most 60 characters, control characters shown
/// escaped, so that the message stays one line whatever the client sent.
pub(crate) fn preview(s: &str) -> String {
    let mut out: String = s.chars().take(60).flat_map(char::escape_default).collect();
    if s.chars().nth(60).is_some() {
        out.push_str("...");
    }
    out
}

/// Bytes from hex digits, spaces ignored: how the tests write wire examples.
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(text, 16).expect("hex digits")
        })
        .collect()
}
