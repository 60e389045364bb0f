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
//!
//! [`ast::Stmt`]: crate::lang::ast::Stmt
//! [`ExprKind::Star`]: crate::lang::ast::ExprKind::Star

use crate::lang::ast::{BinOp, Span, Stmt};
use crate::lang::error::ParseError;
use crate::lang::lexer::{tokenize, Token, TokenKind};

mod expr;
mod sql;
mod stmt;

/// The deepest nesting the parser accepts, and the greatest height of a produced tree
/// (counting both statements and expressions).
pub const MAX_DEPTH: u32 = 256;

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
}

#[cfg(test)]
pub(super) mod testing {
    //! What the parser's tests share: the parse shortcuts (`p`, `expr`, `err`, `at`), the
    //! printers of trees as compact S-expressions (`sx`, `sx_stmt`) and the tutorial script.

    use super::parse;
    use crate::lang::ast::{
        Arg, BinOp, Expr, ExprKind, Literal, Select, SelectItem, Span, Stmt, UnaryOp,
    };
    use crate::lang::error::ParseError;

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

    pub(super) fn sx(e: &Expr) -> String {
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
            ExprKind::Partial { func, args: a } => {
                let a: Vec<String> = a.iter().map(sx).collect();
                format!("(partial {} {})", sx(func), a.join(" "))
            }
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

    pub(super) fn sx_stmt(s: &Stmt) -> String {
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
    pub(super) fn p(src: &str) -> String {
        match parse(src) {
            Ok(stmts) => stmts.iter().map(sx_stmt).collect::<Vec<_>>().join("; "),
            Err(e) => panic!("failed to parse {src:?}: {e}"),
        }
    }

    /// Parse a script that must consist of one expression statement.
    pub(super) fn expr(src: &str) -> Expr {
        match parse(src) {
            Ok(mut stmts) if stmts.len() == 1 => match stmts.pop() {
                Some(Stmt::Expr(e)) => e,
                other => panic!("not an expression: {other:?}"),
            },
            other => panic!("expected one statement from {src:?}, got {other:?}"),
        }
    }

    pub(super) fn err(src: &str) -> ParseError {
        match parse(src) {
            Ok(stmts) => panic!("{src:?} should not parse, got {stmts:?}"),
            Err(e) => e,
        }
    }

    pub(super) fn at(line: u32, col: u32) -> Span {
        Span { line, col }
    }

    /// The code blocks of sections 3.1 to 3.3 of the tutorial (plus the two statements of
    /// 4.2), except `select count(*) from loadTable("dfs://testDB", "testTB")`, which is
    /// tested in `sql_tutorial_select`.
    pub(super) const TUTORIAL: &str = r#"// 创建存储的数据库
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
}
