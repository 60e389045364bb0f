//! Statements: the script and its separators, expression statements, assignments, and
//! `if`/`else` with its branches and `{ blocks }`. The SQL statements (`update`, `delete`,
//! `insert`) are parsed with the rest of SQL.

use super::{is_sql_stmt_word, node, Node, PResult, Parser};
use crate::lang::ast::{Expr, Span, Stmt};
use crate::lang::error::ParseError;
use crate::lang::lexer::TokenKind;

/// Where a statement stands: at the top of the script, or inside a `{ }` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Block,
}

// The `make_*` helpers take their parts boxed on purpose (see [`Node`]).
#[allow(clippy::boxed_local)]
impl Parser {
    // ----- statements ---------------------------------------------------------------------
    //
    // The functions on the recursive paths are kept small (work is moved into helpers that
    // are not active while recursing) so that the stack needed per nesting level stays small
    // even in debug builds.

    pub(super) fn script(&mut self) -> PResult<Vec<Stmt>> {
        let mut stmts = Vec::new();
        loop {
            self.skip_separators();
            match self.peek() {
                TokenKind::Eof => return Ok(stmts),
                TokenKind::RBrace => {
                    return Err(ParseError::new(
                        self.span(),
                        "unexpected '}' without a matching '{'",
                    ))
                }
                _ => {}
            }
            let (stmt, _) = *self.stmt()?;
            stmts.push(stmt);
            self.end_of_stmt(Place::Top)?;
        }
    }

    /// After a statement: a newline, `;`, the end of input, or (in a block) `}`.
    fn end_of_stmt(&self, place: Place) -> PResult<()> {
        match self.peek() {
            TokenKind::Newline | TokenKind::Semicolon | TokenKind::Eof => Ok(()),
            TokenKind::RBrace if place == Place::Block => Ok(()),
            TokenKind::Assign => Err(ParseError::new(
                self.span(),
                "cannot assign here: only a variable name may appear on the left of '='",
            )),
            _ => Err(self.expected("end of statement (a new line or ';')")),
        }
    }

    fn stmt(&mut self) -> PResult<Node<Stmt>> {
        self.enter()?;
        let result = match self.peek() {
            TokenKind::If => self.if_stmt(),
            TokenKind::Ident(_) if *self.peek_at(1) == TokenKind::Assign => self.assign(),
            TokenKind::Ident(w)
                if is_sql_stmt_word(w) && matches!(self.peek_at(1), TokenKind::Ident(_)) =>
            {
                self.sql_stmt()
            }
            TokenKind::Else => Err(ParseError::new(
                self.span(),
                "'else' without a matching 'if'",
            )),
            _ => self.expr_stmt(),
        };
        self.leave();
        result
    }

    fn expr_stmt(&mut self) -> PResult<Node<Stmt>> {
        let (e, h) = *self.expr()?;
        Ok(node(Stmt::Expr(e), h))
    }

    /// `name = value`, at the name.
    fn assign(&mut self) -> PResult<Node<Stmt>> {
        let span = self.span();
        let name = match self.advance() {
            TokenKind::Ident(name) => name,
            _ => return Err(ParseError::new(span, "expected a variable name")),
        };
        self.advance(); // '='
        self.skip_newlines();
        let value = self.expr()?;
        Self::make_assign(name, value, span)
    }

    #[inline(never)]
    fn make_assign(name: String, value: Node<Expr>, span: Span) -> PResult<Node<Stmt>> {
        let (value, h) = *value;
        let h = Self::check_height(h + 1, span)?;
        Ok(node(Stmt::Assign { name, value, span }, h))
    }

    fn if_stmt(&mut self) -> PResult<Node<Stmt>> {
        let span = self.span();
        self.advance(); // 'if'
        self.expect(&TokenKind::LParen, "'(' after 'if'")?;
        let cond = self.expr()?;
        self.expect(&TokenKind::RParen, "')'")?;
        self.skip_newlines();
        let then = self.branch()?;
        // `else` may follow on the same line or on a later one.
        let save = self.pos;
        self.skip_separators();
        let otherwise = if self.eat(&TokenKind::Else) {
            self.skip_newlines();
            Some(self.branch()?)
        } else {
            self.pos = save;
            None
        };
        Self::make_if(cond, then, otherwise, span)
    }

    #[inline(never)]
    fn make_if(
        cond: Node<Expr>,
        then: Node<Vec<Stmt>>,
        otherwise: Option<Node<Vec<Stmt>>>,
        span: Span,
    ) -> PResult<Node<Stmt>> {
        let (cond, ch) = *cond;
        let (then, th) = *then;
        let (otherwise, oh) = match otherwise {
            Some(n) => (Some(n.0), n.1),
            None => (None, 0),
        };
        let h = Self::check_height(ch.max(th).max(oh) + 1, span)?;
        Ok(node(
            Stmt::If {
                cond,
                then,
                otherwise,
                span,
            },
            h,
        ))
    }

    /// A `{ block }` or a single statement.
    fn branch(&mut self) -> PResult<Node<Vec<Stmt>>> {
        match self.peek() {
            TokenKind::LBrace => self.block(),
            TokenKind::Newline
            | TokenKind::Semicolon
            | TokenKind::Eof
            | TokenKind::RBrace
            | TokenKind::Else => Err(self.expected("a statement or '{'")),
            _ => self.single_stmt(),
        }
    }

    fn single_stmt(&mut self) -> PResult<Node<Vec<Stmt>>> {
        let (stmt, h) = *self.stmt()?;
        Ok(node(vec![stmt], h))
    }

    fn block(&mut self) -> PResult<Node<Vec<Stmt>>> {
        let open = self.expect(&TokenKind::LBrace, "'{'")?;
        let mut stmts = Vec::new();
        let mut h = 0;
        loop {
            self.skip_separators();
            match self.peek() {
                TokenKind::RBrace => {
                    self.advance();
                    return Ok(node(stmts, h));
                }
                TokenKind::Eof => return Err(self.unclosed_brace(open)),
                _ => {}
            }
            let (stmt, sh) = *self.stmt()?;
            h = h.max(sh);
            stmts.push(stmt);
            self.end_of_stmt(Place::Block)?;
        }
    }

    #[inline(never)]
    fn unclosed_brace(&self, open: Span) -> ParseError {
        self.expected(&format!(
            "'}}' to close the '{{' at line {}, column {}",
            open.line, open.col
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::lang::parser::parse;
    use crate::lang::parser::testing::*;

    // ----- statements ---------------------------------------------------------------------

    #[test]
    fn assignments() {
        assert_eq!(p("x = 1"), "(= x 1)");
        assert_eq!(p("x=1+2"), "(= x (+ 1 2))");
        assert_eq!(p("x =\n  1"), "(= x 1)");
        assert_eq!(p("x == 1"), "(== x 1)");
        assert_eq!(p("select = 1"), "(= select 1)");
    }

    #[test]
    fn if_else() {
        assert_eq!(
            p("if(existsDatabase(dbName)){\n  dropDatabase(dbName)\n}"),
            "(if (call existsDatabase dbName) {(call dropDatabase dbName)})"
        );
        assert_eq!(
            p("if (a) { x = 1 } else { x = 2 }"),
            "(if a {(= x 1)} else {(= x 2)})"
        );
        assert_eq!(
            p("if (a) x = 1 else x = 2"),
            "(if a {(= x 1)} else {(= x 2)})"
        );
        assert_eq!(
            p("if (a) {\n x = 1\n}\nelse {\n x = 2\n}"),
            "(if a {(= x 1)} else {(= x 2)})"
        );
        assert_eq!(
            p("if (a) { 1 } else if (b) { 2 } else { 3 }"),
            "(if a {1} else {(if b {2} else {3})})"
        );
        assert_eq!(p("if (a) {}"), "(if a {})");
        assert_eq!(p("if (a) { ; \n }"), "(if a {})");
        assert_eq!(p("if (a) { x; y\n z }"), "(if a {x; y; z})");
        assert_eq!(p("if (a)\n{ x }"), "(if a {x})");
        assert_eq!(p("if (a) if (b) x else y"), "(if a {(if b {x} else {y})})");
        assert_eq!(p("if (a) { x }\ny"), "(if a {x}); y");
        assert_eq!(p("if (a) { x }; y"), "(if a {x}); y");
        assert_eq!(p("if (a) x; else y"), "(if a {x} else {y})");
        assert_eq!(p("if (a) { if (b) { c } }"), "(if a {(if b {c})})");
    }

    #[test]
    fn comments() {
        assert_eq!(p("// only a comment"), "");
        assert_eq!(p("x = 1 // trailing"), "(= x 1)");
        assert_eq!(p("// 创建存储的数据库\nx"), "x");
        assert_eq!(p("/* block */ x"), "x");
        assert_eq!(p("x /* inline */ + 1"), "(+ x 1)");
        assert_eq!(p("a\n/* several\nlines\n*/\nb"), "a; b");
        assert_eq!(p("a /* a\nnewline inside */ + b"), "(+ a b)");
        assert_eq!(p("/**/x/***/"), "x");
        assert_eq!(p("a / b"), "(/ a b)");
    }

    #[test]
    fn statements_and_separators() {
        assert_eq!(p(""), "");
        assert_eq!(p("\n\n;;\n"), "");
        assert_eq!(p("a; b\nc"), "a; b; c");
        assert_eq!(p("a;;b;"), "a; b");
        assert_eq!(p("a\r\nb\r\n"), "a; b");
        assert_eq!(p("x = 1 +\n  2"), "(= x (+ 1 2))");
        assert_eq!(p("x = a and\n\n b"), "(= x (and a b))");
        assert_eq!(p("f(1,\n2)"), "(call f 1 2)");
        assert_eq!(p("f(1\n, 2\n)"), "(call f 1 2)");
        assert_eq!(p("(1\n+ 2)"), "(+ 1 2)");
        assert_eq!(p("x[\n0\n]"), "(index x 0)");
        assert_eq!(p("a\n-1"), "a; -1");
        assert_eq!(p("a\n(b)"), "a; b");
    }

    #[test]
    fn tutorial_statements() {
        let stmts = match parse(TUTORIAL) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(stmts.len(), 39);
        let rendered: Vec<String> = stmts.iter().map(sx_stmt).collect();
        let expect = [
            (0, r#"(call login "admin" "123456")"#),
            (
                2,
                "(if (call existsDatabase dbName) {(call dropDatabase dbName)})",
            ),
            (
                3,
                "(= db (call database dbName VALUE (.. (date 19358) (date 19722))))",
            ),
            (5, "(field (call schema db) clusterReplicationEnabled)"),
            (
                9,
                "(= colTypes [SYMBOL DATETIME DOUBLE DOUBLE DOUBLE DOUBLE DOUBLE INT DOUBLE])",
            ),
            (10, "(= schemaTable (call table (: 1 0) colNames colTypes))"),
            (
                14,
                "(= randPrice (call round (+ 10 (call rand 1.0 100)) 2))",
            ),
            (
                16,
                "(= SecurityID (call lpad (call string (call take (.. 0 4999) 5000)) 6 `0))",
            ),
            (
                17,
                "(= DateTime (.join (+ (datetime 1673170200) (* (call take (.. 0 120) 121) 60)) \
                 (+ (datetime 1673182800) (* (call take (.. 0 120) 121) 60))))",
            ),
            (
                26,
                "(= t (.join! tmp (call table PreClosePx OpenPx HighPx LowPx LastPx Volume Amount)))",
            ),
            (
                34,
                "(call rpc (call getControllerAlias) getClusterReplicationMetrics -1)",
            ),
        ];
        for (i, want) in expect {
            assert_eq!(
                rendered.get(i).map(String::as_str),
                Some(want),
                "statement {i}"
            );
        }
    }

    // ----- errors -------------------------------------------------------------------------

    #[test]
    fn error_display() {
        let e = err("x = 1\n\nf(a b)");
        assert_eq!(e.span, at(3, 5));
        assert_eq!(
            e.to_string(),
            "Syntax error at line 3, column 5: expected ',' or ')' but found 'b'"
        );
        let e = err("x = 1\ny = (1, 2)");
        assert_eq!(
            e.to_string(),
            "Syntax error at line 2, column 7: expected ')' but found ','"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
        assert_eq!(boxed.to_string(), e.to_string());
    }

    #[test]
    fn error_unexpected_character() {
        let e = err("x = 1\ny = a # b");
        assert_eq!(e.span, at(2, 7));
        assert_eq!(e.message, "unexpected character '#'");
        assert_eq!(err("a & b").message, "unexpected character '&'");
        assert_eq!(err("a | b").span, at(1, 3));
        assert_eq!(err("x = （1）").span, at(1, 5));
    }

    #[test]
    fn error_unterminated_string() {
        let e = err("x = 1\ny = \"abc\nz = 2");
        assert_eq!(e.span, at(2, 5));
        assert!(e.message.contains("unterminated string"), "{}", e.message);
        assert_eq!(err("'abc\\'").span, at(1, 1));
        assert_eq!(err("  \"abc\\").span, at(1, 3));
    }

    #[test]
    fn error_unterminated_block_comment() {
        let e = err("x = 1\n  /* never\nclosed");
        assert_eq!(e.span, at(2, 3));
        assert!(
            e.message.contains("unterminated block comment"),
            "{}",
            e.message
        );
    }

    #[test]
    fn error_bad_number() {
        let e = err("x = 12ab");
        assert_eq!(e.span, at(1, 5));
        assert_eq!(e.message, "invalid number literal '12ab'");
        let e = err("x = 9223372036854775808");
        assert_eq!(e.span, at(1, 5));
        assert!(e.message.contains("too large"), "{}", e.message);
        assert!(err("1.5x").message.contains("invalid number"));
        assert!(err("1e5e").message.contains("invalid number"));
    }

    #[test]
    fn error_bad_date() {
        for (src, why) in [
            ("2023.02.30", "day"),
            ("2023.13.01", "month"),
            ("2023.00.10", "month"),
            ("2023.01.01T24:00:00", "hour"),
            ("2023.01.01T10:60:00", "minute"),
            ("2023.01.01T10:00:60", "second"),
            ("2023.01.01T10:00:00.12", "fractional"),
            ("2023.01.01T10:00", "hh:mm:ss"),
            ("2023.1.01", "yyyy.MM.dd"),
            ("1.2.3", "yyyy.MM.dd"),
            ("2023.01.01x", "after the date"),
        ] {
            let e = err(&format!("x = 1\nd = {src}"));
            assert_eq!(e.span, at(2, 5), "{src}");
            assert!(
                e.message.contains("invalid temporal literal"),
                "{src}: {}",
                e.message
            );
            assert!(e.message.contains(why), "{src}: {}", e.message);
        }
    }

    #[test]
    fn error_unexpected_token() {
        // (`f(1,,2)` is DolphinDB's empty argument; a trailing comma is not.)
        let e = err("f(1,)");
        assert_eq!(e.span, at(1, 5));
        assert_eq!(e.message, "expected an expression but found ')'");
        let e = err("x = 1 2");
        assert_eq!(e.span, at(1, 7));
        assert_eq!(
            e.message,
            "expected end of statement (a new line or ';') but found number '2'"
        );
        let e = err("x[0] = 1");
        assert_eq!(e.span, at(1, 6));
        assert!(e.message.contains("only a variable name"), "{}", e.message);
        let e = err("if (a = 1) { b }");
        assert_eq!(e.span, at(1, 7));
        assert_eq!(
            e.message,
            "expected ')' but found '=' (use '==' to compare)"
        );
        assert_eq!(err("f(x[0]=1)").span, at(1, 7));
        assert_eq!(err("x = = 1").span, at(1, 5));
        assert_eq!(
            err("if x { }").message,
            "expected '(' after 'if' but found 'x'"
        );
        assert_eq!(
            err("a.1").message,
            "expected a name after '.' but found number '1'"
        );
        assert_eq!(err("}").message, "unexpected '}' without a matching '{'");
        assert_eq!(err("else { x }").message, "'else' without a matching 'if'");
        assert_eq!(err("x = if").span, at(1, 5));
        assert_eq!(
            err("[1 2]").message,
            "expected ',' or ']' but found number '2'"
        );
        assert_eq!(
            err("`").message,
            "expected a name after '`' (a symbol is written `name)"
        );
        assert_eq!(err("a + * b").span, at(1, 5));
        assert_eq!(err("if (a)\n\nelse b").span, at(3, 1));
    }

    #[test]
    fn error_unexpected_end_of_input() {
        let e = err("x = f(1");
        assert_eq!(e.span, at(1, 8));
        assert_eq!(e.message, "expected ',' or ')' but found end of input");
        let e = err("x = 1 +");
        assert_eq!(e.message, "expected an expression but found end of input");
        let e = err("if (a) {\n  x = 1\n");
        assert_eq!(e.span, at(3, 1));
        assert_eq!(
            e.message,
            "expected '}' to close the '{' at line 1, column 8 but found end of input"
        );
        assert_eq!(
            err("if (a)").message,
            "expected a statement or '{' but found end of input"
        );
        assert!(err("[1, 2").message.ends_with("found end of input"));
        assert!(err("(").message.ends_with("found end of input"));
    }

    #[test]
    fn nesting_limits() {
        // within the limit
        let ok = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(p(&ok), "1");
        let ok = format!("{}x", "-".repeat(200));
        assert!(parse(&ok).is_ok());
        // beyond it: a clear error, not a stack overflow
        for src in [
            format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000)),
            format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)),
            format!("{}1{}", "f(".repeat(100_000), ")".repeat(100_000)),
            "-".repeat(100_000) + "x",
            "not ".repeat(100_000) + "x",
            "if (a) ".repeat(100_000) + "x",
            "if (a) {".repeat(100_000),
            vec!["1"; 100_000].join(" + "),
            "x".to_string() + &".f()".repeat(100_000),
            "x".to_string() + &"[0]".repeat(100_000),
        ] {
            let e = err(&src);
            assert!(e.message.contains("nested too deeply"), "{}", e.message);
        }
        // a long flat vector is fine
        let v = format!("[{}]", vec!["1"; 10_000].join(", "));
        assert!(parse(&v).is_ok());
    }

    #[test]
    fn never_panics_on_prefixes_and_garbage() {
        // Every prefix of the tutorial either parses or returns an error.
        let chars: Vec<char> = TUTORIAL.chars().collect();
        for i in 0..=chars.len() {
            let prefix: String = chars.iter().take(i).collect();
            let _ = parse(&prefix);
        }
        for src in [
            "\"",
            "'",
            "`",
            "/*",
            "/",
            "*/",
            "..",
            ".",
            "2023.",
            "2023.01.",
            "2023.01.01T",
            "2023.01.01T1",
            "2023.01.01T10:00:00.",
            "9999.12.31T23:59:59.999999999",
            "0001.01.01T00:00:00.000000000",
            "1e999",
            "1e",
            "0x10",
            "!",
            "!(",
            "a!",
            "(((",
            ")))",
            "]]",
            "}}",
            "{",
            "\\",
            "\u{0}",
            "é",
            "x.",
            "x..",
            "1:",
            ":",
            "f(a=)",
            "f(=1)",
            "if",
            "if (",
            "if ()",
            "else",
            "\r",
            "\t",
            "--",
            "not",
            "NULL()",
        ] {
            let _ = parse(src);
        }
        // Dates far out of range give errors, not overflow.
        assert!(err("9999.12.31T23:59:59.999999999")
            .message
            .contains("out of range"));
        assert!(parse("9999.12.31T23:59:59.999").is_ok());
        assert!(err("1e999").message.contains("invalid number"));
    }
}
