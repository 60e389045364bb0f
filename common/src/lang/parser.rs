//! The parser of the console language: script text to a list of [`ast::Stmt`].
//!
//! Grammar (lowest to highest precedence for operators):
//!
//! ```text
//! script  := sep* (stmt (sep+ stmt)*)? sep*          sep := newline | ';'
//! stmt    := 'if' '(' expr ')' branch ('else' branch)?
//!          | IDENT '=' expr
//!          | expr
//! branch  := '{' script '}' | stmt
//! expr    := or
//! or      := and (('or' | '||') and)*
//! and     := cmp (('and' | '&&') cmp)*
//! cmp     := pair (('==' | '!=' | '<>' | '<' | '<=' | '>' | '>=') pair)*
//! pair    := range (':' range)*
//! range   := add ('..' add)*
//! add     := mul (('+' | '-') mul)*
//! mul     := unary (('*' | '/' | '%') unary)*
//! unary   := ('-' | 'not' | '!') unary | postfix
//! postfix := primary ( '(' args ')' | '[' expr ']' | '.' IDENT ('(' args ')')? )*
//! primary := literal | IDENT | '(' expr ')' | '[' (expr (',' expr)*)? ']'
//! args    := (arg (',' arg)*)?          arg := IDENT '=' expr | expr
//! ```
//!
//! All binary operators are left-associative. A newline right after a binary operator, a
//! comma or the `=` of an assignment continues the statement; newlines inside `(...)` and
//! `[...]` are ignored by the lexer. `-` applied directly to a number literal is folded into a
//! negative literal (`-1` is `Literal::Int(-1)`).
//!
//! Nesting (parentheses, unary operators, `if` blocks) and the height of the produced tree are
//! both limited to [`MAX_DEPTH`], so that neither the parser nor code walking the tree
//! recursively can overflow the stack.

use super::ast::{self, Arg, BinOp, Expr, ExprKind, Literal, Span, Stmt, UnaryOp};
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
        let result = self.binary(0);
        self.leave();
        result
    }

    /// Precedence climbing over the binary operators with precedence >= `min_prec`.
    fn binary(&mut self, min_prec: u8) -> PResult<Node<Expr>> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = binop(self.peek()) {
            if prec < min_prec {
                break;
            }
            self.advance();
            self.skip_newlines();
            let rhs = self.binary(prec + 1)?;
            lhs = Self::make_binary(op, lhs, rhs)?;
        }
        Ok(lhs)
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
            // SQL (`select ... from ...`, `update`, `delete`, `insert into`) will be parsed by
            // matching the leading identifier here (or in `primary`) before falling back to a
            // plain name.
            TokenKind::Ident(name) => ExprKind::Ident(name.clone()),
            _ => return Err(self.expected("an expression")),
        };
        self.advance();
        Ok(node(Expr { kind, span }, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- helpers: render trees as compact S-expressions -------------------------------

    fn op(o: BinOp) -> &'static str {
        match o {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Range => "..",
            BinOp::Pair => ":",
            BinOp::In => "in",
            BinOp::Between => "between",
        }
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
            ExprKind::Select(q) => format!("(select from {})", sx(&q.from)),
            ExprKind::Star => "*".into(),
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
            Stmt::Update { table, .. } => format!("(update {})", sx(table)),
            Stmt::Delete { table, .. } => format!("(delete {})", sx(table)),
            Stmt::Insert { table, .. } => format!("(insert {})", sx(table)),
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
    /// 4.2), except `select count(*) from loadTable("dfs://testDB", "testTB")`, which is SQL
    /// and not part of this grammar yet.
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
}
