//! SQL: queries (`select` and its `from`, `where`, `group by`, `order by` and `limit`
//! clauses), which are expressions, and the `update`, `delete` and `insert` statements.

use super::{is_clause_word, is_word, node, starts_operand, Node, PResult, Parser};
use crate::lang::ast::{BinOp, Expr, ExprKind, Select, SelectItem, Span, Stmt};
use crate::lang::lexer::TokenKind;

// The `make_*` helpers take their parts boxed on purpose (see [`Node`]).
#[allow(clippy::boxed_local)]
impl Parser {
    // ----- SQL ----------------------------------------------------------------------------
    //
    // The functions on the recursive paths are kept small (work is moved into helpers that
    // are not active while recursing) so that the stack needed per nesting level stays small
    // even in debug builds.

    /// Whether a query starts here: `select` followed by `*` or the start of an expression.
    pub(super) fn at_select(&self) -> bool {
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
    pub(super) fn select(&mut self) -> PResult<Node<Expr>> {
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
    pub(super) fn sql_stmt(&mut self) -> PResult<Node<Stmt>> {
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
    pub(super) fn column_list_ahead(&self, e: &Expr) -> bool {
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
    use crate::lang::ast::{ExprKind, SelectItem, Stmt};
    use crate::lang::parser::parse;
    use crate::lang::parser::testing::*;

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
