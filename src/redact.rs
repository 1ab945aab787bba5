//! Credentials kept out of what the gateway logs or prints. A database URL
//! (`postgres://hotline:secret@db/hotline`) or a provider URL may carry a
//! password in its userinfo or its query (`?password=…`, `?token=…`);
//! every place that shows such a URL to a person (error messages, logs,
//! `check-config`, the outbox's `last_error`) passes it through [`url`]
//! first. Pure text in, text out; nothing here parses for any other use.

/// What a hidden value is replaced with.
pub const MASK: &str = "***";

/// `text` with the password of its userinfo and the values of secret-named
/// query parameters replaced by [`MASK`]: `postgres://hotline:secret@db/x`
/// becomes `postgres://hotline:***@db/x`. The user name, host, port, path
/// and other parameters stay, so the URL still says where it points. Text
/// that is not a URL with credentials comes back unchanged.
pub fn url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{MASK}@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{}", query_masked(tail))
}

/// The path, query and fragment with secret-named parameters' values masked.
fn query_masked(tail: &str) -> String {
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (tail, None),
    };
    let mut out = match before_fragment.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_secret_name(name) => format!("{name}={MASK}"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => before_fragment.to_string(),
    };
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Parameter names that carry credentials (libpq's `password` and
/// `sslpassword`, and the usual token and key names).
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "token"]
        .iter()
        .any(|word| name.contains(word))
        || ["pass", "pwd", "apikey", "api_key", "sig", "signature"].contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_userinfo_is_masked() {
        assert_eq!(
            url("postgres://hotline:s3cr3t@db.example.com:5432/hotline"),
            "postgres://hotline:***@db.example.com:5432/hotline"
        );
        assert_eq!(
            url("postgresql://u:p%40ss@[::1]/x?sslmode=require"),
            "postgresql://u:***@[::1]/x?sslmode=require"
        );
        // A password holding '@' or ':': everything up to the last '@'.
        assert_eq!(url("https://a:b:c@d@host/p"), "https://a:***@host/p");
        assert_eq!(url("https://user:@host"), "https://user:***@host");
    }

    #[test]
    fn secret_named_query_parameters_are_masked() {
        assert_eq!(
            url("postgres://db/hotline?user=h&password=s3cr3t&sslmode=verify-full"),
            "postgres://db/hotline?user=h&password=***&sslmode=verify-full"
        );
        assert_eq!(
            url("https://relay.example.com/send?api_key=abc&Token=x&to=1#frag"),
            "https://relay.example.com/send?api_key=***&Token=***&to=1#frag"
        );
        assert_eq!(
            url("postgres://h@db/x?sslpassword=k"),
            "postgres://h@db/x?sslpassword=***"
        );
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for text in [
            "sqlite://data/hotline.db",
            "sqlite:hotline.db?mode=rwc",
            "postgres://postgres@127.0.0.1:5432/test",
            "https://api.twilio.com",
            "https://gw.example.com/sms/status?key=resolved:5551234567:3",
            "not a url",
            "",
        ] {
            assert_eq!(url(text), text);
        }
    }

    #[test]
    fn a_password_never_survives() {
        for text in [
            "postgres://hotline:TOPSECRET@db/hotline",
            "postgres://db/hotline?password=TOPSECRET",
            "https://x:TOPSECRET@h:8443/p?q=1",
            "mysql://root:TOPSECRET@localhost/db",
        ] {
            assert!(!url(text).contains("TOPSECRET"), "{text} → {}", url(text));
        }
    }
}
