//! The `$filter` subset the fake understands (§1.3, §2.4): comparisons `eq gt ge lt le` joined by
//! `and` (parentheses allowed), with literals `datetime'2021-01-01T00:00:00'`, `guid'…'`,
//! `123L`, `123`, `'text'`, `true`/`false`. Anything else is a parse error, which the server
//! answers with 400 in Exact's error shape (§2.6).

use chrono::NaiveDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn test(self, a: i64, b: i64) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// Wall-clock ms as if UTC (Exact reads datetime literals in Dutch local time, §2.5).
    DateTime(i64),
    /// Integer; `long` is true for the `L` suffix.
    Int {
        value: i64,
        long: bool,
    },
    Guid(String),
    Str(String),
    Bool(bool),
}

impl Lit {
    /// The literal as written back in a key (`guid'…'`, `12L`, `'x'`).
    pub fn as_key_literal(&self) -> String {
        match self {
            Lit::Guid(g) => format!("guid'{g}'"),
            Lit::Int { value, long: true } => format!("{value}L"),
            Lit::Int { value, long: false } => value.to_string(),
            Lit::Str(s) => format!("'{s}'"),
            Lit::Bool(b) => b.to_string(),
            Lit::DateTime(ms) => ms.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cmp {
    pub field: String,
    pub op: Op,
    pub lit: Lit,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit(Lit),
    Open,
    Close,
}

/// Parses `2021-01-01T00:00[:00[.fff]]` into wall-clock ms.
pub fn parse_datetime(s: &str) -> Option<i64> {
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, f) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    None
}

fn quoted(chars: &[char], i: &mut usize) -> Result<String, String> {
    // at opening quote
    *i += 1;
    let mut s = String::new();
    loop {
        match chars.get(*i) {
            None => return Err("unterminated string literal".into()),
            Some('\'') if chars.get(*i + 1) == Some(&'\'') => {
                s.push('\'');
                *i += 2;
            }
            Some('\'') => {
                *i += 1;
                return Ok(s);
            }
            Some(c) => {
                s.push(*c);
                *i += 1;
            }
        }
    }
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == '\'' {
            out.push(Tok::Lit(Lit::Str(quoted(&chars, &mut i)?)));
        } else if c.is_ascii_digit() || c == '-' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let long = matches!(chars.get(i), Some('L') | Some('l'));
            if long {
                i += 1;
            }
            if chars
                .get(i)
                .is_some_and(|c| c.is_alphanumeric() || *c == '.')
            {
                return Err(format!("unsupported numeric literal near '{text}'"));
            }
            let value = text
                .parse()
                .map_err(|_| format!("invalid integer literal '{text}'"))?;
            out.push(Tok::Lit(Lit::Int { value, long }));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if chars.get(i) == Some(&'\'') {
                let body = quoted(&chars, &mut i)?;
                match word.to_ascii_lowercase().as_str() {
                    "datetime" => {
                        let ms = parse_datetime(&body)
                            .ok_or_else(|| format!("invalid datetime literal '{body}'"))?;
                        out.push(Tok::Lit(Lit::DateTime(ms)));
                    }
                    "guid" => out.push(Tok::Lit(Lit::Guid(body.to_ascii_lowercase()))),
                    _ => return Err(format!("unsupported literal prefix '{word}'")),
                }
            } else if word == "true" || word == "false" {
                out.push(Tok::Lit(Lit::Bool(word == "true")));
            } else {
                out.push(Tok::Ident(word));
            }
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn expr(&mut self, out: &mut Vec<Cmp>) -> Result<(), String> {
        self.term(out)?;
        while let Some(Tok::Ident(w)) = self.toks.get(self.pos) {
            if w == "and" {
                self.pos += 1;
                self.term(out)?;
            } else {
                return Err(format!("operator '{w}' is not supported"));
            }
        }
        Ok(())
    }

    fn term(&mut self, out: &mut Vec<Cmp>) -> Result<(), String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                self.expr(out)?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err("missing ')'".into());
                }
                self.pos += 1;
                Ok(())
            }
            Some(Tok::Ident(field)) => {
                self.pos += 1;
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Ident(o)) => match o.as_str() {
                        "eq" => Op::Eq,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        other => return Err(format!("operator '{other}' is not supported")),
                    },
                    Some(Tok::Open) => return Err(format!("function '{field}' is not supported")),
                    _ => return Err(format!("expected an operator after '{field}'")),
                };
                self.pos += 1;
                let lit = match self.toks.get(self.pos) {
                    Some(Tok::Lit(l)) => l.clone(),
                    _ => return Err(format!("expected a literal after '{field}'")),
                };
                self.pos += 1;
                out.push(Cmp { field, op, lit });
                Ok(())
            }
            _ => Err("expected a comparison".into()),
        }
    }
}

/// Parses a `$filter` value into a conjunction of comparisons.
pub fn parse_filter(src: &str) -> Result<Vec<Cmp>, String> {
    let toks = tokenize(src)?;
    let mut p = Parser { toks, pos: 0 };
    let mut out = Vec::new();
    p.expr(&mut out)?;
    if p.pos != p.toks.len() {
        return Err("unexpected text after the filter expression".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let f = parse_filter("Timestamp gt 123L and Division eq 100001").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0].lit,
            Lit::Int {
                value: 123,
                long: true
            }
        );
        let f =
            parse_filter("(Modified ge datetime'2021-01-01T00:00') and ID eq guid'AB-C'").unwrap();
        assert_eq!(f[0].lit, Lit::DateTime(1_609_459_200_000));
        assert_eq!(f[1].lit, Lit::Guid("ab-c".into()));
        assert_eq!(
            parse_filter("Code eq 'O''Brien'").unwrap()[0].lit,
            Lit::Str("O'Brien".into())
        );
        assert_eq!(
            parse_filter("Timestamp gt 1").unwrap()[0].lit,
            Lit::Int {
                value: 1,
                long: false
            }
        );
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "Timestamp gt 1 or Timestamp lt 0",
            "substringof('a', Name)",
            "Modified gt datetime'yesterday'",
            "Name ne 'x'",
            "Timestamp gt",
            "Timestamp gt 1.5",
            "not Blocked",
            "Timestamp gt 1)",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
