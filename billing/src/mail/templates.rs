//! The e-mails' subject, HTML and text. Every value from callers or the store is HTML-escaped.

use crate::analytics::Summary;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Micro-units as a decimal amount with the currency code (`1.234567 USD` → `1.23 USD`).
pub(crate) fn money(micros: i64, currency: &str) -> String {
    let cents = (micros + 5_000).div_euclid(10_000);
    format!(
        "{}.{:02} {currency}",
        cents.div_euclid(100),
        cents.rem_euclid(100)
    )
}

fn ms_text(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".to_owned(), |v| format!("{v} ms"))
}

/// The daily summary of `date` (`YYYY-MM-DD`, the tenant's zone).
pub fn daily_summary(
    tenant_name: &str,
    date: &str,
    s: &Summary,
    currency: &str,
) -> (String, String, String) {
    let f = &s.figures;
    let containment = f
        .containment
        .map_or_else(|| "–".to_owned(), |c| format!("{:.0} %", c * 100.0));
    let aht = f
        .avg_handle_ms
        .map_or_else(|| "–".to_owned(), |ms| format!("{} s", ms / 1000));
    let rows = [
        ("Calls", f.calls.to_string()),
        (
            "Inbound / outbound",
            format!("{} / {}", f.inbound, f.outbound),
        ),
        ("Answered", f.answered.to_string()),
        ("Average handle time", aht),
        ("Contained", containment),
        ("Transferred", f.transferred.to_string()),
        ("Messages and callbacks", f.followups.to_string()),
        ("Refusals", f.refusals.to_string()),
        (
            "Reply latency p50 / p95",
            format!("{} / {}", ms_text(f.e2e_ms.p50), ms_text(f.e2e_ms.p95)),
        ),
        ("Cost", money(f.cost_micros, currency)),
    ];
    let subject = format!("{tenant_name}: calls on {date}");
    let mut html = format!(
        "<h2>{}</h2><table cellpadding=\"4\">",
        esc(&format!("Calls on {date}"))
    );
    let mut text = format!("Calls on {date} ({tenant_name})\n\n");
    for (label, value) in &rows {
        html.push_str(&format!(
            "<tr><td>{}</td><td><b>{}</b></td></tr>",
            esc(label),
            esc(value)
        ));
        text.push_str(&format!("{label}: {value}\n"));
    }
    html.push_str("</table>");
    if !s.end_reasons.is_empty() {
        html.push_str("<h3>How calls ended</h3><ul>");
        text.push_str("\nHow calls ended:\n");
        for c in &s.end_reasons {
            html.push_str(&format!("<li>{}: {}</li>", esc(&c.value), c.calls));
            text.push_str(&format!("  {}: {}\n", c.value, c.calls));
        }
        html.push_str("</ul>");
    }
    (subject, html, text)
}

/// A notice that a caller left a message.
pub fn message_notice(
    caller: Option<&str>,
    name: Option<&str>,
    body: &str,
) -> (String, String, String) {
    let who = match (name, caller) {
        (Some(n), Some(c)) => format!("{n} ({c})"),
        (Some(n), None) => n.to_owned(),
        (None, Some(c)) => c.to_owned(),
        (None, None) => "an unknown caller".to_owned(),
    };
    let subject = format!("New message from {who}");
    let html = format!(
        "<p>New message from <b>{}</b>:</p><blockquote>{}</blockquote>",
        esc(&who),
        esc(body)
    );
    let text = format!("New message from {who}:\n\n{body}\n");
    (subject, html, text)
}

/// A notice that a caller asked to be called back.
pub fn callback_notice(
    number: &str,
    when: Option<&str>,
    reason: Option<&str>,
) -> (String, String, String) {
    let when = when.unwrap_or("as soon as possible");
    let subject = format!("Callback requested: {number}");
    let mut html = format!(
        "<p>Please call <b>{}</b> back ({}).</p>",
        esc(number),
        esc(when)
    );
    let mut text = format!("Please call {number} back ({when}).\n");
    if let Some(r) = reason {
        html.push_str(&format!("<p>Note: {}</p>", esc(r)));
        text.push_str(&format!("Note: {r}\n"));
    }
    (subject, html, text)
}

/// The payment link e-mail to a customer.
pub fn payment_link_mail(
    company: &str,
    customer_name: &str,
    amount: &str,
    invoice: Option<&str>,
    url: &str,
) -> (String, String, String) {
    let what = invoice.map_or_else(|| "your balance".to_owned(), |i| format!("invoice {i}"));
    let subject = format!("{company}: your payment link for {what}");
    let html = format!(
        "<p>Hello {},</p><p>as discussed on the phone, you can pay {} ({}) here:</p>\
         <p><a href=\"{}\">Pay securely</a></p><p>{}</p>",
        esc(customer_name),
        esc(&what),
        esc(amount),
        esc(url),
        esc(company)
    );
    let text = format!(
        "Hello {customer_name},\n\nas discussed on the phone, you can pay {what} ({amount}) here:\n{url}\n\n{company}\n"
    );
    (subject, html, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_money_rounds_to_cents() {
        let (_, html, text) = message_notice(Some("+15551234567"), Some("<b>Eve</b>"), "a & b");
        assert!(html.contains("&lt;b&gt;Eve&lt;/b&gt;") && html.contains("a &amp; b"));
        assert!(text.contains("<b>Eve</b>"));
        assert_eq!(money(1_234_567, "USD"), "1.23 USD");
        assert_eq!(money(5_000, "EUR"), "0.01 EUR");
        let (_, html, _) =
            payment_link_mail("Acme", "Jo", "$1.00", Some("INV-1"), "https://x/?a=1&b=2");
        assert!(html.contains("href=\"https://x/?a=1&amp;b=2\""));
    }
}
