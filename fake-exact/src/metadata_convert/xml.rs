//! A small XML writer: indentation, escaping and comments, nothing else. The converter only
//! writes XML, so this is all it needs (no parser dependency).

/// Replaces characters that XML 1.0 cannot carry at all (not even as a character reference):
/// C0 controls other than tab, line feed and carriage return, lone surrogates (impossible in a
/// Rust `str`), U+FFFE and U+FFFF. They become U+FFFD.
fn xml_char(c: char) -> char {
    match c {
        '\t' | '\n' | '\r' => c,
        '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
        _ => c,
    }
}

/// Escapes text content: `&`, `<`, `>`; a carriage return becomes `&#13;` so that a parser's
/// line-end normalisation does not turn it into a line feed. Quotes need no escaping in text.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(xml_char) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value (always written between double quotes): `&`, `<`, `>`, `"`, `'`,
/// and tab, line feed and carriage return as character references (attribute-value
/// normalisation would otherwise turn them into spaces).
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(xml_char) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    out
}

/// Makes text safe inside `<!-- … -->`: a comment may not contain `--` nor end with `-`, and
/// has no escapes, so `--` becomes `- -`; line breaks become spaces (comments stay one line).
pub fn comment_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(xml_char) {
        let c = if matches!(c, '\n' | '\r' | '\t') {
            ' '
        } else {
            c
        };
        if c == '-' && out.ends_with('-') {
            out.push(' ');
        }
        out.push(c);
    }
    if out.ends_with('-') {
        out.push(' ');
    }
    out
}

/// Writes indented XML (two spaces per level, `\n` line ends) into a `String`.
pub struct XmlWriter {
    out: String,
    depth: usize,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            out: String::new(),
            depth: 0,
        }
    }

    /// A line at the current depth, written as given (already escaped).
    pub fn raw_line(&mut self, line: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(line);
        self.out.push('\n');
    }

    fn tag(name: &str, attrs: &[(&str, &str)], end: &str) -> String {
        let mut s = format!("<{name}");
        for (k, v) in attrs {
            s.push_str(&format!(" {k}=\"{}\"", escape_attr(v)));
        }
        s.push_str(end);
        s
    }

    /// `<name a="v">`, then one level deeper.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.raw_line(&Self::tag(name, attrs, ">"));
        self.depth += 1;
    }

    /// One level up, then `</name>`.
    pub fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.raw_line(&format!("</{name}>"));
    }

    /// `<name a="v"/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.raw_line(&Self::tag(name, attrs, "/>"));
    }

    /// `<name>text</name>` on one line.
    pub fn text_element(&mut self, name: &str, text: &str) {
        self.raw_line(&format!("<{name}>{}</{name}>", escape_text(text)));
    }

    /// `<!-- text -->` on one line.
    pub fn comment(&mut self, text: &str) {
        self.raw_line(&format!("<!-- {} -->", comment_text(text)));
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_markup_characters() {
        assert_eq!(
            escape_text(r#"A & B < C > D "q" 'a'"#),
            r#"A &amp; B &lt; C &gt; D "q" 'a'"#
        );
        assert_eq!(escape_text("a\r\nb\tc"), "a&#13;\nb\tc");
        assert_eq!(escape_text("bell\u{7}"), "bell\u{fffd}");
    }

    #[test]
    fn attributes_escape_quotes_and_whitespace() {
        assert_eq!(escape_attr(r#"x&y<z>"'"#), "x&amp;y&lt;z&gt;&quot;&apos;");
        assert_eq!(escape_attr("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
    }

    #[test]
    fn comments_never_contain_double_hyphen() {
        assert_eq!(comment_text("a--b"), "a- -b");
        assert_eq!(comment_text("a---b"), "a- - -b");
        assert_eq!(comment_text("ends-"), "ends- ");
        assert_eq!(comment_text("two\nlines"), "two lines");
        assert!(!comment_text("----").contains("--"));
    }

    #[test]
    fn writer_indents_and_escapes() {
        let mut w = XmlWriter::new();
        w.open("a", &[("x", "1 & 2")]);
        w.empty("b", &[]);
        w.text_element("c", "<t>");
        w.comment("note");
        w.close("a");
        assert_eq!(
            w.finish(),
            "<a x=\"1 &amp; 2\">\n  <b/>\n  <c>&lt;t&gt;</c>\n  <!-- note -->\n</a>\n"
        );
    }
}
