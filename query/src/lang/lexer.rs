//! The lexer of the console language: turns script text into [`Token`]s with [`Span`]s.
//!
//! Notes on the less obvious rules:
//! - A newline produces a [`TokenKind::Newline`] token only when it is not inside `(...)` or
//!   `[...]` (a `{` opened inside parentheses makes newlines significant again until it closes).
//! - `0..4999` is `Int(0)`, `DotDot`, `Int(4999)`; `1.5` is a float; `2023.01.01` is a date;
//!   `2023.01.08T09:30:00[.000[000000]]` is a DATETIME / TIMESTAMP / NANOTIMESTAMP.
//! - An identifier may end with one `!` when the `!` is immediately followed by `(`
//!   (`append!(...)`, `t.join!(u)`); otherwise `!` is the logical not (or part of `!=`).
//! - Back-ticked names written together (`` `a`b`c ``) form one [`TokenKind::Symbols`] token.
//! - The SQL words (`select`, `from`, `where`, `in`, `between`, ...) are not keywords: they
//!   are lexed as [`TokenKind::Ident`] in any letter case and the parser recognises them by
//!   name where SQL can appear, so they remain usable as ordinary names elsewhere. Only the
//!   lower-case `and`, `or`, `not`, `if`, `else`, `true`, `false` and `NULL` are keywords.

use super::ast::Span;
use super::error::ParseError;
use chrono::{Datelike, NaiveDate};

/// One token of the script.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    Int(i64),
    Float(f64),
    Str(String),
    /// One or more back-ticked names written together: `` `a `` or `` `a`b`c ``.
    Symbols(Vec<String>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Seconds since the epoch.
    DateTime(i64),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    /// Nanoseconds since the epoch.
    NanoTimestamp(i64),
    /// A name; may end in `!` (`append!`).
    Ident(String),
    // keywords
    And,
    Or,
    Not,
    If,
    Else,
    True,
    False,
    Null,
    // punctuation
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Semicolon,
    Newline,
    Dot,
    DotDot,
    Colon,
    /// `=`
    Assign,
    /// `==`
    EqEq,
    /// `!=` or `<>`
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `!`
    Bang,
    Eof,
}

impl TokenKind {
    /// How the token is named in error messages, e.g. `','`, `'foo'`, `end of input`.
    pub fn describe(&self) -> String {
        let p = |s: &str| format!("'{s}'");
        match self {
            TokenKind::Int(n) => format!("number '{n}'"),
            TokenKind::Float(x) => format!("number '{x:?}'"),
            TokenKind::Str(s) => {
                let short: String = s.chars().take(20).collect();
                if short.len() < s.len() {
                    format!("string \"{short}...\"")
                } else {
                    format!("string \"{short}\"")
                }
            }
            TokenKind::Symbols(names) => {
                let mut s = String::from("symbol '");
                for n in names {
                    s.push('`');
                    s.push_str(n);
                }
                s.push('\'');
                s
            }
            TokenKind::Date(_) => "date literal".to_string(),
            TokenKind::DateTime(_) => "datetime literal".to_string(),
            TokenKind::Timestamp(_) => "timestamp literal".to_string(),
            TokenKind::NanoTimestamp(_) => "nanotimestamp literal".to_string(),
            TokenKind::Ident(name) => p(name),
            TokenKind::And => p("and"),
            TokenKind::Or => p("or"),
            TokenKind::Not => p("not"),
            TokenKind::If => p("if"),
            TokenKind::Else => p("else"),
            TokenKind::True => p("true"),
            TokenKind::False => p("false"),
            TokenKind::Null => p("NULL"),
            TokenKind::LParen => p("("),
            TokenKind::RParen => p(")"),
            TokenKind::LBracket => p("["),
            TokenKind::RBracket => p("]"),
            TokenKind::LBrace => p("{"),
            TokenKind::RBrace => p("}"),
            TokenKind::Comma => p(","),
            TokenKind::Semicolon => p(";"),
            TokenKind::Newline => "end of line".to_string(),
            TokenKind::Dot => p("."),
            TokenKind::DotDot => p(".."),
            TokenKind::Colon => p(":"),
            TokenKind::Assign => p("="),
            TokenKind::EqEq => p("=="),
            TokenKind::Ne => p("!="),
            TokenKind::Lt => p("<"),
            TokenKind::Le => p("<="),
            TokenKind::Gt => p(">"),
            TokenKind::Ge => p(">="),
            TokenKind::Plus => p("+"),
            TokenKind::Minus => p("-"),
            TokenKind::Star => p("*"),
            TokenKind::Slash => p("/"),
            TokenKind::Percent => p("%"),
            TokenKind::AndAnd => p("&&"),
            TokenKind::OrOr => p("||"),
            TokenKind::Bang => p("!"),
            TokenKind::Eof => "end of input".to_string(),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Split `src` into tokens. The last token is always [`TokenKind::Eof`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    Lexer::new(src).run()
}

fn keyword(word: &str) -> Option<TokenKind> {
    Some(match word {
        "and" => TokenKind::And,
        "or" => TokenKind::Or,
        "not" => TokenKind::Not,
        "if" => TokenKind::If,
        "else" => TokenKind::Else,
        "true" => TokenKind::True,
        "false" => TokenKind::False,
        "NULL" => TokenKind::Null,
        _ => return None,
    })
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: u32,
    col: u32,
    /// Open `(`, `[` and `{` not yet closed, to decide whether a newline is significant.
    delims: Vec<char>,
    tokens: Vec<Token>,
}

impl Lexer {
    fn new(src: &str) -> Self {
        Lexer {
            chars: src.chars().collect(),
            pos: 0,
            line: 1,
            col: 1,
            delims: Vec::new(),
            tokens: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn span(&self) -> Span {
        Span {
            line: self.line,
            col: self.col,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn push(&mut self, kind: TokenKind, span: Span) {
        self.tokens.push(Token { kind, span });
    }

    fn newline_significant(&self) -> bool {
        matches!(self.delims.last(), None | Some('{'))
    }

    fn close(&mut self, open: char) {
        if self.delims.last() == Some(&open) {
            self.delims.pop();
        }
    }

    fn run(mut self) -> Result<Vec<Token>, ParseError> {
        while let Some(c) = self.peek() {
            let start = self.span();
            match c {
                '\n' => {
                    self.bump();
                    if self.newline_significant() {
                        self.push(TokenKind::Newline, start);
                    }
                }
                c if c.is_whitespace() => {
                    self.bump();
                }
                '/' if self.peek_at(1) == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                '/' if self.peek_at(1) == Some('*') => {
                    self.bump();
                    self.bump();
                    loop {
                        match self.peek() {
                            None => {
                                return Err(ParseError::new(
                                    start,
                                    "unterminated block comment: '/*' is never closed by '*/'",
                                ))
                            }
                            Some('*') if self.peek_at(1) == Some('/') => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            Some(_) => {
                                self.bump();
                            }
                        }
                    }
                }
                '"' | '\'' => self.string(c, start)?,
                '`' => self.symbols(start)?,
                c if c.is_ascii_digit() => self.number(start)?,
                c if is_ident_start(c) => self.ident(start),
                _ => self.punct(c, start)?,
            }
        }
        let end = self.span();
        self.push(TokenKind::Eof, end);
        Ok(self.tokens)
    }

    fn punct(&mut self, c: char, start: Span) -> Result<(), ParseError> {
        let next = self.peek_at(1);
        let (kind, len) = match (c, next) {
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            ('[', _) => (TokenKind::LBracket, 1),
            (']', _) => (TokenKind::RBracket, 1),
            ('{', _) => (TokenKind::LBrace, 1),
            ('}', _) => (TokenKind::RBrace, 1),
            (',', _) => (TokenKind::Comma, 1),
            (';', _) => (TokenKind::Semicolon, 1),
            ('.', Some('.')) => (TokenKind::DotDot, 2),
            ('.', _) => (TokenKind::Dot, 1),
            (':', _) => (TokenKind::Colon, 1),
            ('=', Some('=')) => (TokenKind::EqEq, 2),
            ('=', _) => (TokenKind::Assign, 1),
            ('!', Some('=')) => (TokenKind::Ne, 2),
            ('!', _) => (TokenKind::Bang, 1),
            ('<', Some('>')) => (TokenKind::Ne, 2),
            ('<', Some('=')) => (TokenKind::Le, 2),
            ('<', _) => (TokenKind::Lt, 1),
            ('>', Some('=')) => (TokenKind::Ge, 2),
            ('>', _) => (TokenKind::Gt, 1),
            ('+', _) => (TokenKind::Plus, 1),
            ('-', _) => (TokenKind::Minus, 1),
            ('*', _) => (TokenKind::Star, 1),
            ('/', _) => (TokenKind::Slash, 1),
            ('%', _) => (TokenKind::Percent, 1),
            ('&', Some('&')) => (TokenKind::AndAnd, 2),
            ('|', Some('|')) => (TokenKind::OrOr, 2),
            _ => {
                return Err(ParseError::new(
                    start,
                    format!("unexpected character '{}'", c.escape_debug()),
                ))
            }
        };
        match kind {
            TokenKind::LParen => self.delims.push('('),
            TokenKind::LBracket => self.delims.push('['),
            TokenKind::LBrace => self.delims.push('{'),
            TokenKind::RParen => self.close('('),
            TokenKind::RBracket => self.close('['),
            TokenKind::RBrace => self.close('{'),
            _ => {}
        }
        for _ in 0..len {
            self.bump();
        }
        self.push(kind, start);
        Ok(())
    }

    fn ident(&mut self, start: Span) {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if !is_ident_char(c) {
                break;
            }
            name.push(c);
            self.bump();
        }
        if let Some(kind) = keyword(&name) {
            self.push(kind, start);
            return;
        }
        // `append!(...)`, and `append!{...}` (a partial application).
        if self.peek() == Some('!') && matches!(self.peek_at(1), Some('(' | '{')) {
            self.bump();
            name.push('!');
        }
        self.push(TokenKind::Ident(name), start);
    }

    fn string(&mut self, quote: char, start: Span) -> Result<(), ParseError> {
        self.bump();
        let mut s = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(ParseError::new(
                    start,
                    format!("unterminated string: the opening {quote} is never closed"),
                ));
            };
            if c == quote {
                break;
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            match self.bump() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('r') => s.push('\r'),
                Some('0') => s.push('\0'),
                Some('\\') => s.push('\\'),
                Some('"') => s.push('"'),
                Some('\'') => s.push('\''),
                // An unknown escape is kept as written (friendlier for Windows paths).
                Some(other) => {
                    s.push('\\');
                    s.push(other);
                }
                None => {
                    return Err(ParseError::new(
                        start,
                        format!("unterminated string: the opening {quote} is never closed"),
                    ))
                }
            }
        }
        self.push(TokenKind::Str(s), start);
        Ok(())
    }

    fn symbols(&mut self, start: Span) -> Result<(), ParseError> {
        let mut names = Vec::new();
        while self.peek() == Some('`') {
            let tick = self.span();
            self.bump();
            let mut name = String::new();
            while let Some(c) = self.peek() {
                if !is_ident_char(c) {
                    break;
                }
                name.push(c);
                self.bump();
            }
            if name.is_empty() {
                return Err(ParseError::new(
                    tick,
                    "expected a name after '`' (a symbol is written `name)",
                ));
            }
            names.push(name);
        }
        self.push(TokenKind::Symbols(names), start);
        Ok(())
    }

    fn digits(&mut self, out: &mut String) -> usize {
        let mut n = 0;
        while let Some(c) = self.peek() {
            if !c.is_ascii_digit() {
                break;
            }
            out.push(c);
            self.bump();
            n += 1;
        }
        n
    }

    /// Consume any letters/digits/`_`/`.` glued to a malformed literal, for the error message.
    fn rest_of_word(&mut self, out: &mut String) {
        while let Some(c) = self.peek() {
            if !(is_ident_char(c) || c == '.' || c == ':') {
                break;
            }
            out.push(c);
            self.bump();
        }
    }

    fn number(&mut self, start: Span) -> Result<(), ParseError> {
        let mut text = String::new();
        self.digits(&mut text);
        let is_digit_at = |l: &Lexer, n: usize| l.peek_at(n).is_some_and(|c| c.is_ascii_digit());

        // A date: digits '.' digits '.' digits
        if self.peek() == Some('.') && is_digit_at(self, 1) {
            let mut k = 1;
            while is_digit_at(self, k) {
                k += 1;
            }
            if self.peek_at(k) == Some('.') && is_digit_at(self, k + 1) {
                return self.temporal(text, start);
            }
        }

        let mut is_float = false;
        if self.peek() == Some('.') && is_digit_at(self, 1) {
            is_float = true;
            text.push('.');
            self.bump();
            self.digits(&mut text);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let exp_digits = if matches!(self.peek_at(1), Some('+' | '-')) {
                2
            } else {
                1
            };
            if is_digit_at(self, exp_digits) {
                is_float = true;
                for _ in 0..exp_digits {
                    if let Some(c) = self.bump() {
                        text.push(c);
                    }
                }
                self.digits(&mut text);
            }
        }
        if self.peek().is_some_and(is_ident_char) {
            self.rest_of_word(&mut text);
            return Err(ParseError::new(
                start,
                format!("invalid number literal '{text}'"),
            ));
        }
        let kind = if is_float {
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => TokenKind::Float(x),
                _ => {
                    return Err(ParseError::new(
                        start,
                        format!("invalid number literal '{text}'"),
                    ))
                }
            }
        } else {
            match text.parse::<i64>() {
                Ok(n) => TokenKind::Int(n),
                Err(_) => {
                    return Err(ParseError::new(
                        start,
                        format!(
                            "integer literal '{text}' is too large (the maximum is {})",
                            i64::MAX
                        ),
                    ))
                }
            }
        };
        self.push(kind, start);
        Ok(())
    }

    /// Lex `yyyy.MM.dd[Thh:mm:ss[.fff|.fffffffff]]`; `year` has already been consumed.
    fn temporal(&mut self, year: String, start: Span) -> Result<(), ParseError> {
        let mut text = year.clone();
        text.push('.');
        self.bump();
        let mut month = String::new();
        self.digits(&mut month);
        text.push_str(&month);
        text.push('.');
        self.bump();
        let mut day = String::new();
        self.digits(&mut day);
        text.push_str(&day);

        let bad = |text: &str, why: &str| {
            ParseError::new(start, format!("invalid temporal literal '{text}': {why}"))
        };

        if year.len() != 4 || month.len() != 2 || day.len() != 2 {
            self.rest_of_word(&mut text);
            return Err(bad(&text, "a date is written yyyy.MM.dd"));
        }
        let (y, m, d) = match (
            year.parse::<i32>(),
            month.parse::<u32>(),
            day.parse::<u32>(),
        ) {
            (Ok(y), Ok(m), Ok(d)) => (y, m, d),
            _ => return Err(bad(&text, "a date is written yyyy.MM.dd")),
        };
        if !(1..=12).contains(&m) {
            return Err(bad(&text, "the month must be between 01 and 12"));
        }
        let Some(date) = NaiveDate::from_ymd_opt(y, m, d) else {
            return Err(bad(&text, "that day does not exist in that month"));
        };
        // 1970-01-01 is day 719_163 counted from 0001-01-01 (day 1).
        let days = date.num_days_from_ce() - 719_163;

        if self.peek() != Some('T') {
            if self.peek().is_some_and(is_ident_char) {
                self.rest_of_word(&mut text);
                return Err(bad(&text, "unexpected characters after the date"));
            }
            self.push(TokenKind::Date(days), start);
            return Ok(());
        }

        // Time part: Thh:mm:ss
        text.push('T');
        self.bump();
        let mut parts = [0i64; 3];
        for (i, part) in parts.iter_mut().enumerate() {
            if i > 0 {
                if self.peek() != Some(':') {
                    self.rest_of_word(&mut text);
                    return Err(bad(&text, "a time is written hh:mm:ss"));
                }
                self.bump();
                text.push(':');
            }
            let mut digits = String::new();
            let n = self.digits(&mut digits);
            text.push_str(&digits);
            if n != 2 {
                self.rest_of_word(&mut text);
                return Err(bad(&text, "a time is written hh:mm:ss"));
            }
            *part = digits.parse::<i64>().unwrap_or(0);
        }
        let [h, mi, s] = parts;
        if h > 23 {
            return Err(bad(&text, "the hour must be between 00 and 23"));
        }
        if mi > 59 {
            return Err(bad(&text, "the minute must be between 00 and 59"));
        }
        if s > 59 {
            return Err(bad(&text, "the second must be between 00 and 59"));
        }
        let secs = i64::from(days) * 86_400 + h * 3600 + mi * 60 + s;

        let frac_follows =
            self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit());
        if !frac_follows {
            if self.peek().is_some_and(is_ident_char) {
                self.rest_of_word(&mut text);
                return Err(bad(&text, "unexpected characters after the time"));
            }
            self.push(TokenKind::DateTime(secs), start);
            return Ok(());
        }
        self.bump();
        text.push('.');
        let mut frac = String::new();
        let n = self.digits(&mut frac);
        text.push_str(&frac);
        if self.peek().is_some_and(is_ident_char) {
            self.rest_of_word(&mut text);
            return Err(bad(&text, "unexpected characters after the time"));
        }
        let frac_val = frac.parse::<i64>().unwrap_or(0);
        let kind = match n {
            3 => TokenKind::Timestamp(
                secs.checked_mul(1000)
                    .and_then(|v| v.checked_add(frac_val))
                    .ok_or_else(|| bad(&text, "out of range"))?,
            ),
            9 => TokenKind::NanoTimestamp(
                secs.checked_mul(1_000_000_000)
                    .and_then(|v| v.checked_add(frac_val))
                    .ok_or_else(|| bad(&text, "out of range for a NANOTIMESTAMP"))?,
            ),
            _ => {
                return Err(bad(
                    &text,
                    "fractional seconds need 3 digits (TIMESTAMP) or 9 digits (NANOTIMESTAMP)",
                ))
            }
        };
        self.push(kind, start);
        Ok(())
    }
}
