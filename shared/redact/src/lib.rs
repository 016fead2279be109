//! Personal data and secrets that must never reach a log: card numbers, bearer tokens (JWTs)
//! and e-mail addresses.
//!
//! Two uses:
//! - at the source, where text that may echo a client's input is logged or turned into an
//!   error: [`json_error`] describes a `serde_json` error without the values it quotes, and
//!   [`scrub`] masks anything that looks like a card number, a token or an e-mail address;
//! - in tests that scan a run's logs: [`findings`] says what looks sensitive, and where.
//!
//! What counts ([`Sensitive`]):
//! - a card number: 13 to 19 digits passing the Luhn check, alone (not inside a longer run of
//!   letters and digits), contiguous or in the printed groups (`4111 1111 1111 1111`,
//!   `3782-822463-10005`). An epoch timestamp in milliseconds (13 digits starting with `1`, as
//!   every metrics document carries) is not one: no card scheme issues 13-digit numbers
//!   starting with 1;
//! - a JWT: `eyJ`, then three base64url parts separated by dots (the third may be empty);
//! - an e-mail address: `local@domain.tld`, with a dot in the domain and letters in its last
//!   label.
//!
//! ```
//! use redact::{Sensitive, findings, scrub};
//!
//! let line = "card 4111 1111 1111 1111 of alice@example.com";
//! let found: Vec<Sensitive> = findings(line).into_iter().map(|finding| finding.kind).collect();
//! assert_eq!(found, [Sensitive::CardNumber, Sensitive::Email]);
//! assert_eq!(scrub(line), "card [card number] of [e-mail]");
//! assert_eq!(scrub("at 1795712623853 ms"), "at 1795712623853 ms");
//! ```

use std::borrow::Cow;
use std::fmt;

/// A kind of value that must not be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitive {
    CardNumber,
    Jwt,
    Email,
}

impl Sensitive {
    /// What [`scrub`] writes instead.
    pub fn mask(self) -> &'static str {
        match self {
            Self::CardNumber => "[card number]",
            Self::Jwt => "[token]",
            Self::Email => "[e-mail]",
        }
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CardNumber => "a card number",
            Self::Jwt => "a JWT",
            Self::Email => "an e-mail address",
        })
    }
}

/// One sensitive-looking value in a text: its kind and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: Sensitive,
    pub start: usize,
    pub end: usize,
}

/// Every card number, JWT and e-mail address in `text`, in order, not overlapping.
pub fn findings(text: &str) -> Vec<Finding> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let next = card_number(bytes, at)
            .map(|end| (Sensitive::CardNumber, end))
            .or_else(|| jwt(bytes, at).map(|end| (Sensitive::Jwt, end)))
            .or_else(|| email(bytes, at));
        match next {
            Some((kind, end)) => {
                let start = match kind {
                    Sensitive::Email => email_start(bytes, at),
                    _ => at,
                };
                found.push(Finding { kind, start, end });
                at = end;
            }
            None => at += 1,
        }
    }
    found
}

/// `text` with every [`findings`] value replaced by its [`Sensitive::mask`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let found = findings(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut scrubbed = String::with_capacity(text.len());
    let mut copied = 0;
    for finding in found {
        scrubbed.push_str(&text[copied..finding.start]);
        scrubbed.push_str(finding.kind.mask());
        copied = finding.end;
    }
    scrubbed.push_str(&text[copied..]);
    Cow::Owned(scrubbed)
}

/// `text` as it may be shown in an error or a log: [`scrub`]bed, any other run of 13 or more
/// digits (a card number glued to other text, say) masked, and cut to 64 characters.
pub fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    let scrubbed = scrub(text);
    let scrubbed = long_numbers_masked(&scrubbed);
    if scrubbed.chars().count() <= MAX_CHARS {
        return scrubbed.into_owned();
    }
    let mut cut: String = scrubbed.chars().take(MAX_CHARS).collect();
    cut.push('…');
    cut
}

/// `text` with every run of 13 or more digits replaced by `[number]`.
fn long_numbers_masked(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut masked = String::new();
    let (mut copied, mut at) = (0, 0);
    while at < bytes.len() {
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        if at - start >= 13 {
            masked.push_str(&text[copied..start]);
            masked.push_str("[number]");
            copied = at;
        }
        at = at.max(start + 1);
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    masked.push_str(&text[copied..]);
    Cow::Owned(masked)
}

/// A `serde_json` error as a clear message that quotes no value from the input: `invalid type:
/// a string, expected u64 at line 1 column 30`. Field and variant names stay when they look
/// like names (`unknown field `amonut``), and short numbers stay; anything else quoted becomes
/// `…`, and the rest is [`scrub`]bed.
pub fn json_error(error: &serde_json::Error) -> String {
    unquoted(&error.to_string())
}

/// [`json_error`] for the text of an error.
pub fn unquoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(position) = rest.find(['"', '`']) {
        let (before, quoted) = rest.split_at(position);
        if quoted.starts_with('"') {
            // serde quotes strings with Rust's `{:?}`: `string "…"`, escapes inside.
            match before.strip_suffix("string ") {
                Some(before) => {
                    out.push_str(before);
                    out.push_str("a string");
                }
                None => {
                    out.push_str(before);
                    out.push_str("\"…\"");
                }
            }
            rest = after_debug_string(quoted);
        } else {
            out.push_str(before);
            let inner = &quoted[1..];
            match inner.find('`') {
                Some(end) => {
                    let value = &inner[..end];
                    out.push('`');
                    out.push_str(if looks_like_a_name(value) {
                        value
                    } else {
                        "…"
                    });
                    out.push('`');
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("`…");
                    rest = "";
                }
            }
        }
    }
    out.push_str(rest);
    scrub(&out).into_owned()
}

/// What follows a `"…"` string written with `{:?}` (escaped quotes and backslashes inside).
fn after_debug_string(quoted: &str) -> &str {
    let mut escaped = false;
    for (index, c) in quoted.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return &quoted[index + 1..],
            _ => {}
        }
    }
    ""
}

/// A field or variant name (`amount`, `order_id`, `OrderPlaced`), or a number short enough
/// to be no card number.
fn looks_like_a_name(value: &str) -> bool {
    let name = value.len() <= 40
        && value.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let number = value.chars().filter(char::is_ascii_digit).count() <= 12
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+'));
    (name || number) && !value.is_empty()
}

fn is_alphanumeric(bytes: &[u8], index: usize) -> bool {
    bytes.get(index).is_some_and(u8::is_ascii_alphanumeric)
}

/// The end of a card number starting at `at`, if one does.
fn card_number(bytes: &[u8], at: usize) -> Option<usize> {
    if !bytes[at].is_ascii_digit() || (at > 0 && is_alphanumeric(bytes, at - 1)) {
        return None;
    }
    // Digit groups separated by one space or dash.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut index = at;
    loop {
        let start = index;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        groups.push((start, index));
        let separated = matches!(bytes.get(index), Some(b' ' | b'-'))
            && bytes.get(index + 1).is_some_and(u8::is_ascii_digit);
        if !separated || groups.len() == 5 {
            break;
        }
        index += 1;
    }
    // Try the longest run of groups that forms a card number, then shorter ones.
    for count in (1..=groups.len()).rev() {
        let (_, end) = groups[count - 1];
        if is_alphanumeric(bytes, end) {
            continue;
        }
        let sizes: Vec<usize> = groups[..count].iter().map(|(s, e)| e - s).collect();
        let printed_groups = matches!(
            sizes.as_slice(),
            [_] | [4, 4, 4, 4] | [4, 4, 4, 4, 3] | [4, 6, 5] | [4, 6, 4] | [4, 4, 4, 1]
        );
        if !printed_groups {
            continue;
        }
        let digits: Vec<u8> = groups[..count]
            .iter()
            .flat_map(|&(s, e)| bytes[s..e].iter().map(|d| d - b'0'))
            .collect();
        let epoch_millis = digits.len() == 13 && digits[0] == 1;
        if (13..=19).contains(&digits.len()) && !epoch_millis && luhn(&digits) {
            return Some(end);
        }
    }
    None
}

/// The Luhn check digit test.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let digit = u32::from(digit);
            if !position.is_multiple_of(2) {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// The end of a JWT starting at `at`, if one does.
fn jwt(bytes: &[u8], at: usize) -> Option<usize> {
    if !bytes[at..].starts_with(b"eyJ") || (at > 0 && is_base64url(bytes[at - 1])) {
        return None;
    }
    let mut index = at;
    for part in 0..3 {
        let start = index;
        while index < bytes.len() && is_base64url(bytes[index]) {
            index += 1;
        }
        let length = index - start;
        if part < 2 && length < 4 {
            return None;
        }
        if part < 2 {
            if bytes.get(index) != Some(&b'.') {
                return None;
            }
            index += 1;
        }
    }
    Some(index)
}

fn is_local_part(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"._%+-".contains(&byte)
}

fn is_domain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.'
}

/// Where the local part of an e-mail address whose `@` is at `at` begins.
fn email_start(bytes: &[u8], at: usize) -> usize {
    let mut start = at;
    while start > 0 && is_local_part(bytes[start - 1]) {
        start -= 1;
    }
    start
}

/// An e-mail address whose `@` is at `at`: its kind and end.
fn email(bytes: &[u8], at: usize) -> Option<(Sensitive, usize)> {
    if bytes[at] != b'@' || email_start(bytes, at) == at {
        return None;
    }
    let mut end = at + 1;
    while end < bytes.len() && is_domain(bytes[end]) {
        end += 1;
    }
    // A trailing dot ends a sentence, not the domain.
    while end > at + 1 && bytes[end - 1] == b'.' {
        end -= 1;
    }
    let domain = std::str::from_utf8(&bytes[at + 1..end]).ok()?;
    let mut labels = domain.split('.');
    let top = domain.rsplit('.').next()?;
    let valid = domain.contains('.')
        && labels.all(|label| !label.is_empty())
        && top.len() >= 2
        && top.bytes().all(|b| b.is_ascii_alphabetic());
    valid.then_some((Sensitive::Email, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Sensitive> {
        findings(text).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn card_numbers_are_luhn_valid_digit_runs_of_13_to_19() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "4222222222222",
            "\"4111111111111111\"",
            "ord_4111111111111111",
        ] {
            assert_eq!(kinds(card), [Sensitive::CardNumber], "{card}");
        }
        for not_a_card in [
            "4111111111111112",              // fails Luhn
            "411111111111",                  // 12 digits
            "1795712623853",                 // an epoch timestamp in milliseconds
            "0197a4111111111111111b",        // inside a hex id
            "1000000000000000",              // a round number fails Luhn
            "2026-11-26 18:22:38",           // a date
            "41111111111111111111111111111", // too long
        ] {
            assert_eq!(kinds(not_a_card), [], "{not_a_card}");
        }
    }

    #[test]
    fn jwts_and_emails_are_found() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
        assert_eq!(kinds(&format!("Bearer {jwt}")), [Sensitive::Jwt]);
        assert_eq!(
            kinds("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
            [Sensitive::Jwt]
        );
        assert_eq!(
            kinds("mail alice.b+x@mail.example.com."),
            [Sensitive::Email]
        );
        for benign in [
            "@types/node",
            "lodash@4.17.21",
            "a@b",
            "eyJust.a.word",
            "x @ y.com",
        ] {
            assert_eq!(kinds(benign), [], "{benign}");
        }
    }

    #[test]
    fn scrub_masks_each_value_and_keeps_the_rest() {
        assert_eq!(
            scrub(
                "to bob@example.org: eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig paid 4111111111111111!"
            ),
            "to [e-mail]: [token] paid [card number]!"
        );
        assert!(matches!(scrub("order ord_1 SHIPPED"), Cow::Borrowed(_)));
    }

    #[test]
    fn shown_text_is_scrubbed_masked_and_short() {
        assert_eq!(shown("Hostile4111111111111111"), "Hostile[number]");
        assert_eq!(shown("to bob@example.org"), "to [e-mail]");
        assert_eq!(shown("OrderPlaced"), "OrderPlaced");
        assert_eq!(shown(&"x".repeat(100)), format!("{}…", "x".repeat(64)));
    }

    #[test]
    fn json_errors_quote_no_values() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            amount: u64,
            priority: Option<Priority>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Priority {
            Urgent,
        }
        let error =
            |json: &str| json_error(&serde_json::from_str::<Body>(json).expect_err("refused"));
        let message = error(r#"{"amount": "4111111111111111 alice@example.com \" x"}"#);
        assert_eq!(
            message,
            "invalid type: a string, expected u64 at line 1 column 52"
        );
        let message = error(r#"{"amount": 1, "alice@example.com": 1}"#);
        assert!(
            message.starts_with("unknown field `…`, expected"),
            "{message}"
        );
        let message = error(r#"{"amonut": 1}"#);
        assert!(message.starts_with("unknown field `amonut`"), "{message}");
        let message = error(r#"{"amount": 4111111111111111.0}"#);
        assert!(
            message.starts_with("invalid type: floating point `…`"),
            "{message}"
        );
        let message =
            error(r#"{"amount": 1, "priority": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.x"}"#);
        assert!(
            message.starts_with("unknown variant `…`, expected `Urgent`"),
            "{message}"
        );
        let message = error(r#"{"amount": -12}"#);
        assert!(message.contains("integer `-12`"), "{message}");
    }
}
