//! The parser of the console language: script text to a list of [`ast::Stmt`].
//!
//! Grammar (lowest to highest precedence for operators):
//!
//! ```text
//! script  := sep* (stmt (sep+ stmt)*)? sep*          sep := newline | ';'
//! stmt    := 'if' '(' expr ')' branch ('else' branch)?
//!          | IDENT '=' expr
//!          | update | delete | insert
//!          | expr
//! branch  := '{' script '}' | stmt
//! expr    := select | or
//! or      := and (('or' | '||') and)*
//! and     := cmp (('and' | '&&') cmp)*
//! cmp     := pair (('==' | '!=' | '<>' | '<' | '<=' | '>' | '>=' | 'in' | 'not' 'in') pair
//!                 | 'between' between)*
//! between := pair | pair 'and' pair                  (`lo and hi` becomes the pair `lo:hi`)
//! pair    := range (':' range)*
//! range   := add ('..' add)*
//! add     := mul (('+' | '-') mul)*
//! mul     := unary (('*' | '/' | '%') unary)*
//! unary   := ('-' | 'not' | '!') unary | postfix
//! postfix := primary ( '(' args ')' | '[' expr ']' | '.' IDENT ('(' args ')')? )*
//! primary := literal | IDENT | '(' expr ')' | '[' (expr (',' expr)*)? ']'
//! args    := '*' | (arg (',' arg)*)?    arg := IDENT '=' expr | expr
//!
//! select  := 'select' item (',' item)* 'from' expr where?
//!            ('group' 'by' IDENT (',' IDENT)*)?
//!            ('order' 'by' IDENT ('asc' | 'desc')? (',' IDENT ('asc' | 'desc')?)*)?
//!            ('limit' expr)?
//! item    := '*' | expr ('as' IDENT)?
//! where   := 'where' expr (',' expr)*               (the conditions are joined with `and`)
//! update  := 'update' expr 'set' IDENT '=' expr (',' IDENT '=' expr)* where?
//! delete  := 'delete' 'from' expr where?
//! insert  := 'insert' 'into' expr ('(' IDENT (',' IDENT)* ')')? 'values' '(' expr (',' expr)* ')'
//! ```
//!
//! All binary operators are left-associative. A newline right after a binary operator, a
//! comma or the `=` of an assignment continues the statement; newlines inside `(...)` and
//! `[...]` are ignored by the lexer. `-` applied directly to a number literal is folded into a
//! negative literal (`-1` is `Literal::Int(-1)`).
//!
//! SQL:
//! - The SQL words (`select`, `from`, `where`, `group`, `order`, `by`, `asc`, `desc`, `limit`,
//!   `as`, `update`, `set`, `delete`, `insert`, `into`, `values`, `in`, `between`) are not
//!   reserved: the lexer returns them as plain identifiers and the parser recognises them, in
//!   any letter case, only where they can start or continue SQL. So `limit = 10`,
//!   `f(select)` or `in(x, y)` still use ordinary names. A name after an operand never
//!   continues an expression, which is why the expression before `from`, `where`, `as`, ...
//!   ends there.
//! - `select` starts a query when it is followed by `*` or by something that can start an
//!   expression; `update`, `delete` and `insert` start a statement when they are followed by
//!   a name (`update t set ...`, `delete from ...`, `insert into ...`). A query is an
//!   expression (statement, right side of `=`, argument, parenthesised operand) but not an
//!   operand of an operator: write `x in (select ...)`.
//! - A clause keyword (`from`, `where`, `group`, `order`, `limit`, `set`, `values`) may start a
//!   new line of the same statement, unless what follows it cannot continue the clause (so a
//!   next line `limit = 5` is still an assignment).
//! - In a `where` clause `=` compares (like `==`); elsewhere it is an error inside an
//!   expression. `in`, `not in` and `between` have the precedence of the comparisons, so
//!   `x between 1:5` takes the pair `1:5`; `x not in y` is `not (x in y)`. Upper-case
//!   `AND`, `OR` (between operands) and `NOT` (before an operand) are accepted too.
//! - `count(*)` is a call whose only argument is [`ExprKind::Star`]; `*` is accepted as the
//!   sole argument of any call.
//! - `insert into t(a, b) values (...)`: a name directly followed by `(names) values` is the
//!   table and its column list, except `loadTable(db, tb) values (...)`, which is the table.
//!
//! Nesting (parentheses, unary operators, `if` blocks, queries) and the height of the produced
//! tree are both limited to [`MAX_DEPTH`], so that neither the parser nor code walking the tree
//! recursively can overflow the stack.

use super::ast::{
    self, Arg, BinOp, Expr, ExprKind, Literal, Select, SelectItem, Span, Stmt, UnaryOp,
};
use super::lexer::{tokenize, Token, TokenKind};

/// The deepest nesting the parser accepts, and the greatest height of a produced tree
/// (counting both statements and expressions).
pub const MAX_DEPTH: u32 = 256;

/// A syntax error with the position it was found at.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub span: ast::Span,
    pub message: String,
}

impl ParseError {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        ParseError {
            span,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Syntax error at {}: {}", self.span, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parse a whole script into its statements.
pub fn parse(src: &str) -> Result<Vec<Stmt>, ParseError> {
    let tokens = tokenize(src)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        sql_eq: false,
        insert_table: false,
    };
    parser.script()
}

type PResult<T> = Result<T, ParseError>;

/// A parsed node together with the height of its tree. Boxed so that the results passed
/// up and down the recursive descent stay small, which keeps the stack used per nesting level
/// small.
type Node<T> = Box<(T, u32)>;

fn node<T>(value: T, height: u32) -> Node<T> {
    Box::new((value, height))
}

static EOF: TokenKind = TokenKind::Eof;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: u32,
    /// Inside a `where` clause, where `=` compares.
    sql_eq: bool,
    /// Parsing the table of `insert into`, where `t(a, b) values` ends at the `(`.
    insert_table: bool,
}

fn binop(kind: &TokenKind) -> Option<(BinOp, u8)> {
    Some(match kind {
        TokenKind::Or | TokenKind::OrOr => (BinOp::Or, 1),
        TokenKind::And | TokenKind::AndAnd => (BinOp::And, 2),
        TokenKind::EqEq => (BinOp::Eq, 3),
        TokenKind::Ne => (BinOp::Ne, 3),
        TokenKind::Lt => (BinOp::Lt, 3),
        TokenKind::Le => (BinOp::Le, 3),
        TokenKind::Gt => (BinOp::Gt, 3),
        TokenKind::Ge => (BinOp::Ge, 3),
        TokenKind::Colon => (BinOp::Pair, 4),
        TokenKind::DotDot => (BinOp::Range, 5),
        TokenKind::Plus => (BinOp::Add, 6),
        TokenKind::Minus => (BinOp::Sub, 6),
        TokenKind::Star => (BinOp::Mul, 7),
        TokenKind::Slash => (BinOp::Div, 7),
        TokenKind::Percent => (BinOp::Mod, 7),
        _ => return None,
    })
}

/// Whether the token is the name `word`, in any letter case (SQL words are not reserved).
fn is_word(kind: &TokenKind, word: &str) -> bool {
    matches!(kind, TokenKind::Ident(name) if name.eq_ignore_ascii_case(word))
}

/// The words that end the expression before them in a query. They cannot be a column, a
/// table or a value inside SQL.
fn is_clause_word(kind: &TokenKind) -> bool {
    ["from", "where", "group", "order", "limit"]
        .iter()
        .any(|w| is_word(kind, w))
}

/// Whether the token can begin an expression.
fn starts_operand(kind: &TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::Int(_)
            | TokenKind::Float(_)
            | TokenKind::Str(_)
            | TokenKind::Symbols(_)
            | TokenKind::Date(_)
            | TokenKind::DateTime(_)
            | TokenKind::Timestamp(_)
            | TokenKind::NanoTimestamp(_)
            | TokenKind::Ident(_)
            | TokenKind::True
            | TokenKind::False
            | TokenKind::Null
            | TokenKind::LParen
            | TokenKind::LBracket
            | TokenKind::Minus
            | TokenKind::Not
            | TokenKind::Bang
    )
}

/// `update`, `delete` or `insert`.
fn is_sql_stmt_word(name: &str) -> bool {
    ["update", "delete", "insert"]
        .iter()
        .any(|w| name.eq_ignore_ascii_case(w))
}

// The `make_*` helpers take their parts boxed on purpose (see [`Node`]).
#[allow(clippy::boxed_local)]
impl Parser {
    // ----- token access -------------------------------------------------------------------

    fn peek(&self) -> &TokenKind {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> &TokenKind {
        self.tokens
            .get(self.pos.saturating_add(n))
            .map_or(&EOF, |t| &t.kind)
    }

    fn span(&self) -> Span {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .map_or(Span { line: 1, col: 1 }, |t| t.span)
    }

    /// Move to the next token (never past the end) and return the current one's kind.
    fn advance(&mut self) -> TokenKind {
        let kind = self.peek().clone();
        if kind != TokenKind::Eof {
            self.pos += 1;
        }
        kind
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if self.peek() == kind {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> PResult<Span> {
        let span = self.span();
        if self.eat(kind) {
            Ok(span)
        } else {
            Err(self.expected(what))
        }
    }

    /// An "expected X but found Y" error at the current token.
    #[inline(never)]
    fn expected(&self, what: &str) -> ParseError {
        let found = self.peek();
        let mut message = format!("expected {what} but found {}", found.describe());
        if *found == TokenKind::Assign {
            message.push_str(" (use '==' to compare)");
        }
        ParseError::new(self.span(), message)
    }

    fn skip_newlines(&mut self) {
        while *self.peek() == TokenKind::Newline {
            self.advance();
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), TokenKind::Newline | TokenKind::Semicolon) {
            self.advance();
        }
    }

    // ----- limits -------------------------------------------------------------------------

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                self.span(),
                format!("the script is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn check_height(height: u32, span: Span) -> PResult<u32> {
        if height > MAX_DEPTH {
            Err(ParseError::new(
                span,
                format!("the expression is nested too deeply (more than {MAX_DEPTH} levels)"),
            ))
        } else {
            Ok(height)
        }
    }

    // ----- statements ---------------------------------------------------------------------
    //
    // The functions on the recursive paths are kept small (work is moved into helpers that
    // are not active while recursing) so that the stack needed per nesting level stays small
    // even in debug builds.

    fn script(&mut self) -> PResult<Vec<Stmt>> {
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
            self.end_of_stmt(false)?;
        }
    }

    /// After a statement: a newline, `;`, the end of input, or (in a block) `}`.
    fn end_of_stmt(&self, in_block: bool) -> PResult<()> {
        match self.peek() {
            TokenKind::Newline | TokenKind::Semicolon | TokenKind::Eof => Ok(()),
            TokenKind::RBrace if in_block => Ok(()),
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
            self.end_of_stmt(true)?;
        }
    }

    #[inline(never)]
    fn unclosed_brace(&self, open: Span) -> ParseError {
        self.expected(&format!(
            "'}}' to close the '{{' at line {}, column {}",
            open.line, open.col
        ))
    }

    // ----- expressions --------------------------------------------------------------------

    fn expr(&mut self) -> PResult<Node<Expr>> {
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
    fn make_binary(op: BinOp, lhs: Node<Expr>, rhs: Node<Expr>) -> PResult<Node<Expr>> {
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
            let name = self.arg_name();
            let (value, vh) = *self.expr()?;
            h = h.max(vh);
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

    // ----- SQL ----------------------------------------------------------------------------

    /// Whether a query starts here: `select` followed by `*` or the start of an expression.
    fn at_select(&self) -> bool {
        is_word(self.peek(), "select")
            && (*self.peek_at(1) == TokenKind::Star || starts_operand(self.peek_at(1)))
    }

    /// Consume the SQL word `word` if it comes next, possibly after newlines (a statement may
    /// be spread over several lines), but not when the word on a later line is not followed by
    /// something that can continue the clause (`limit = 5` there is an assignment).
    fn clause(&mut self, word: &str) -> bool {
        let mut i = 0;
        while *self.peek_at(i) == TokenKind::Newline {
            i += 1;
        }
        if !is_word(self.peek_at(i), word) || (i > 0 && !starts_operand(self.peek_at(i + 1))) {
            return false;
        }
        for _ in 0..=i {
            self.advance();
        }
        true
    }

    /// An expression in SQL: must not start with a clause word (`select from t`).
    fn sql_operand(&mut self, what: &str) -> PResult<Node<Expr>> {
        let kind = self.peek();
        if !starts_operand(kind) || is_clause_word(kind) {
            return Err(self.expected(what));
        }
        self.expr()
    }

    /// A column (or alias) name.
    fn column_name(&mut self, what: &str) -> PResult<String> {
        match self.peek() {
            TokenKind::Ident(name) if !is_clause_word(self.peek()) => {
                let name = name.clone();
                self.advance();
                Ok(name)
            }
            _ => Err(self.expected(what)),
        }
    }

    /// `select items from table [where ...] [group by ...] [order by ...] [limit n]`, at
    /// `select`.
    fn select(&mut self) -> PResult<Node<Expr>> {
        let span = self.span();
        self.advance();
        let saved = std::mem::replace(&mut self.sql_eq, false);
        let items = self.select_items()?;
        if !self.clause("from") {
            return Err(self.expected("'from'"));
        }
        self.skip_newlines();
        let from = self.sql_operand("a table after 'from'")?;
        let filter = self.where_clause()?;
        let group_by = if self.clause("group") {
            self.group_by()?
        } else {
            Vec::new()
        };
        let order_by = if self.clause("order") {
            self.order_by()?
        } else {
            Vec::new()
        };
        let limit = if self.clause("limit") {
            self.skip_newlines();
            Some(self.sql_operand("the number of rows after 'limit'")?)
        } else {
            None
        };
        self.sql_eq = saved;
        let parts = SelectParts {
            items,
            from,
            filter,
            group_by,
            order_by,
            limit,
        };
        Self::make_select(parts, span)
    }

    #[inline(never)]
    fn make_select(parts: SelectParts, span: Span) -> PResult<Node<Expr>> {
        let (items, ih) = *parts.items;
        let (from, fh) = *parts.from;
        let (filter, wh) = split_opt(parts.filter);
        let (limit, lh) = split_opt(parts.limit);
        let h = Self::check_height(ih.max(fh).max(wh).max(lh) + 1, span)?;
        let select = Select {
            items,
            from,
            filter,
            group_by: parts.group_by,
            order_by: parts.order_by,
            limit,
        };
        let kind = ExprKind::Select(Box::new(select));
        Ok(node(Expr { kind, span }, h))
    }

    /// `*` or `expr [as alias]`, separated by commas.
    fn select_items(&mut self) -> PResult<Node<Vec<SelectItem>>> {
        let mut items = Vec::new();
        let mut h = 0;
        loop {
            if self.eat(&TokenKind::Star) {
                items.push(SelectItem::All);
            } else {
                let (expr, eh) = *self.sql_operand("a column, an expression or '*'")?;
                h = h.max(eh);
                let alias = if is_word(self.peek(), "as") {
                    self.advance();
                    Some(self.column_name("a name after 'as'")?)
                } else {
                    None
                };
                items.push(SelectItem::Expr { expr, alias });
            }
            if !self.eat(&TokenKind::Comma) {
                return Ok(node(items, h));
            }
            self.skip_newlines();
        }
    }

    /// `where cond {, cond}`, if it comes next: the conditions joined with `and`.
    fn where_clause(&mut self) -> PResult<Option<Node<Expr>>> {
        if !self.clause("where") {
            return Ok(None);
        }
        self.skip_newlines();
        let saved = std::mem::replace(&mut self.sql_eq, true);
        let mut cond = self.sql_operand("a condition after 'where'")?;
        while self.eat(&TokenKind::Comma) {
            self.skip_newlines();
            let next = self.sql_operand("a condition after ','")?;
            cond = Self::make_binary(BinOp::And, cond, next)?;
        }
        self.sql_eq = saved;
        Ok(Some(cond))
    }

    /// `by` and at least one name, after `group` or `order`.
    fn expect_by(&mut self, after: &str) -> PResult<()> {
        if !is_word(self.peek(), "by") {
            return Err(self.expected(&format!("'by' after '{after}'")));
        }
        self.advance();
        self.skip_newlines();
        Ok(())
    }

    /// `by c1, c2`, after `group`.
    fn group_by(&mut self) -> PResult<Vec<String>> {
        self.expect_by("group")?;
        let mut names = vec![self.column_name("a column name after 'by'")?];
        while self.eat(&TokenKind::Comma) {
            self.skip_newlines();
            names.push(self.column_name("a column name after ','")?);
        }
        Ok(names)
    }

    /// `by c1 [asc|desc], ...`, after `order`.
    fn order_by(&mut self) -> PResult<Vec<(String, bool)>> {
        self.expect_by("order")?;
        let mut keys = Vec::new();
        loop {
            let what = if keys.is_empty() {
                "a column name after 'by'"
            } else {
                "a column name after ','"
            };
            let name = self.column_name(what)?;
            let descending = if is_word(self.peek(), "desc") {
                self.advance();
                true
            } else {
                if is_word(self.peek(), "asc") {
                    self.advance();
                }
                false
            };
            keys.push((name, descending));
            if !self.eat(&TokenKind::Comma) {
                return Ok(keys);
            }
            self.skip_newlines();
        }
    }

    /// `update`, `delete` or `insert`, at the word.
    fn sql_stmt(&mut self) -> PResult<Node<Stmt>> {
        if is_word(self.peek(), "update") {
            self.update_stmt()
        } else if is_word(self.peek(), "delete") {
            self.delete_stmt()
        } else {
            self.insert_stmt()
        }
    }

    /// `update t set c = e {, c = e} [where ...]`, at `update`.
    fn update_stmt(&mut self) -> PResult<Node<Stmt>> {
        let span = self.span();
        self.advance();
        let table = self.sql_operand("a table after 'update'")?;
        if !self.clause("set") {
            return Err(self.expected("'set'"));
        }
        self.skip_newlines();
        let set = self.set_list()?;
        let filter = self.where_clause()?;
        Self::make_update(table, set, filter, span)
    }

    #[inline(never)]
    fn make_update(
        table: Node<Expr>,
        set: Node<Vec<(String, Expr)>>,
        filter: Option<Node<Expr>>,
        span: Span,
    ) -> PResult<Node<Stmt>> {
        let (table, th) = *table;
        let (set, sh) = *set;
        let (filter, wh) = split_opt(filter);
        let h = Self::check_height(th.max(sh).max(wh) + 1, span)?;
        Ok(node(
            Stmt::Update {
                table,
                set,
                filter,
                span,
            },
            h,
        ))
    }

    /// `c = e {, c = e}`, after `set`.
    fn set_list(&mut self) -> PResult<Node<Vec<(String, Expr)>>> {
        let mut set = Vec::new();
        let mut h = 0;
        loop {
            let what = if set.is_empty() {
                "a column name after 'set'"
            } else {
                "a column name after ','"
            };
            let name = self.column_name(what)?;
            self.expect(&TokenKind::Assign, "'=' after the column name")?;
            self.skip_newlines();
            let (value, vh) = *self.sql_operand("a value after '='")?;
            h = h.max(vh);
            set.push((name, value));
            if !self.eat(&TokenKind::Comma) {
                return Ok(node(set, h));
            }
            self.skip_newlines();
        }
    }

    /// `delete from t [where ...]`, at `delete`.
    fn delete_stmt(&mut self) -> PResult<Node<Stmt>> {
        let span = self.span();
        self.advance();
        if !is_word(self.peek(), "from") {
            return Err(self.expected("'from'"));
        }
        self.advance();
        self.skip_newlines();
        let table = self.sql_operand("a table after 'from'")?;
        let filter = self.where_clause()?;
        Self::make_delete(table, filter, span)
    }

    #[inline(never)]
    fn make_delete(
        table: Node<Expr>,
        filter: Option<Node<Expr>>,
        span: Span,
    ) -> PResult<Node<Stmt>> {
        let (table, th) = *table;
        let (filter, wh) = split_opt(filter);
        let h = Self::check_height(th.max(wh) + 1, span)?;
        Ok(node(
            Stmt::Delete {
                table,
                filter,
                span,
            },
            h,
        ))
    }

    /// `insert into t [(c1, c2)] values (e1, e2)`, at `insert`.
    fn insert_stmt(&mut self) -> PResult<Node<Stmt>> {
        let span = self.span();
        self.advance();
        if !is_word(self.peek(), "into") {
            return Err(self.expected("'into'"));
        }
        self.advance();
        self.skip_newlines();
        if is_word(self.peek(), "values") {
            return Err(self.expected("a table after 'into'"));
        }
        self.insert_table = true;
        let table = self.sql_operand("a table after 'into'");
        self.insert_table = false;
        let table = table?;
        let columns = if *self.peek() == TokenKind::LParen {
            Some(self.column_list()?)
        } else {
            None
        };
        if !self.clause("values") {
            return Err(self.expected("'values'"));
        }
        let values = self.values_list()?;
        Self::make_insert(table, columns, values, span)
    }

    #[inline(never)]
    fn make_insert(
        table: Node<Expr>,
        columns: Option<Vec<String>>,
        values: Node<Vec<Expr>>,
        span: Span,
    ) -> PResult<Node<Stmt>> {
        let (table, th) = *table;
        let (values, vh) = *values;
        let h = Self::check_height(th.max(vh) + 1, span)?;
        Ok(node(
            Stmt::Insert {
                table,
                columns,
                values,
                span,
            },
            h,
        ))
    }

    /// Whether `(name, ...) values` comes next, after the table `e` of `insert into`, so that
    /// the `(` opens a column list rather than a call. `loadTable(...)` is always a call.
    fn column_list_ahead(&self, e: &Expr) -> bool {
        if matches!(&e.kind, ExprKind::Ident(name) if name == "loadTable") {
            return false;
        }
        let mut i = 1;
        loop {
            if !matches!(self.peek_at(i), TokenKind::Ident(_)) {
                return false;
            }
            i += 1;
            match self.peek_at(i) {
                TokenKind::Comma => i += 1,
                TokenKind::RParen => break,
                _ => return false,
            }
        }
        i += 1;
        while *self.peek_at(i) == TokenKind::Newline {
            i += 1;
        }
        is_word(self.peek_at(i), "values")
    }

    /// `(c1, c2)`, at the `(`.
    fn column_list(&mut self) -> PResult<Vec<String>> {
        self.expect(&TokenKind::LParen, "'('")?;
        let mut names = vec![self.column_name("a column name")?];
        while self.eat(&TokenKind::Comma) {
            names.push(self.column_name("a column name after ','")?);
        }
        self.expect(&TokenKind::RParen, "',' or ')'")?;
        Ok(names)
    }

    /// `(e1, e2)` after `values`.
    fn values_list(&mut self) -> PResult<Node<Vec<Expr>>> {
        self.skip_newlines();
        self.expect(&TokenKind::LParen, "'(' after 'values'")?;
        let mut values = Vec::new();
        let mut h = 0;
        loop {
            let (value, vh) = *self.sql_operand("a value")?;
            h = h.max(vh);
            values.push(value);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(&TokenKind::RParen, "',' or ')'")?;
        Ok(node(values, h))
    }
}

/// The parts of a query, collected before the node is built.
struct SelectParts {
    items: Node<Vec<SelectItem>>,
    from: Node<Expr>,
    filter: Option<Node<Expr>>,
    group_by: Vec<String>,
    order_by: Vec<(String, bool)>,
    limit: Option<Node<Expr>>,
}

/// An optional node and its height (0 when absent).
fn split_opt<T>(n: Option<Node<T>>) -> (Option<T>, u32) {
    match n {
        Some(n) => {
            let (v, h) = *n;
            (Some(v), h)
        }
        None => (None, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- helpers: render trees as compact S-expressions -------------------------------

    fn op(o: BinOp) -> &'static str {
        o.symbol()
    }

    fn args(a: &[Arg]) -> String {
        a.iter()
            .map(|a| match &a.name {
                Some(n) => format!(" {n}={}", sx(&a.value)),
                None => format!(" {}", sx(&a.value)),
            })
            .collect()
    }

    fn sx(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Literal(l) => match l {
                Literal::Int(n) => n.to_string(),
                Literal::Float(x) => format!("{x:?}"),
                Literal::String(s) => format!("{s:?}"),
                Literal::Bool(b) => b.to_string(),
                Literal::Null => "NULL".into(),
                Literal::Symbol(s) => format!("`{s}"),
                Literal::SymbolVector(v) => format!("(symvec {})", v.join(" ")),
                Literal::Date(d) => format!("(date {d})"),
                Literal::DateTime(v) => format!("(datetime {v})"),
                Literal::Timestamp(v) => format!("(timestamp {v})"),
                Literal::NanoTimestamp(v) => format!("(nanotimestamp {v})"),
            },
            ExprKind::Ident(n) => n.clone(),
            ExprKind::Vector(items) => {
                format!("[{}]", items.iter().map(sx).collect::<Vec<_>>().join(" "))
            }
            ExprKind::Call { func, args: a } => format!("(call {}{})", sx(func), args(a)),
            ExprKind::Method {
                target,
                name,
                args: a,
            } => format!("(.{name} {}{})", sx(target), args(a)),
            ExprKind::Field { target, name } => format!("(field {} {name})", sx(target)),
            ExprKind::Index { target, index } => format!("(index {} {})", sx(target), sx(index)),
            ExprKind::Unary { op, expr } => match op {
                UnaryOp::Neg => format!("(neg {})", sx(expr)),
                UnaryOp::Not => format!("(not {})", sx(expr)),
            },
            ExprKind::Binary { op: o, lhs, rhs } => {
                format!("({} {} {})", op(*o), sx(lhs), sx(rhs))
            }
            ExprKind::Select(q) => sx_select(q),
            ExprKind::Star => "*".into(),
        }
    }

    /// `(select (items...) (from t) [(where c)] [(group a b)] [(order a asc b desc)] [(limit n)])`
    /// with an item `*`, `e` or `(as e alias)`.
    fn sx_select(q: &Select) -> String {
        let items: Vec<String> = q
            .items
            .iter()
            .map(|i| match i {
                SelectItem::All => "*".to_string(),
                SelectItem::Expr { expr, alias: None } => sx(expr),
                SelectItem::Expr {
                    expr,
                    alias: Some(a),
                } => format!("(as {} {a})", sx(expr)),
            })
            .collect();
        let mut s = format!("(select ({}) (from {})", items.join(" "), sx(&q.from));
        if let Some(f) = &q.filter {
            s.push_str(&format!(" (where {})", sx(f)));
        }
        if !q.group_by.is_empty() {
            s.push_str(&format!(" (group {})", q.group_by.join(" ")));
        }
        if !q.order_by.is_empty() {
            let keys: Vec<String> = q
                .order_by
                .iter()
                .map(|(c, desc)| format!("{c} {}", if *desc { "desc" } else { "asc" }))
                .collect();
            s.push_str(&format!(" (order {})", keys.join(" ")));
        }
        if let Some(l) = &q.limit {
            s.push_str(&format!(" (limit {})", sx(l)));
        }
        s.push(')');
        s
    }

    fn where_part(filter: &Option<Expr>) -> String {
        match filter {
            Some(f) => format!(" (where {})", sx(f)),
            None => String::new(),
        }
    }

    fn block(stmts: &[Stmt]) -> String {
        format!(
            "{{{}}}",
            stmts.iter().map(sx_stmt).collect::<Vec<_>>().join("; ")
        )
    }

    fn sx_stmt(s: &Stmt) -> String {
        match s {
            Stmt::Expr(e) => sx(e),
            Stmt::Assign { name, value, .. } => format!("(= {name} {})", sx(value)),
            Stmt::If {
                cond,
                then,
                otherwise,
                ..
            } => match otherwise {
                Some(o) => format!("(if {} {} else {})", sx(cond), block(then), block(o)),
                None => format!("(if {} {})", sx(cond), block(then)),
            },
            Stmt::Update {
                table, set, filter, ..
            } => {
                let set: Vec<String> = set
                    .iter()
                    .map(|(c, e)| format!("({c} {})", sx(e)))
                    .collect();
                format!(
                    "(update {} (set {}){})",
                    sx(table),
                    set.join(" "),
                    where_part(filter)
                )
            }
            Stmt::Delete { table, filter, .. } => {
                format!("(delete {}{})", sx(table), where_part(filter))
            }
            Stmt::Insert {
                table,
                columns,
                values,
                ..
            } => {
                let cols = match columns {
                    Some(c) => format!(" (columns {})", c.join(" ")),
                    None => String::new(),
                };
                let values: Vec<String> = values.iter().map(sx).collect();
                format!("(insert {}{cols} (values {}))", sx(table), values.join(" "))
            }
        }
    }

    /// Parse a script and render all its statements, separated by "; ".
    fn p(src: &str) -> String {
        match parse(src) {
            Ok(stmts) => stmts.iter().map(sx_stmt).collect::<Vec<_>>().join("; "),
            Err(e) => panic!("failed to parse {src:?}: {e}"),
        }
    }

    /// Parse a script that must consist of one expression statement.
    fn expr(src: &str) -> Expr {
        match parse(src) {
            Ok(mut stmts) if stmts.len() == 1 => match stmts.pop() {
                Some(Stmt::Expr(e)) => e,
                other => panic!("not an expression: {other:?}"),
            },
            other => panic!("expected one statement from {src:?}, got {other:?}"),
        }
    }

    fn err(src: &str) -> ParseError {
        match parse(src) {
            Ok(stmts) => panic!("{src:?} should not parse, got {stmts:?}"),
            Err(e) => e,
        }
    }

    fn at(line: u32, col: u32) -> Span {
        Span { line, col }
    }

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
    }

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

    /// The code blocks of sections 3.1 to 3.3 of the tutorial (plus the two statements of
    /// 4.2), except `select count(*) from loadTable("dfs://testDB", "testTB")`, which is
    /// tested in `sql_tutorial_select`.
    const TUTORIAL: &str = r#"// 创建存储的数据库
login("admin", "123456")
dbName = "dfs://testDB"
if(existsDatabase(dbName)){
  dropDatabase(dbName)
}
db = database(dbName, VALUE, 2023.01.01..2023.12.31)

setDatabaseForClusterReplication(db, true)

schema(db).clusterReplicationEnabled

getDatabaseClusterReplicationStatus()

// 创建分区表
tbName = "testTB"
colNames = `SecurityID`DateTime`PreClosePx`OpenPx`HighPx`LowPx`LastPx`Volume`Amount
colTypes = [SYMBOL, DATETIME, DOUBLE, DOUBLE, DOUBLE, DOUBLE, DOUBLE, INT, DOUBLE]
schemaTable = table(1:0, colNames, colTypes)
db.createPartitionedTable(table=schemaTable, tableName=tbName, partitionColumns=`DateTime)

loadTable("dfs://testDB", "testTB")

// 模拟数据并写入分区表
n = 1210000
randPrice = round(10+rand(1.0, 100), 2)
randVolume = 100+rand(100, 100)
SecurityID = lpad(string(take(0..4999, 5000)), 6, `0)
DateTime = (2023.01.08T09:30:00 + take(0..120, 121)*60).join(2023.01.08T13:00:00 + take(0..120, 121)*60)
PreClosePx = rand(randPrice, n)
OpenPx = rand(randPrice, n)
HighPx = rand(randPrice, n)
LowPx = rand(randPrice, n)
LastPx = rand(randPrice, n)
Volume = int(rand(randVolume, n))
Amount = round(LastPx*Volume, 2)
tmp = cj(table(SecurityID), table(DateTime))
t = tmp.join!(table(PreClosePx, OpenPx, HighPx, LowPx, LastPx, Volume, Amount))
dbName = "dfs://testDB"
tbName = "testTB"
loadTable(dbName, tbName).append!(t)

rpc(getControllerAlias(), getMasterReplicationStatus)

rpc(getControllerAlias(), getSlaveReplicationStatus)

rpc(getControllerAlias(), getRecentSlaveReplicationInfo)

rpc(getControllerAlias(), getClusterReplicationMetrics, 30)

rpc(getControllerAlias(),getClusterReplicationMetrics, -1)

rpc(getControllerAlias(), stopClusterReplication)

setDatabaseForClusterReplication(db, false)

rpc(getControllerAlias(), skipClusterReplicationTask, 938)
rpc(getControllerAlias(), startClusterReplication)
"#;

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
        let e = err("f(1,,2)");
        assert_eq!(e.span, at(1, 5));
        assert_eq!(e.message, "expected an expression but found ','");
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

    // ----- SQL ----------------------------------------------------------------------------

    #[test]
    fn sql_select_full() {
        assert_eq!(p("select * from t"), "(select (*) (from t))");
        assert_eq!(
            p(
                "select a, b as c, count(*) as n from t where x > 1, y == 2 \
               group by a, b order by a desc, b asc, c limit 10"
            ),
            "(select (a (as b c) (as (call count *) n)) (from t) \
             (where (and (> x 1) (== y 2))) (group a b) (order a desc b asc c asc) (limit 10))"
        );
        assert_eq!(
            p("select sum(x) / 2 as half, avg(y), max(x) - min(x) from t"),
            "(select ((as (/ (call sum x) 2) half) (call avg y) (- (call max x) (call min x))) \
             (from t))"
        );
        assert_eq!(
            p("select *, a from t order by a"),
            "(select (* a) (from t) (order a asc))"
        );
        assert_eq!(
            p("select -a, not b, 1, \"s\", `x, (a + b) as c from t"),
            "(select ((neg a) (not b) 1 \"s\" `x (as (+ a b) c)) (from t))"
        );
        assert_eq!(
            p("select a from t limit n + 1"),
            "(select (a) (from t) (limit (+ n 1)))"
        );
        assert_eq!(
            p("select a from t group by a limit 3"),
            "(select (a) (from t) (group a) (limit 3))"
        );
        assert_eq!(
            p("select a from t where b order by a desc"),
            "(select (a) (from t) (where b) (order a desc))"
        );
        // the table may be any expression
        assert_eq!(
            p("select * from (select a from t where b > 1) where a < 5"),
            "(select (*) (from (select (a) (from t) (where (> b 1)))) (where (< a 5)))"
        );
        assert_eq!(
            p("select * from tables[0].x"),
            "(select (*) (from (field (index tables 0) x)))"
        );
        assert_eq!(
            p("select * from db.loadTable(`t)"),
            "(select (*) (from (.loadTable db `t)))"
        );
        // a query is a whole expression: nothing may follow its last clause
        assert_eq!(
            err("select a from t group by a + 1").message,
            "expected end of statement (a new line or ';') but found '+'"
        );
    }

    #[test]
    fn sql_tutorial_select() {
        let src = r#"select count(*) from loadTable("dfs://testDB", "testTB")"#;
        assert_eq!(
            p(src),
            r#"(select ((call count *)) (from (call loadTable "dfs://testDB" "testTB")))"#
        );
        let e = expr(src);
        assert_eq!(e.span, at(1, 1));
        let ExprKind::Select(q) = &e.kind else {
            panic!("not a select: {e:?}")
        };
        let [SelectItem::Expr {
            expr: count,
            alias: None,
        }] = q.items.as_slice()
        else {
            panic!("unexpected items {:?}", q.items)
        };
        let ExprKind::Call { func, args } = &count.kind else {
            panic!("not a call: {count:?}")
        };
        assert_eq!(func.kind, ExprKind::Ident("count".into()));
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].name, None);
        assert_eq!(args[0].value.kind, ExprKind::Star);
        assert_eq!(args[0].value.span, at(1, 14));
        assert_eq!(q.from.span, at(1, 22));
        assert_eq!(q.filter, None);
        assert!(q.group_by.is_empty() && q.order_by.is_empty() && q.limit.is_none());
        // after the tutorial's other statements
        let script = format!("{TUTORIAL}\n{src}\n");
        match parse(&script) {
            Ok(stmts) => assert_eq!(stmts.len(), 40),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn sql_keywords_any_case() {
        assert_eq!(
            p("SELECT A, COUNT(*) AS N FROM T WHERE X = 1 GROUP BY A ORDER BY A DESC LIMIT 5"),
            "(select (A (as (call COUNT *) N)) (from T) (where (== X 1)) (group A) \
             (order A desc) (limit 5))"
        );
        assert_eq!(
            p("Select a From t Where b In [1, 2] Order By a Asc"),
            "(select (a) (from t) (where (in b [1 2])) (order a asc))"
        );
        assert_eq!(
            p("UPDATE t SET a = 1 WHERE b = 2"),
            "(update t (set (a 1)) (where (== b 2)))"
        );
        assert_eq!(p("DELETE FROM t"), "(delete t)");
        assert_eq!(
            p("INSERT INTO t (a) VALUES (1)"),
            "(insert t (columns a) (values 1))"
        );
        assert_eq!(
            p("select * from t where a > 1 AND b < 2 OR NOT c"),
            "(select (*) (from t) (where (or (and (> a 1) (< b 2)) (not c))))"
        );
        assert_eq!(
            p("select * from t where a NOT IN [1] And b BETWEEN 1 AND 2"),
            "(select (*) (from t) (where (and (not (in a [1])) (between b (: 1 2)))))"
        );
    }

    #[test]
    fn sql_where_conditions() {
        assert_eq!(
            p("select * from t where a = 1, b = 2"),
            "(select (*) (from t) (where (and (== a 1) (== b 2))))"
        );
        assert_eq!(
            p("select * from t where a, b, c"),
            "(select (*) (from t) (where (and (and a b) c)))"
        );
        assert_eq!(
            p("select * from t where a = 1 and b = 2 or c"),
            "(select (*) (from t) (where (or (and (== a 1) (== b 2)) c)))"
        );
        assert_eq!(
            p("select * from t where (a = 1) == [b = 2]"),
            "(select (*) (from t) (where (== (== a 1) [(== b 2)])))"
        );
        assert_eq!(
            p("select * from t where a = b + 1,\n  c != 2"),
            "(select (*) (from t) (where (and (== a (+ b 1)) (!= c 2))))"
        );
        // a named argument keeps its meaning inside a condition
        assert_eq!(
            p("select * from t where f(x=1) = 2"),
            "(select (*) (from t) (where (== (call f x=1) 2)))"
        );
        // `=` compares only in the where clause
        let e = err("select a = 1 from t");
        assert_eq!(e.span, at(1, 10));
        assert_eq!(
            e.message,
            "expected 'from' but found '=' (use '==' to compare)"
        );
        assert!(err("select * from t where a in (select b = 1 from u)")
            .message
            .starts_with("expected 'from' but found '='"));
        assert_eq!(
            p("select * from t where a in (select b from u where c = 1), d = 2"),
            "(select (*) (from t) (where (and (in a (select (b) (from u) (where (== c 1)))) \
             (== d 2))))"
        );
        assert_eq!(err("update t set a = b = 1").span, at(1, 20));
        assert_eq!(err("select * from t where a = 1\nx = y = 1").span, at(2, 7));
        assert_eq!(
            err("if (a = 1) { b }").message,
            "expected ')' but found '=' (use '==' to compare)"
        );
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

    #[test]
    fn select_as_argument_and_value() {
        assert_eq!(
            p("size(select * from t)"),
            "(call size (select (*) (from t)))"
        );
        assert_eq!(
            p("f(select a, b from t, 1)"),
            "(call f (select (a b) (from t)) 1)"
        );
        assert_eq!(
            p("f(x=select a from t where b = 1, c = 2)"),
            "(call f x=(select (a) (from t) (where (and (== b 1) (== c 2)))))"
        );
        assert_eq!(
            p("(select * from t).size()"),
            "(.size (select (*) (from t)))"
        );
        assert_eq!(p("x in (select a from t)"), "(in x (select (a) (from t)))");
        assert_eq!(p("[select a from t, 1]"), "[(select (a) (from t)) 1]");
        assert_eq!(p("t = select * from x"), "(= t (select (*) (from x)))");
        assert_eq!(
            p("n = select count(*) from t where a > 1"),
            "(= n (select ((call count *)) (from t) (where (> a 1))))"
        );
        assert_eq!(p("t =\n  select * from x"), "(= t (select (*) (from x)))");
        assert_eq!(p("t.count(*)"), "(.count t *)");
        assert_eq!(
            err("f(*, 1)").message,
            "expected an expression but found '*'"
        );
        let stmts = parse("x = 1\n  t = select a from b").unwrap_or_default();
        match stmts.as_slice() {
            [_, Stmt::Assign { value, .. }] => assert_eq!(value.span, at(2, 7)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sql_over_several_lines() {
        assert_eq!(
            p("select a,\n  b\nfrom t\nwhere x > 1,\n  y < 2\ngroup by a\norder by\n  b desc\nlimit 5\nz"),
            "(select (a b) (from t) (where (and (> x 1) (< y 2))) (group a) (order b desc) \
             (limit 5)); z"
        );
        assert_eq!(
            p("update t\nset a = 1\nwhere b = 2"),
            "(update t (set (a 1)) (where (== b 2)))"
        );
        assert_eq!(
            p("delete from\n t\n where b = 2"),
            "(delete t (where (== b 2)))"
        );
        assert_eq!(
            p("insert into t(a, b)\nvalues (1,\n 2)"),
            "(insert t (columns a b) (values 1 2))"
        );
        assert_eq!(
            p("if (x) {\n  select * from t\n  where a = 1\n}"),
            "(if x {(select (*) (from t) (where (== a 1)))})"
        );
        // a later line that cannot continue the clause is a statement of its own
        assert_eq!(
            p("t = select * from x\nlimit = 5\nwhere\norder"),
            "(= t (select (*) (from x))); (= limit 5); where; order"
        );
    }

    #[test]
    fn sql_words_as_names() {
        assert_eq!(p("limit = 10"), "(= limit 10)");
        assert_eq!(p("from + 1"), "(+ from 1)");
        assert_eq!(p("f(select)"), "(call f select)");
        assert_eq!(p("x = select"), "(= x select)");
        assert_eq!(p("select"), "select");
        assert_eq!(p("select + 1"), "(+ select 1)");
        assert_eq!(p("f(select=1, where=2)"), "(call f select=1 where=2)");
        assert_eq!(p("update = 1"), "(= update 1)");
        assert_eq!(p("update"), "update");
        assert_eq!(p("update!(t, `a, 1)"), "(call update! t `a 1)");
    }

    #[test]
    fn sql_update() {
        assert_eq!(p("update t set a = 1"), "(update t (set (a 1)))");
        assert_eq!(
            p("update t set a = a + 1, b = \"x\" where c > 2, d = 3"),
            "(update t (set (a (+ a 1)) (b \"x\")) (where (and (> c 2) (== d 3))))"
        );
        assert_eq!(
            p("update loadTable(\"dfs://db\", \"pt\") set price = price * 2 where id in [1, 2]"),
            "(update (call loadTable \"dfs://db\" \"pt\") (set (price (* price 2))) \
             (where (in id [1 2])))"
        );
        assert_eq!(
            p("update t set a = b == 1"),
            "(update t (set (a (== b 1))))"
        );
        assert_eq!(
            p("if (x) update t set a = 1 else delete from t"),
            "(if x {(update t (set (a 1)))} else {(delete t)})"
        );
        let stmts = parse("\n  update t set a = 1").unwrap_or_default();
        match stmts.as_slice() {
            [Stmt::Update { span, set, .. }] => {
                assert_eq!(*span, at(2, 3));
                assert_eq!(set[0].1.span, at(2, 20));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sql_delete() {
        assert_eq!(p("delete from t"), "(delete t)");
        assert_eq!(
            p("delete from t where a = 1"),
            "(delete t (where (== a 1)))"
        );
        assert_eq!(
            p("delete from loadTable(db, tb) where x between 1:3, y not in `a`b"),
            "(delete (call loadTable db tb) (where (and (between x (: 1 3)) \
             (not (in y (symvec a b))))))"
        );
        assert_eq!(p("delete(x)"), "(call delete x)");
        let stmts = parse("a; delete from t").unwrap_or_default();
        match stmts.as_slice() {
            [_, Stmt::Delete { span, table, .. }] => {
                assert_eq!(*span, at(1, 4));
                assert_eq!(table.span, at(1, 16));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sql_insert() {
        assert_eq!(
            p("insert into t values (1, \"a\", 2.5)"),
            "(insert t (values 1 \"a\" 2.5))"
        );
        assert_eq!(
            p("insert into t(a, b) values ([1, 2], [3, 4])"),
            "(insert t (columns a b) (values [1 2] [3 4]))"
        );
        assert_eq!(
            p("insert into t (a) values(x + 1)"),
            "(insert t (columns a) (values (+ x 1)))"
        );
        assert_eq!(
            p("insert into loadTable(db, tb) values (1, 2)"),
            "(insert (call loadTable db tb) (values 1 2))"
        );
        assert_eq!(
            p("insert into loadTable(\"dfs://db\", \"t\")(a, b) values (1, 2)"),
            "(insert (call loadTable \"dfs://db\" \"t\") (columns a b) (values 1 2))"
        );
        assert_eq!(
            p("insert into f(1) values (2)"),
            "(insert (call f 1) (values 2))"
        );
        assert_eq!(
            p("insert into t values (2023.01.01, `a`b, 1:2)"),
            "(insert t (values (date 19358) (symvec a b) (: 1 2)))"
        );
        assert_eq!(p("insert(x)"), "(call insert x)");
        // the column list is only recognised in insert
        assert_eq!(p("t(a, b)"), "(call t a b)");
        let stmts = parse("insert into t values (1)").unwrap_or_default();
        match stmts.as_slice() {
            [Stmt::Insert {
                span,
                columns: None,
                values,
                ..
            }] => {
                assert_eq!(*span, at(1, 1));
                assert_eq!(values[0].span, at(1, 23));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sql_errors() {
        for (src, pos, message) in [
            (
                "select a, b where x > 1",
                at(1, 13),
                "expected 'from' but found 'where'",
            ),
            (
                "select a",
                at(1, 9),
                "expected 'from' but found end of input",
            ),
            (
                "x = 1\nselect a\nwhere b",
                at(2, 9),
                "expected 'from' but found end of line",
            ),
            (
                "select from t",
                at(1, 8),
                "expected a column, an expression or '*' but found 'from'",
            ),
            (
                "select a, from t",
                at(1, 11),
                "expected a column, an expression or '*' but found 'from'",
            ),
            (
                "select * from",
                at(1, 14),
                "expected a table after 'from' but found end of input",
            ),
            (
                "select * from where a",
                at(1, 15),
                "expected a table after 'from' but found 'where'",
            ),
            (
                "select * from t where",
                at(1, 22),
                "expected a condition after 'where' but found end of input",
            ),
            (
                "select * from t where; x",
                at(1, 22),
                "expected a condition after 'where' but found ';'",
            ),
            (
                "delete from t where a = 1,",
                at(1, 27),
                "expected a condition after ',' but found end of input",
            ),
            (
                "select * from t group a",
                at(1, 23),
                "expected 'by' after 'group' but found 'a'",
            ),
            (
                "select * from t order by",
                at(1, 25),
                "expected a column name after 'by' but found end of input",
            ),
            (
                "select * from t order by a,",
                at(1, 28),
                "expected a column name after ',' but found end of input",
            ),
            (
                "select * from t limit",
                at(1, 22),
                "expected the number of rows after 'limit' but found end of input",
            ),
            (
                "select a as from t",
                at(1, 13),
                "expected a name after 'as' but found 'from'",
            ),
            (
                "select a as 1 from t",
                at(1, 13),
                "expected a name after 'as' but found number '1'",
            ),
            (
                "update t where a = 1",
                at(1, 10),
                "expected 'set' but found 'where'",
            ),
            (
                "update t",
                at(1, 9),
                "expected 'set' but found end of input",
            ),
            (
                "update t set",
                at(1, 13),
                "expected a column name after 'set' but found end of input",
            ),
            (
                "update t set where a = 1",
                at(1, 14),
                "expected a column name after 'set' but found 'where'",
            ),
            (
                "update t set a",
                at(1, 15),
                "expected '=' after the column name but found end of input",
            ),
            (
                "update t set a == 1",
                at(1, 16),
                "expected '=' after the column name but found '=='",
            ),
            (
                "update t set a =",
                at(1, 17),
                "expected a value after '=' but found end of input",
            ),
            (
                "update t set a = 1,",
                at(1, 20),
                "expected a column name after ',' but found end of input",
            ),
            ("delete t", at(1, 8), "expected 'from' but found 't'"),
            ("delete x from t", at(1, 8), "expected 'from' but found 'x'"),
            (
                "delete from t where",
                at(1, 20),
                "expected a condition after 'where' but found end of input",
            ),
            (
                "insert t values (1)",
                at(1, 8),
                "expected 'into' but found 't'",
            ),
            (
                "insert into values (1)",
                at(1, 13),
                "expected a table after 'into' but found 'values'",
            ),
            (
                "insert into t (1)",
                at(1, 18),
                "expected 'values' but found end of input",
            ),
            (
                "insert into t values 1",
                at(1, 22),
                "expected '(' after 'values' but found number '1'",
            ),
            (
                "insert into t values ()",
                at(1, 23),
                "expected a value but found ')'",
            ),
            (
                "insert into t values (1, 2",
                at(1, 27),
                "expected ',' or ')' but found end of input",
            ),
            (
                "select * from t limit 1 where a",
                at(1, 25),
                "expected end of statement (a new line or ';') but found 'where'",
            ),
        ] {
            let e = err(src);
            assert_eq!((e.span, e.message.as_str()), (pos, message), "{src}");
        }
        assert_eq!(
            err("x = 1\nupdate t set").to_string(),
            "Syntax error at line 2, column 13: expected a column name after 'set' but found \
             end of input"
        );
    }

    #[test]
    fn sql_nesting_limits() {
        // within the limit
        let ok = format!("{}t{}", "select * from (".repeat(60), ")".repeat(60));
        assert!(parse(&ok).is_ok());
        let ok = format!("{}t{}", "size(select * from ".repeat(60), ")".repeat(60));
        assert!(parse(&ok).is_ok());
        let conds = vec!["a"; 200].join(", ");
        assert!(parse(&format!("select * from t where {conds}")).is_ok());
        // long flat lists are fine
        let items = vec!["a"; 10_000].join(", ");
        assert!(parse(&format!("select {items} from t")).is_ok());
        let set = vec!["a = 1"; 10_000].join(", ");
        assert!(parse(&format!("update t set {set}")).is_ok());
        let values = vec!["1"; 10_000].join(", ");
        assert!(parse(&format!("insert into t values ({values})")).is_ok());
        // beyond it: a clear error, not a stack overflow
        for src in [
            format!(
                "{}t{}",
                "select * from (".repeat(100_000),
                ")".repeat(100_000)
            ),
            "select * from (".repeat(100_000),
            format!(
                "{}t{}",
                "size(select * from ".repeat(100_000),
                ")".repeat(100_000)
            ),
            "select * from t where ".repeat(100_000),
            "select count(".repeat(100_000),
            "select a as b from select ".repeat(100_000) + "* from t",
            format!("select * from t where {}", vec!["a"; 100_000].join(", ")),
            format!("delete from t where {}", vec!["a = 1"; 100_000].join(", ")),
            format!("update t set a = {}", "(".repeat(100_000)),
            format!("insert into t values ({}", "[".repeat(100_000)),
            vec!["x"; 100_000].join(" in "),
            vec!["x"; 100_000].join(" not in "),
            vec!["x"; 100_000].join(" between "),
            "x between ".repeat(100_000) + "1 and 2",
            format!("x in {}", "(x in ".repeat(100_000)),
            "NOT ".repeat(100_000) + "x",
        ] {
            let e = err(&src);
            assert!(e.message.contains("nested too deeply"), "{}", e.message);
        }
    }

    #[test]
    fn sql_never_panics_on_prefixes() {
        for src in [
            r#"select count(*) from loadTable("dfs://testDB", "testTB")"#,
            "SELECT a, sum(b) AS s FROM t WHERE a = 1, b between 1:5, c not in [1, 2]\n\
             GROUP BY a ORDER BY s DESC, a LIMIT 10",
            "t = select * from (select a from u where x in (select y from v)) order by a asc",
            "update loadTable(db, tb) set a = a + 1, b = \"x\" where c > 2, d = 3",
            "delete from t where a = 1 and b between 2 and 3",
            "insert into t(a, b) values ([1, 2], `x`y)\ninsert into loadTable(db, tb) values (1)",
            "if (x) { update t set a = 1 } else delete from t where b",
        ] {
            let chars: Vec<char> = src.chars().collect();
            for i in 0..=chars.len() {
                let prefix: String = chars.iter().take(i).collect();
                let _ = parse(&prefix);
                // and with garbage appended
                for tail in [" ,", " from", " where", " =", " (", " *", " )", "\n"] {
                    let _ = parse(&format!("{prefix}{tail}"));
                }
            }
            assert!(parse(src).is_ok(), "{src}");
        }
    }
}
