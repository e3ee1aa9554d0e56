//! Escaping for the writers: HTML, XML (JUnit) and Markdown. Every string that comes from a
//! run's results goes through one of these before it reaches a report.

/// HTML-escapes text for element content and quoted attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_html_noncharacter(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Control characters other than tab, newline and carriage return are not allowed in HTML
/// text (and NUL is never allowed): shown as U+FFFD.
fn is_html_noncharacter(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// Replaces characters XML 1.0 does not allow (§2.2 `Char`) with U+FFFD.
pub fn xml_chars(s: &str) -> String {
    s.chars()
        .map(|c| if xml_allowed(c) { c } else { '\u{FFFD}' })
        .collect()
}

fn xml_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Escapes text for an XML attribute value in double quotes (allowed characters only).
pub fn xml_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in xml_chars(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for a CDATA section: allowed characters only, and `]]>` split across two sections
/// so the section cannot be closed early.
pub fn cdata(s: &str) -> String {
    xml_chars(s).replace("]]>", "]]]]><![CDATA[>")
}

/// One line of Markdown text: line breaks become spaces, and the characters that would start
/// Markdown or HTML syntax are backslash-escaped.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Inline code span that holds `s` verbatim (one line): the fence is one backtick longer
/// than the longest backtick run inside (CommonMark §6.1).
pub fn md_code(s: &str) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut longest = 0;
    let mut run = 0;
    for c in line.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    if line.starts_with('`') || line.ends_with('`') || line.is_empty() {
        format!("{fence} {line} {fence}")
    } else {
        format!("{fence}{line}{fence}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(html("a\u{0}b"), "a\u{FFFD}b");
        assert_eq!(xml_attr("a\"<\n\u{1}"), "a&quot;&lt;&#10;\u{FFFD}");
        assert_eq!(cdata("x]]>y"), "x]]]]><![CDATA[>y");
        assert_eq!(md("a|b*c\nd"), "a\\|b\\*c d");
        assert_eq!(md_code("run `x`"), "`` run `x` ``");
        assert_eq!(md_code("plain"), "`plain`");
    }
}
