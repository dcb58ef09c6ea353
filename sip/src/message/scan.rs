//! Low-level lexing helpers shared by the header and URI parsers (RFC 3261 §25.1 character
//! classes, quoted strings, LWS). Header values reach these helpers already unfolded, so "LWS"
//! here is just runs of SP and HTAB.

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A byte cursor over an (unfolded) header value.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Self { s, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    /// Consumes `b` (after optional whitespace) if it is next; leaves the cursor after any
    /// whitespace that follows it.
    pub(crate) fn eat_sep(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Takes bytes while `f` holds. The predicate only accepts ASCII bytes in every caller, so
    /// the slice boundary always falls on a char boundary; `get` keeps that safe regardless.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        match self.s.get(start..self.pos) {
            Some(t) => t,
            None => {
                self.pos = start;
                ""
            }
        }
    }

    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token_char);
        (!t.is_empty()).then_some(t)
    }

    /// Parses a quoted-string at the cursor and returns it raw, quotes included.
    pub(crate) fn quoted_raw(&mut self) -> Option<&'a str> {
        let bytes = self.s.as_bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos;
        let mut i = self.pos + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.pos = i + 1;
                    return self.s.get(start..self.pos);
                }
                _ => i += 1,
            }
        }
        None
    }
}

/// Removes the surrounding quotes of a quoted-string and resolves `\x` quoted-pairs.
pub(crate) fn unquote(raw: &str) -> String {
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes `s` as a quoted-string, escaping `"` and `\`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits a header value on top-level commas (outside quoted strings and `<…>`), trimming each
/// element. Used for the headers whose grammar is a comma-separated list.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut in_quotes = false;
    let mut in_angle = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quotes {
            match b {
                b'\\' => i += 1,
                b'"' => in_quotes = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_quotes = true,
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => {
                    out.push(value.get(start..i).unwrap_or("").trim_matches(is_ws_char));
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push(value.get(start..).unwrap_or("").trim_matches(is_ws_char));
    out
}

pub(crate) fn is_ws_char(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Decodes `%HH` escapes once (non-recursively, RFC 4475 §3.1.1.3). Invalid escapes are kept
/// literally.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex_val(*c)),
                b.get(i + 2).and_then(|c| hex_val(*c)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Every `%` is followed by two hex digits.
pub(crate) fn escapes_valid(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if b.get(i + 1).and_then(|c| hex_val(*c)).is_none()
                || b.get(i + 2).and_then(|c| hex_val(*c)).is_none()
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Parses an unsigned decimal of at most `max_digits` digits (leading zeros allowed, as in
/// `Max-Forwards: 0068`) without overflow.
pub(crate) fn parse_decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let v = r#""Bell, A" <sip:a@b>;q=1, <sip:x,y@z>"#;
        assert_eq!(
            split_list(v),
            vec![r#""Bell, A" <sip:a@b>;q=1"#, "<sip:x,y@z>"]
        );
    }

    #[test]
    fn unquote_resolves_pairs() {
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(quote(r#"a"b\"#), r#""a\"b\\""#);
    }

    #[test]
    fn decimal_bounds() {
        assert_eq!(parse_decimal("0068", 255), Some(68));
        assert_eq!(
            parse_decimal("36893488147419103232", u64::from(u32::MAX)),
            None
        );
        assert_eq!(parse_decimal("-1", 10), None);
    }

    #[test]
    fn percent_decoding_is_single_pass() {
        assert_eq!(percent_decode("value%2541"), b"value%41");
        assert_eq!(percent_decode("null-%00-null"), b"null-\0-null");
    }
}
