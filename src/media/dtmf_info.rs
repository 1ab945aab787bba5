//! Key presses carried in SIP INFO bodies: `application/dtmf-relay`
//! (`Signal=5` / `Duration=160` lines, as Cisco and most PBXs send) and
//! `application/dtmf` (the bare key).

/// The key in an INFO body, or `None` if the body carries none.
pub fn parse(content_type: &str, body: &[u8]) -> Option<char> {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    match media_type.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| key_of(value.trim()))?
        }),
        "application/dtmf" => key_of(text.trim()),
        _ => None,
    }
}

/// A key from its text form; `10` and `11` are the event codes some
/// equipment sends for `*` and `#`.
fn key_of(value: &str) -> Option<char> {
    match value {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = value.chars();
    let key = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && matches!(key, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn dtmf_relay_signal_line() {
        assert_eq!(
            parse("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            parse("Application/DTMF-Relay", b"signal = #\nduration=100"),
            Some('#')
        );
        assert_eq!(parse("application/dtmf-relay", b"Signal=11\r\n"), Some('#'));
        assert_eq!(parse("application/dtmf-relay", b"Duration=160\r\n"), None);
        assert_eq!(parse("application/dtmf-relay", b"Signal=55\r\n"), None);
    }

    #[test]
    fn bare_dtmf_body() {
        assert_eq!(parse("application/dtmf", b"9"), Some('9'));
        assert_eq!(parse("application/dtmf", b"*\r\n"), Some('*'));
        assert_eq!(parse("application/dtmf", b"d"), Some('D'));
        assert_eq!(parse("application/dtmf", b""), None);
    }

    #[test]
    fn other_types_carry_no_key() {
        assert_eq!(parse("text/plain", b"5"), None);
        assert_eq!(parse("application/dtmf", &[0xff, 0xfe]), None);
    }
}
