//! `{{ var }}` templates filled from call state, with an optional literal fallback:
//! `{{ caller_name | "there" }}` renders "there" when the caller is unknown.
//!
//! Deliberately tiny: no loops, no conditionals, no filters. Templates are checked at load
//! (syntax and variable names), so rendering never fails.

/// Variables the engine fills from call state; a flow adds its own in `[variables]` and
/// through `set` actions.
pub const BUILTIN_VARS: &[&str] = &[
    "caller_number",
    "caller_name",
    "caller_company",
    "customer_id_known",
    "balance",
    "overdue_amount",
    "invoice_count",
    "invoices_summary",
    "last_invoice_amount",
    "utterance",
    "transfer_to",
    "business_open",
    "flow_name",
];

/// A syntax error in a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("`{{{{` at byte {0} is never closed")]
    Unclosed(usize),
    #[error(
        "bad placeholder `{{{{{0}}}}}`: expected `{{{{ name }}}}` or `{{{{ name | \"fallback\" }}}}`"
    )]
    BadPlaceholder(String),
}

/// One `{{ … }}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder<'a> {
    pub var: &'a str,
    pub fallback: Option<&'a str>,
}

enum Piece<'a> {
    Text(&'a str),
    Var(Placeholder<'a>),
}

fn pieces(tpl: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = tpl;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        out.push(Piece::Text(&rest[..start]));
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError::Unclosed(offset + start));
        };
        out.push(Piece::Var(parse_placeholder(&after[..end])?));
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

fn parse_placeholder(inner: &str) -> Result<Placeholder<'_>, TemplateError> {
    let bad = || TemplateError::BadPlaceholder(inner.to_string());
    let (var, fallback) = match inner.split_once('|') {
        None => (inner.trim(), None),
        Some((v, f)) => {
            let f = f.trim();
            let lit = f
                .strip_prefix('"')
                .and_then(|f| f.strip_suffix('"'))
                .ok_or_else(bad)?;
            (v.trim(), Some(lit))
        }
    };
    let valid = !var.is_empty()
        && var
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !valid {
        return Err(bad());
    }
    Ok(Placeholder { var, fallback })
}

/// The placeholders of a template, or its syntax error.
pub(crate) fn placeholders(tpl: &str) -> Result<Vec<Placeholder<'_>>, TemplateError> {
    Ok(pieces(tpl)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Var(v) => Some(v),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Renders `tpl`; unset or empty variables become their fallback or nothing.
pub(crate) fn render(tpl: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let Ok(pieces) = pieces(tpl) else {
        // Validated at load; an unvalidated template is spoken as written rather than lost.
        return tpl.to_string();
    };
    let mut out = String::with_capacity(tpl.len());
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(v) => match lookup(v.var).filter(|s| !s.is_empty()) {
                Some(val) => out.push_str(&val),
                None => out.push_str(v.fallback.unwrap_or("")),
            },
        }
    }
    // Empty variables can leave doubled spaces ("Hi  there"); speech does not care, logs do.
    collapse_spaces(&out)
}

fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_space = false;
    for c in s.chars() {
        if c == ' ' {
            if !prev_space {
                out.push(c);
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = false;
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vars_and_fallbacks() {
        let look = |v: &str| (v == "name").then(|| "Ann".to_string());
        assert_eq!(render("Hi {{ name }}!", look), "Hi Ann!");
        assert_eq!(render("Hi {{ who | \"there\" }}.", look), "Hi there.");
        assert_eq!(render("A {{missing}} B", look), "A B");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(placeholders("x {{ a"), Err(TemplateError::Unclosed(2)));
        assert!(placeholders("{{ a b }}").is_err());
        assert!(placeholders("{{ a | there }}").is_err());
        assert_eq!(
            placeholders("{{a}} {{ b | \"c\" }}").map(|v| v.len()),
            Ok(2)
        );
    }
}
