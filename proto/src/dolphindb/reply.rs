//! Replies: printed output, then a header, then `OK` and the value or a one-line error.
//!
//! ```text
//! ("MSG\n" <printed text> "\0")*  "<sessionId> <objectCount> 1\n" ("OK" | <error>) "\n" [object]
//! ```
//!
//! The final `1` of the header says the object is little-endian. A request whose header is
//! asynchronous ([`Header::is_async`](super::Header::is_async)) gets no reply at all; that is
//! the caller's decision.

use xrepl_core::value::Value;

use super::encode::write_object;

/// The whole reply to a `script`, `function` or `variable` request.
///
/// `printed` are the texts the request printed, each sent as a `MSG` block before the header
/// (the client shows them as they come). `outcome` is the value (`Value::Void` sends no object,
/// as DolphinDB does for a statement without one) or the error, which is made one line
/// (newlines become spaces). A value that cannot be encoded (a DFS table handle, say) turns the
/// reply into an error saying so.
pub fn encode_reply(session: &str, printed: &[String], outcome: Result<&Value, &str>) -> Vec<u8> {
    let mut out = Vec::new();
    for text in printed {
        out.extend_from_slice(b"MSG\n");
        // A NUL ends the block on the client's side.
        out.extend(text.bytes().filter(|b| *b != 0));
        out.push(0);
    }
    let mut object = Vec::new();
    let status = match outcome {
        Ok(Value::Void) => Ok(0),
        Ok(v) => write_object(v, &mut object).map(|()| 1),
        Err(e) => Err(e.to_string()),
    };
    match status {
        Ok(count) => {
            out.extend_from_slice(format!("{session} {count} 1\nOK\n").as_bytes());
            out.extend_from_slice(&object);
        }
        Err(e) => {
            out.extend_from_slice(format!("{session} 0 1\n{}\n", one_line(&e)).as_bytes());
        }
    }
    out
}

/// The reply to a `connect` request: the new session id, then BOOL `true` (a `false` would
/// make the client's connect fail).
pub fn connect_reply(session: &str) -> Vec<u8> {
    let mut out = format!("{session} 1 1\nOK\n").into_bytes();
    out.extend_from_slice(&[1, 0, 1]);
    out
}

/// An error message as the client reads it: one line, never empty, never `OK` (which the
/// client would take for success).
fn one_line(message: &str) -> String {
    let line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match line.trim() {
        "" => "error (no message)".into(),
        "OK" => "error: OK".into(),
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use xrepl_core::value::{Scalar, Vector};

    use super::*;

    #[test]
    fn a_value_after_ok() {
        let two = Value::Scalar(Scalar::Int(2));
        assert_eq!(
            encode_reply("77AB", &[], Ok(&two)),
            b"77AB 1 1\nOK\n\x04\x00\x02\x00\x00\x00".to_vec()
        );
    }

    #[test]
    fn nothing_after_ok_for_void() {
        assert_eq!(
            encode_reply("s", &[], Ok(&Value::Void)),
            b"s 0 1\nOK\n".to_vec()
        );
    }

    #[test]
    fn printed_output_comes_first() {
        let printed = vec!["1".to_string(), "a\nb\0c".to_string()];
        let v = Value::Vector(Vector::Int(vec![]));
        let mut want = b"MSG\n1\0MSG\na\nbc\0s 1 1\nOK\n".to_vec();
        want.extend_from_slice(&[4, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(encode_reply("s", &printed, Ok(&v)), want);
    }

    #[test]
    fn errors_are_one_line_without_an_object() {
        assert_eq!(
            encode_reply("s", &["x".into()], Err("Syntax error:\n  at line 2\r\n")),
            b"MSG\nx\0s 0 1\nSyntax error:   at line 2  \n".to_vec()
        );
        assert_eq!(
            encode_reply("s", &[], Err("")),
            b"s 0 1\nerror (no message)\n"
        );
        assert_eq!(encode_reply("s", &[], Err("OK")), b"s 0 1\nerror: OK\n");
    }

    #[test]
    fn a_value_that_cannot_be_sent_becomes_an_error() {
        let handle = Value::TableRef {
            db: "dfs://db".into(),
            table: "t".into(),
        };
        assert_eq!(
            encode_reply("s", &[], Ok(&handle)),
            b"s 0 1\na DFS table handle cannot be sent to a DolphinDB client\n".to_vec()
        );
    }

    #[test]
    fn connect_answers_true() {
        assert_eq!(
            connect_reply("9F3C"),
            b"9F3C 1 1\nOK\n\x01\x00\x01".to_vec()
        );
    }
}
