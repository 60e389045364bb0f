//! Expressions: the binary operators by precedence climbing (with `in`, `not in` and
//! `between`), unary operators, the postfix calls, indexing and `.name` accesses, and the
//! primaries (literals, names, parenthesised expressions and vectors).

use super::{binop, is_word, node, starts_operand, Node, PResult, Parser};
use crate::lang::ast::{Arg, BinOp, Expr, ExprKind, Literal, Span, UnaryOp};
use crate::lang::lexer::TokenKind;

// The `make_*` helpers take their parts boxed on purpose (see [`Node`]).
#[allow(clippy::boxed_local)]
impl Parser {
    // ----- expressions --------------------------------------------------------------------
    //
    // The functions on the recursive paths are kept small (work is moved into helpers that
    // are not active while recursing) so that the stack needed per nesting level stays small
    // even in debug builds.

    pub(super) fn expr(&mut self) -> PResult<Node<Expr>> {
        self.enter()?;
        let result = if self.at_select() {
            self.select()
        } else {
            self.binary(0)
        };
        self.leave();
        result
    }

    /// Precedence climbing over the binary operators with precedence >= `min_prec`.
    fn binary(&mut self, min_prec: u8) -> PResult<Node<Expr>> {
        let mut lhs = self.unary()?;
        while let Some((op, prec, negated)) = self.peek_binop() {
            if prec < min_prec {
                break;
            }
            self.advance();
            if negated {
                self.advance(); // the `in` of `not in`
            }
            self.skip_newlines();
            let rhs = if op == BinOp::Between {
                self.between_rhs(prec)?
            } else {
                self.binary(prec + 1)?
            };
            lhs = Self::make_binary(op, lhs, rhs)?;
            if negated {
                lhs = Self::make_not(lhs)?;
            }
        }
        Ok(lhs)
    }

    /// The binary operator at the current token: the operator, its precedence and whether it
    /// is `not in` (two tokens, and the result is negated).
    fn peek_binop(&self) -> Option<(BinOp, u8, bool)> {
        let kind = self.peek();
        if let Some((op, prec)) = binop(kind) {
            return Some((op, prec, false));
        }
        let not_in = is_word(self.peek_at(1), "in");
        Some(match kind {
            TokenKind::Assign if self.sql_eq => (BinOp::Eq, 3, false),
            TokenKind::Not if not_in => (BinOp::In, 3, true),
            TokenKind::Ident(w) => {
                if w.eq_ignore_ascii_case("in") {
                    (BinOp::In, 3, false)
                } else if w.eq_ignore_ascii_case("between") {
                    (BinOp::Between, 3, false)
                } else if w.eq_ignore_ascii_case("and") {
                    (BinOp::And, 2, false)
                } else if w.eq_ignore_ascii_case("or") {
                    (BinOp::Or, 1, false)
                } else if w.eq_ignore_ascii_case("not") && not_in {
                    (BinOp::In, 3, true)
                } else {
                    return None;
                }
            }
            _ => return None,
        })
    }

    /// The right side of `between`: `lo:hi`, or SQL's `lo and hi`, made into the pair `lo:hi`.
    fn between_rhs(&mut self, prec: u8) -> PResult<Node<Expr>> {
        let lo = self.binary(prec + 1)?;
        let is_pair = matches!(
            lo.0.kind,
            ExprKind::Binary {
                op: BinOp::Pair,
                ..
            }
        );
        if is_pair || !(*self.peek() == TokenKind::And || is_word(self.peek(), "and")) {
            return Ok(lo);
        }
        self.advance();
        self.skip_newlines();
        let hi = self.binary(prec + 1)?;
        Self::make_binary(BinOp::Pair, lo, hi)
    }

    /// `not (inner)`, for `x not in y`.
    #[inline(never)]
    fn make_not(inner: Node<Expr>) -> PResult<Node<Expr>> {
        let (inner, h) = *inner;
        let span = inner.span;
        let h = Self::check_height(h + 1, span)?;
        let kind = ExprKind::Unary {
            op: UnaryOp::Not,
            expr: Box::new(inner),
        };
        Ok(node(Expr { kind, span }, h))
    }

    #[inline(never)]
    pub(super) fn make_binary(op: BinOp, lhs: Node<Expr>, rhs: Node<Expr>) -> PResult<Node<Expr>> {
        let (lhs, lh) = *lhs;
        let (rhs, rh) = *rhs;
        let span = lhs.span;
        let h = Self::check_height(lh.max(rh) + 1, span)?;
        Ok(node(
            Expr {
                kind: ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            },
            h,
        ))
    }

    fn unary(&mut self) -> PResult<Node<Expr>> {
        match self.peek() {
            TokenKind::Minus | TokenKind::Not | TokenKind::Bang => self.prefixed(),
            // `NOT x` (SQL style); `NOT` alone, `NOT = 1` or `NOT[0]` is still a name.
            TokenKind::Ident(w)
                if w.eq_ignore_ascii_case("not")
                    && starts_operand(self.peek_at(1))
                    && !matches!(self.peek_at(1), TokenKind::LBracket | TokenKind::Minus) =>
            {
                self.prefixed()
            }
            _ => self.postfix(),
        }
    }

    /// `-x`, `not x`, `!x`, at the operator.
    fn prefixed(&mut self) -> PResult<Node<Expr>> {
        let span = self.span();
        let op = if self.advance() == TokenKind::Minus {
            UnaryOp::Neg
        } else {
            UnaryOp::Not
        };
        self.enter()?;
        let operand = self.unary();
        self.leave();
        Self::make_unary(op, operand?, span)
    }

    #[inline(never)]
    fn make_unary(op: UnaryOp, operand: Node<Expr>, span: Span) -> PResult<Node<Expr>> {
        let (operand, h) = *operand;
        // Fold `-` applied directly to a number literal into a negative literal.
        if op == UnaryOp::Neg {
            let folded = match &operand.kind {
                ExprKind::Literal(Literal::Int(n)) => n.checked_neg().map(Literal::Int),
                ExprKind::Literal(Literal::Float(x)) => Some(Literal::Float(-x)),
                _ => None,
            };
            if let Some(lit) = folded {
                let kind = ExprKind::Literal(lit);
                return Ok(node(Expr { kind, span }, 1));
            }
        }
        let h = Self::check_height(h + 1, span)?;
        let kind = ExprKind::Unary {
            op,
            expr: Box::new(operand),
        };
        Ok(node(Expr { kind, span }, h))
    }

    fn postfix(&mut self) -> PResult<Node<Expr>> {
        let mut e = self.primary()?;
        loop {
            e = match self.peek() {
                TokenKind::LParen if self.insert_table && self.column_list_ahead(&e.0) => {
                    return Ok(e)
                }
                TokenKind::LParen => self.call_suffix(e)?,
                TokenKind::LBrace if self.partial_ahead(&e.0) => self.partial_suffix(e)?,
                TokenKind::LBracket => self.index_suffix(e)?,
                TokenKind::Dot => self.dot_suffix(e)?,
                _ => return Ok(e),
            };
        }
    }

    /// `f(args)`, at the `(`.
    fn call_suffix(&mut self, func: Node<Expr>) -> PResult<Node<Expr>> {
        let args = self.call_args()?;
        Self::make_call(func, args)
    }

    #[inline(never)]
    fn make_call(func: Node<Expr>, args: Node<Vec<Arg>>) -> PResult<Node<Expr>> {
        let (func, fh) = *func;
        let (args, ah) = *args;
        let span = func.span;
        let h = Self::check_height(fh.max(ah) + 1, span)?;
        let kind = ExprKind::Call {
            func: Box::new(func),
            args,
        };
        Ok(node(Expr { kind, span }, h))
    }

    /// Whether the `{` ahead starts a partial application of the name `func`: it follows the
    /// name directly, without a blank (`f{a}`); a `{` after a blank opens a block.
    fn partial_ahead(&self, func: &Expr) -> bool {
        let ExprKind::Ident(name) = &func.kind else {
            return false;
        };
        let brace = self.span();
        let len = u32::try_from(name.chars().count()).unwrap_or(u32::MAX);
        brace.line == func.span.line && brace.col == func.span.col.saturating_add(len)
    }

    /// `f{a, b}`, at the `{`.
    fn partial_suffix(&mut self, func: Node<Expr>) -> PResult<Node<Expr>> {
        self.advance();
        self.skip_newlines();
        let mut args = Vec::new();
        let mut h = 0;
        if !self.eat(&TokenKind::RBrace) {
            loop {
                if *self.peek() == TokenKind::Comma {
                    return Err(self.expected(
                        "an argument (xrepl fixes the first arguments only: f{a, b}, not f{, b})",
                    ));
                }
                let (arg, ah) = *self.expr()?;
                h = h.max(ah);
                args.push(arg);
                self.skip_newlines();
                if self.eat(&TokenKind::Comma) {
                    self.skip_newlines();
                    continue;
                }
                self.expect(&TokenKind::RBrace, "',' or '}'")?;
                break;
            }
        }
        let (func, fh) = *func;
        let span = func.span;
        let h = Self::check_height(fh.max(h) + 1, span)?;
        let kind = ExprKind::Partial {
            func: Box::new(func),
            args,
        };
        Ok(node(Expr { kind, span }, h))
    }

    /// `x[index]`, at the `[`.
    fn index_suffix(&mut self, target: Node<Expr>) -> PResult<Node<Expr>> {
        self.advance();
        let index = self.expr()?;
        self.expect(&TokenKind::RBracket, "']'")?;
        Self::make_index(target, index)
    }

    #[inline(never)]
    fn make_index(target: Node<Expr>, index: Node<Expr>) -> PResult<Node<Expr>> {
        let (target, th) = *target;
        let (index, ih) = *index;
        let span = target.span;
        let h = Self::check_height(th.max(ih) + 1, span)?;
        let kind = ExprKind::Index {
            target: Box::new(target),
            index: Box::new(index),
        };
        Ok(node(Expr { kind, span }, h))
    }

    /// `x.name(args)` or `x.name`, at the `.`.
    fn dot_suffix(&mut self, target: Node<Expr>) -> PResult<Node<Expr>> {
        self.advance();
        let name = match self.peek() {
            TokenKind::Ident(name) => name.clone(),
            _ => return Err(self.expected("a name after '.'")),
        };
        self.advance();
        let args = if *self.peek() == TokenKind::LParen {
            Some(self.call_args()?)
        } else {
            None
        };
        Self::make_dot(target, name, args)
    }

    #[inline(never)]
    fn make_dot(
        target: Node<Expr>,
        name: String,
        args: Option<Node<Vec<Arg>>>,
    ) -> PResult<Node<Expr>> {
        let (target, th) = *target;
        let span = target.span;
        let target = Box::new(target);
        let (kind, h) = match args {
            Some(args) => {
                let (args, ah) = *args;
                (ExprKind::Method { target, name, args }, th.max(ah))
            }
            None => (ExprKind::Field { target, name }, th),
        };
        let h = Self::check_height(h + 1, span)?;
        Ok(node(Expr { kind, span }, h))
    }

    /// `( args )`, at the `(`.
    fn call_args(&mut self) -> PResult<Node<Vec<Arg>>> {
        self.expect(&TokenKind::LParen, "'('")?;
        let mut args = Vec::new();
        let mut h = 0;
        if self.eat(&TokenKind::RParen) {
            return Ok(node(args, h));
        }
        // `count(*)`
        if *self.peek() == TokenKind::Star && *self.peek_at(1) == TokenKind::RParen {
            let span = self.span();
            self.advance();
            self.advance();
            let value = Expr {
                kind: ExprKind::Star,
                span,
            };
            args.push(Arg { name: None, value });
            return Ok(node(args, 1));
        }
        loop {
            // An empty argument, `f(a, , c)`: DolphinDB's way to leave it at its default. It
            // is passed as NULL.
            if *self.peek() == TokenKind::Comma {
                let span = self.span();
                self.advance();
                self.skip_newlines();
                let value = Expr {
                    kind: ExprKind::Literal(Literal::Null),
                    span,
                };
                args.push(Arg { name: None, value });
                continue;
            }
            let mut name = self.arg_name();
            let (value, vh) = *self.expr()?;
            h = h.max(vh);
            // `expr as name`, DolphinDB's other way to name an argument
            // (`table(1..n as id, rand(1.0, n) as v)`).
            if name.is_none() && is_word(self.peek(), "as") {
                if let TokenKind::Ident(alias) = self.peek_at(1) {
                    name = Some(alias.clone());
                    self.advance();
                    self.advance();
                }
            }
            args.push(Arg { name, value });
            if self.eat(&TokenKind::Comma) {
                self.skip_newlines();
                continue;
            }
            self.expect(&TokenKind::RParen, "',' or ')'")?;
            return Ok(node(args, h));
        }
    }

    /// The `name=` of a named argument, if there is one (consumed).
    fn arg_name(&mut self) -> Option<String> {
        let name = match (self.peek(), self.peek_at(1)) {
            (TokenKind::Ident(name), TokenKind::Assign) => name.clone(),
            _ => return None,
        };
        self.advance();
        self.advance();
        self.skip_newlines();
        Some(name)
    }

    fn primary(&mut self) -> PResult<Node<Expr>> {
        match self.peek() {
            TokenKind::LParen => self.paren(),
            TokenKind::LBracket => self.vector(),
            _ => self.atom(),
        }
    }

    /// `( expr )`, at the `(`.
    fn paren(&mut self) -> PResult<Node<Expr>> {
        let span = self.span();
        self.advance();
        let mut e = self.expr()?;
        self.expect(&TokenKind::RParen, "')'")?;
        // The expression starts at the '('.
        e.0.span = span;
        Ok(e)
    }

    /// `[a, b, c]`, at the `[`.
    fn vector(&mut self) -> PResult<Node<Expr>> {
        let span = self.span();
        self.advance();
        let mut items = Vec::new();
        let mut h = 0;
        if !self.eat(&TokenKind::RBracket) {
            loop {
                let (item, ih) = *self.expr()?;
                h = h.max(ih);
                items.push(item);
                if self.eat(&TokenKind::Comma) {
                    self.skip_newlines();
                    continue;
                }
                self.expect(&TokenKind::RBracket, "',' or ']'")?;
                break;
            }
        }
        let h = Self::check_height(h + 1, span)?;
        let kind = ExprKind::Vector(items);
        Ok(node(Expr { kind, span }, h))
    }

    /// A literal or a name: one token, no recursion.
    #[inline(never)]
    fn atom(&mut self) -> PResult<Node<Expr>> {
        let span = self.span();
        let kind = match self.peek() {
            TokenKind::Int(n) => ExprKind::Literal(Literal::Int(*n)),
            TokenKind::Float(x) => ExprKind::Literal(Literal::Float(*x)),
            TokenKind::Str(s) => ExprKind::Literal(Literal::String(s.clone())),
            TokenKind::True => ExprKind::Literal(Literal::Bool(true)),
            TokenKind::False => ExprKind::Literal(Literal::Bool(false)),
            TokenKind::Null => ExprKind::Literal(Literal::Null),
            TokenKind::Symbols(names) => match names.as_slice() {
                [name] => ExprKind::Literal(Literal::Symbol(name.clone())),
                _ => ExprKind::Literal(Literal::SymbolVector(names.clone())),
            },
            TokenKind::Date(d) => ExprKind::Literal(Literal::Date(*d)),
            TokenKind::DateTime(v) => ExprKind::Literal(Literal::DateTime(*v)),
            TokenKind::Timestamp(v) => ExprKind::Literal(Literal::Timestamp(*v)),
            TokenKind::NanoTimestamp(v) => ExprKind::Literal(Literal::NanoTimestamp(*v)),
            TokenKind::Ident(name) => ExprKind::Ident(name.clone()),
            _ => return Err(self.expected("an expression")),
        };
        self.advance();
        Ok(node(Expr { kind, span }, 1))
    }
}

#[cfg(test)]
mod tests {
    use crate::lang::ast::{ExprKind, Stmt};
    use crate::lang::parser::parse;
    use crate::lang::parser::testing::*;

    // ----- literals -----------------------------------------------------------------------

    #[test]
    fn integer_and_float_literals() {
        assert_eq!(p("1210000"), "1210000");
        assert_eq!(p("0"), "0");
        assert_eq!(p("9223372036854775807"), "9223372036854775807");
        assert_eq!(p("1.0"), "1.0");
        assert_eq!(p("3.25"), "3.25");
        assert_eq!(p("1e3"), "1000.0");
        assert_eq!(p("2.5E-1"), "0.25");
        assert_eq!(p("-1"), "-1");
        assert_eq!(p("-1.5"), "-1.5");
        assert_eq!(p("- 7"), "-7");
        assert_eq!(p("--7"), "7");
        assert_eq!(p("-x"), "(neg x)");
        assert_eq!(p("-f(1)"), "(neg (call f 1))");
        // a folded negative literal starts at the '-'
        assert_eq!(expr("  -5").span, at(1, 3));
    }

    #[test]
    fn string_literals() {
        assert_eq!(p(r#""dfs://testDB""#), r#""dfs://testDB""#);
        assert_eq!(p("'abc'"), r#""abc""#);
        assert_eq!(p(r#""a\nb\tc\\d\"e\'f""#), r#""a\nb\tc\\d\"e'f""#);
        assert_eq!(p(r#"'it\'s'"#), r#""it's""#);
        assert_eq!(p(r#""C:\data""#), r#""C:\\data""#);
        assert_eq!(p(r#""""#), r#""""#);
        assert_eq!(p("\"中文 // not a comment\""), "\"中文 // not a comment\"");
    }

    #[test]
    fn bool_null_symbol_literals() {
        assert_eq!(p("true"), "true");
        assert_eq!(p("false"), "false");
        assert_eq!(p("NULL"), "NULL");
        assert_eq!(p("`DateTime"), "`DateTime");
        assert_eq!(p("`0"), "`0");
        assert_eq!(p("`a`b`c"), "(symvec a b c)");
        assert_eq!(
            p("`SecurityID`DateTime`PreClosePx`OpenPx`HighPx`LowPx`LastPx`Volume`Amount"),
            "(symvec SecurityID DateTime PreClosePx OpenPx HighPx LowPx LastPx Volume Amount)"
        );
        // with a space they are two separate things, which is not a valid statement
        assert!(parse("`a `b").is_err());
        assert_eq!(p("[`a, `b_2]"), "[`a `b_2]");
        // type and partition names are plain identifiers
        assert_eq!(p("[SYMBOL, DATETIME, VALUE]"), "[SYMBOL DATETIME VALUE]");
    }

    #[test]
    fn temporal_literals() {
        assert_eq!(p("1970.01.01"), "(date 0)");
        assert_eq!(p("2023.01.01"), "(date 19358)");
        assert_eq!(p("1969.12.31"), "(date -1)");
        assert_eq!(p("2024.02.29"), "(date 19782)");
        // 2023.01.08 is day 19365; 09:30:00 is 34200 seconds
        assert_eq!(p("2023.01.08T09:30:00"), "(datetime 1673170200)");
        assert_eq!(p("2023.01.08T13:00:00"), "(datetime 1673182800)");
        assert_eq!(p("2023.01.08T09:30:00.000"), "(timestamp 1673170200000)");
        assert_eq!(p("2023.01.08T09:30:00.123"), "(timestamp 1673170200123)");
        assert_eq!(
            p("2023.01.08T09:30:00.000000001"),
            "(nanotimestamp 1673170200000000001)"
        );
        assert_eq!(p("2023.01.08T23:59:59"), "(datetime 1673222399)");
        assert_eq!(p("2023.01.01 + 1"), "(+ (date 19358) 1)");
    }

    #[test]
    fn vectors() {
        assert_eq!(p("[1, 2, 3]"), "[1 2 3]");
        assert_eq!(p("[]"), "[]");
        assert_eq!(p("[1.5, -2, \"x\", [true]]"), "[1.5 -2 \"x\" [true]]");
        assert_eq!(p("[1,\n 2,\n 3\n]"), "[1 2 3]");
    }

    // ----- operators ----------------------------------------------------------------------

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(p("1 + 2 * 3"), "(+ 1 (* 2 3))");
        assert_eq!(p("(1 + 2) * 3"), "(* (+ 1 2) 3)");
        assert_eq!(p("1 - 2 - 3"), "(- (- 1 2) 3)");
        assert_eq!(p("8 / 4 / 2 % 3"), "(% (/ (/ 8 4) 2) 3)");
        assert_eq!(p("a or b and c"), "(or a (and b c))");
        assert_eq!(p("a || b && c"), "(or a (and b c))");
        assert_eq!(p("a and b or c"), "(or (and a b) c)");
        assert_eq!(p("a == b + 1"), "(== a (+ b 1))");
        assert_eq!(p("a < b and c >= d"), "(and (< a b) (>= c d))");
        assert_eq!(p("a != b or a <> c"), "(or (!= a b) (!= a c))");
        assert_eq!(p("a <= b == c > d"), "(> (== (<= a b) c) d)");
        assert_eq!(p("1:0"), "(: 1 0)");
        assert_eq!(p("0..4999"), "(.. 0 4999)");
        assert_eq!(p("1..n+1"), "(.. 1 (+ n 1))");
        assert_eq!(p("0..1:2..3"), "(: (.. 0 1) (.. 2 3))");
        assert_eq!(p("a:b == c"), "(== (: a b) c)");
        assert_eq!(p("-x * 2"), "(* (neg x) 2)");
        assert_eq!(p("-x[0]"), "(neg (index x 0))");
        assert_eq!(p("not a == b"), "(== (not a) b)");
        assert_eq!(p("not (a == b)"), "(not (== a b))");
        assert_eq!(p("!a and b"), "(and (not a) b)");
        assert_eq!(p("a - -1"), "(- a -1)");
        assert_eq!(p("10+rand(1.0, 100)"), "(+ 10 (call rand 1.0 100))");
    }

    #[test]
    fn spans_are_first_tokens() {
        let e = expr("(a + b) * c");
        assert_eq!(e.span, at(1, 1));
        let ExprKind::Binary { lhs, rhs, .. } = &e.kind else {
            panic!("not binary")
        };
        assert_eq!(lhs.span, at(1, 1));
        assert_eq!(rhs.span, at(1, 11));
        let e = expr("x  .f(y)");
        assert_eq!(e.span, at(1, 1));
        let stmts = parse("\n  x = 1\n  if (x) { y }").unwrap_or_default();
        match stmts.as_slice() {
            [Stmt::Assign {
                span: s1, value, ..
            }, Stmt::If { span: s2, cond, .. }] => {
                assert_eq!(*s1, at(2, 3));
                assert_eq!(value.span, at(2, 7));
                assert_eq!(*s2, at(3, 3));
                assert_eq!(cond.span, at(3, 7));
            }
            other => panic!("unexpected {other:?}"),
        }
        // columns count characters, not bytes
        let stmts = parse("/* 中文 */ x").unwrap_or_default();
        match stmts.as_slice() {
            [Stmt::Expr(e)] => assert_eq!(e.span, at(1, 10)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ranges_versus_floats() {
        assert_eq!(p("0..4999"), "(.. 0 4999)");
        assert_eq!(p("0 .. 4999"), "(.. 0 4999)");
        assert_eq!(p("1.0"), "1.0");
        assert_eq!(p("1.5..3"), "(.. 1.5 3)");
        assert_eq!(p("1..2.5"), "(.. 1 2.5)");
        assert_eq!(
            p("take(0..120, 121)*60"),
            "(* (call take (.. 0 120) 121) 60)"
        );
    }

    #[test]
    fn dates_ranges() {
        assert_eq!(
            p("2023.01.01..2023.12.31"),
            "(.. (date 19358) (date 19722))"
        );
        assert_eq!(
            p("2023.01.08T09:30:00..2023.01.08T09:30:01"),
            "(.. (datetime 1673170200) (datetime 1673170201))"
        );
        assert_eq!(
            p("database(dbName, VALUE, 2023.01.01..2023.12.31)"),
            "(call database dbName VALUE (.. (date 19358) (date 19722)))"
        );
    }

    // ----- postfix ------------------------------------------------------------------------

    #[test]
    fn calls_methods_fields_indexing() {
        assert_eq!(p("f()"), "(call f)");
        assert_eq!(p("f(a, b)"), "(call f a b)");
        assert_eq!(p("x.f(y)"), "(.f x y)");
        assert_eq!(p("x.f()"), "(.f x)");
        assert_eq!(
            p("schema(db).clusterReplicationEnabled"),
            "(field (call schema db) clusterReplicationEnabled)"
        );
        assert_eq!(p("a.b.c(d).e"), "(field (.c (field a b) d) e)");
        assert_eq!(p("x[0]"), "(index x 0)");
        assert_eq!(p("x[0][1]"), "(index (index x 0) 1)");
        assert_eq!(p("x[i+1]"), "(index x (+ i 1))");
        assert_eq!(p("f(x)[0]"), "(index (call f x) 0)");
        assert_eq!(p("f(1)(2)"), "(call (call f 1) 2)");
        assert_eq!(p("(1 + 2).f(3)"), "(.f (+ 1 2) 3)");
        assert_eq!(p("[1, 2].size()"), "(.size [1 2])");
        assert_eq!(
            p("rpc(getControllerAlias(), getMasterReplicationStatus)"),
            "(call rpc (call getControllerAlias) getMasterReplicationStatus)"
        );
    }

    #[test]
    fn bang_names() {
        assert_eq!(p("tmp.join!(t)"), "(.join! tmp t)");
        assert_eq!(p("append!(t, x)"), "(call append! t x)");
        assert_eq!(p("t.dropColumns!(`a`b)"), "(.dropColumns! t (symvec a b))");
        assert_eq!(
            p("loadTable(dbName, tbName).append!(t)"),
            "(.append! (call loadTable dbName tbName) t)"
        );
        assert_eq!(p("a!=b"), "(!= a b)");
        assert_eq!(p("!a"), "(not a)");
        assert_eq!(p("a and !(b)"), "(and a (not b))");
        assert_eq!(p("not(b)"), "(not b)");
        // a `!` not followed by `(` is not part of the name
        assert!(parse("x.join!").is_err());
    }

    #[test]
    fn named_arguments() {
        assert_eq!(
            p("db.createPartitionedTable(table=schemaTable, tableName=tbName, partitionColumns=`DateTime)"),
            "(.createPartitionedTable db table=schemaTable tableName=tbName partitionColumns=`DateTime)"
        );
        assert_eq!(p("f(1, b=2)"), "(call f 1 b=2)");
        assert_eq!(p("f(a==b)"), "(call f (== a b))");
        assert_eq!(p("f(x=a==b)"), "(call f x=(== a b))");
        assert_eq!(p("f(\n  a=1,\n  b=2\n)"), "(call f a=1 b=2)");
        // `expr as name` names an argument too.
        assert_eq!(
            p("table(1..n as id, rand(1.0, n) as v)"),
            "(call table id=(.. 1 n) v=(call rand 1.0 n))"
        );
        assert_eq!(p("f(x as y, 2)"), "(call f y=x 2)");
        assert!(parse("f(x as)").is_err());
        // An empty argument is NULL (the function's default).
        assert_eq!(
            p(r#"loadTable("dfs://db", "t",,false)"#),
            r#"(call loadTable "dfs://db" "t" NULL false)"#
        );
        assert_eq!(p("f(, 1)"), "(call f NULL 1)");
    }

    #[test]
    fn partial_application_is_a_brace_right_after_a_name() {
        assert_eq!(
            p(r#"tableInsert{loadTable("dfs://db", "t")}"#),
            r#"(partial tableInsert (call loadTable "dfs://db" "t"))"#
        );
        assert_eq!(p("f{1, 2}(3)"), "(call (partial f 1 2) 3)");
        assert_eq!(p("f{\n  1,\n  2\n}"), "(partial f 1 2)");
        assert_eq!(p("f{}"), "(partial f )");
        assert_eq!(p("append!{t}(x)"), "(call (partial append! t) x)");
        // After a blank, a brace opens a block, as before.
        assert!(parse("if (x) {y = 1}").is_ok());
        assert!(parse("f {1}").is_err());
        assert!(parse("f{, 2}").is_err());
        assert!(parse("f{1").is_err());
    }

    #[test]
    fn in_and_between_precedence() {
        assert_eq!(p("x in y"), "(in x y)");
        assert_eq!(p("x in [1, 2]"), "(in x [1 2])");
        assert_eq!(p("a + 1 in b"), "(in (+ a 1) b)");
        assert_eq!(p("x in y and z"), "(and (in x y) z)");
        assert_eq!(p("z or x in y"), "(or z (in x y))");
        assert_eq!(p("x in y == true"), "(== (in x y) true)");
        assert_eq!(p("x in 1..3"), "(in x (.. 1 3))");
        assert_eq!(p("x between 1:5"), "(between x (: 1 5))");
        assert_eq!(p("x between a+1:b*2"), "(between x (: (+ a 1) (* b 2)))");
        assert_eq!(
            p("x between 0..1:2..3"),
            "(between x (: (.. 0 1) (.. 2 3)))"
        );
        assert_eq!(
            p("x between 1:5 and y in z"),
            "(and (between x (: 1 5)) (in y z))"
        );
        assert_eq!(p("a and x between 1:5"), "(and a (between x (: 1 5)))");
        assert_eq!(p("x between 1:5 == true"), "(== (between x (: 1 5)) true)");
        // SQL's `between lo and hi` makes the pair `lo:hi`
        assert_eq!(p("x between 1 and 5"), "(between x (: 1 5))");
        assert_eq!(p("x between 1 and 5 and y"), "(and (between x (: 1 5)) y)");
        assert_eq!(p("x between 1:2 and 5"), "(and (between x (: 1 2)) 5)");
        assert_eq!(p("x not in y"), "(not (in x y))");
        assert_eq!(p("x NOT IN y or z"), "(or (not (in x y)) z)");
        assert_eq!(p("x in\n  y"), "(in x y)");
        assert_eq!(p("f(x in y, 1)"), "(call f (in x y) 1)");
        // still ordinary names where an operand is expected
        assert_eq!(p("in(1, [1, 2])"), "(call in 1 [1 2])");
        assert_eq!(p("between = 1"), "(= between 1)");
        assert_eq!(p("x in in"), "(in x in)");
        assert_eq!(p("NOT = 1"), "(= NOT 1)");
        assert_eq!(p("NOT x"), "(not x)");
        assert_eq!(p("NOT[0]"), "(index NOT 0)");
        assert_eq!(p("AND"), "AND");
        let e = expr("a not in b");
        assert_eq!(e.span, at(1, 1));
        assert_eq!(
            err("x between").message,
            "expected an expression but found end of input"
        );
        assert_eq!(err("x not y").span, at(1, 3));
    }
}
