//! Typed views of the header values the gateway acts on: Via, name-addr
//! (From, To, Contact, Route, Record-Route), CSeq and SIP URIs, and the
//! caller identity headers: P-Asserted-Identity (RFC 3325),
//! Remote-Party-ID (draft-ietf-sip-privacy-04) and Privacy (RFC 3323).
//!
//! Each parser takes the unfolded header value text and returns a small
//! struct or a static reason string that can go straight into a `400`
//! reason phrase. Parsers never panic on any input.

use std::net::IpAddr;

/// A `;name=value` parameter list entry; `value` is `None` for flags like `lr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Parses `;a=1;b;c = 2` into parameters. Every parameter needs a token name.
fn parse_params(text: &str) -> Result<Vec<Param>, &'static str> {
    let mut params = Vec::new();
    let text = text.trim();
    if text.is_empty() {
        return Ok(params);
    }
    let text = text.strip_prefix(';').ok_or("text after a value")?;
    for raw in super::message::split_outside_quotes(text, ';', false) {
        let (name, value) = match raw.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
            None => (raw.trim(), None),
        };
        if !super::message::is_token(name) {
            return Err("empty or bad parameter");
        }
        params.push(Param {
            name: name.to_string(),
            value,
        });
    }
    Ok(params)
}

/// One Via header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token in upper case (`UDP`, `TCP`, …).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

impl Via {
    pub fn parse(value: &str) -> Result<Via, &'static str> {
        // "SIP / 2.0 / UDP host:port;params" with any LWS around the slashes.
        let mut rest = value.trim();
        let mut protocol = Vec::with_capacity(3);
        for i in 0..3 {
            let end = if i < 2 {
                rest.find('/').ok_or("bad Via protocol")?
            } else {
                rest.find([' ', '\t']).ok_or("Via without sent-by")?
            };
            protocol.push(rest[..end].trim());
            rest = rest[end..].trim_start_matches('/').trim_start();
        }
        if !protocol[0].eq_ignore_ascii_case("SIP") || protocol[1] != "2.0" {
            return Err("bad Via protocol");
        }
        if !super::message::is_token(protocol[2]) {
            return Err("bad Via transport");
        }
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest.trim(), ""),
        };
        let (host, port) = split_host_port(sent_by).ok_or("bad Via sent-by")?;
        let params = parse_params(params).map_err(|_| "bad Via parameter")?;
        Ok(Via {
            transport: protocol[2].to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").and_then(|p| p.value.as_deref())
    }

    /// True when the branch carries the RFC 3261 magic cookie.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    pub fn has_param(&self, name: &str) -> bool {
        find_param(&self.params, name).is_some()
    }

    /// `host:port` as written, for transaction matching.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
pub fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{v6}]"), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    let valid_host = host.starts_with('[')
        || host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if host.is_empty() || !valid_host {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.trim().parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

/// A parsed URI. SIP and SIPS URIs are taken apart; other schemes (`tel`,
/// unknown) keep their text so that the caller can answer `416`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    /// User part, percent-decoded.
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
    /// `?headers` part, still escaped.
    pub headers: Option<String>,
}

impl Uri {
    pub fn parse(text: &str) -> Result<Uri, &'static str> {
        let text = text.trim();
        let (scheme, rest) = text.split_once(':').ok_or("URI without scheme")?;
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok {
            return Err("bad URI scheme");
        }
        if text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'<' || b == b'>')
        {
            return Err("whitespace or angle bracket inside a URI");
        }
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return Ok(Uri {
                scheme,
                user: None,
                host: rest.to_string(),
                port: None,
                params: Vec::new(),
                headers: None,
            });
        }
        // The user part may hold '?', ';', '/' and ',' unescaped (RFC 3261
        // §25.1 user-unreserved; RFC 4475 intmeth), while '@' appears
        // nowhere else in a SIP URI: take the userinfo off first, then
        // the headers and the parameters.
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((h, hs)) => (h, Some(hs.to_string())),
            None => (hostpart, None),
        };
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], &hostpart[i..]),
            None => (hostpart, ""),
        };
        let (host, port) = split_host_port(hostport).ok_or("bad host in URI")?;
        let user = match userinfo {
            Some(info) => {
                let user = info.split_once(':').map_or(info, |(u, _)| u);
                Some(percent_decode(user).ok_or("bad escape in URI user")?)
            }
            None => None,
        };
        let params = parse_params(params).map_err(|_| "bad URI parameter")?;
        Ok(Uri {
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
    }

    pub fn is_sip(&self) -> bool {
        self.scheme == "sip" || self.scheme == "sips"
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    /// The host as an IP address when it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

/// Decodes `%XX` escapes; `None` for a broken escape or invalid UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A name-addr or addr-spec header value (From, To, Contact, Route, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    /// The URI text as written (inside the angle brackets, if any).
    pub uri: String,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn parse(value: &str) -> Result<NameAddr, &'static str> {
        let value = value.trim();
        if value == "*" {
            return Ok(NameAddr {
                display: None,
                uri: "*".to_string(),
                params: Vec::new(),
            });
        }
        let (display, after_display) = if let Some(quoted) = value.strip_prefix('"') {
            let end = closing_quote(quoted).ok_or("unterminated quoted display name")?;
            (
                Some(quoted[..end].to_string()),
                quoted[end + 1..].trim_start(),
            )
        } else if let Some(lt) = value.find('<') {
            let name = value[..lt].trim();
            let is_display_token = |w: &str| super::message::is_token(w);
            if !name.split_whitespace().all(is_display_token) {
                return Err("display name needs quotes");
            }
            ((!name.is_empty()).then(|| name.to_string()), &value[lt..])
        } else {
            (None, value)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let (uri, params) = inner.split_once('>').ok_or("missing '>' in address")?;
            if uri.trim() != uri || uri.is_empty() {
                return Err("whitespace inside '<' and '>'");
            }
            let params = parse_params(params).map_err(|_| "bad address parameter")?;
            Uri::parse(uri)?;
            return Ok(NameAddr {
                display,
                uri: uri.to_string(),
                params,
            });
        }
        if display.is_some() {
            return Err("display name without '<'");
        }
        // addr-spec: parameters after the first ';' belong to the header.
        let (uri, params) = match after_display.find(';') {
            Some(i) => (&after_display[..i], &after_display[i..]),
            None => (after_display, ""),
        };
        if uri.contains(['?', ',']) {
            return Err("address with '?' or ',' needs '<' and '>'");
        }
        Uri::parse(uri)?;
        let params = parse_params(params).map_err(|_| "bad address parameter")?;
        Ok(NameAddr {
            display: None,
            uri: uri.trim().to_string(),
            params,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").and_then(|p| p.value.as_deref())
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }
}

/// Index of the closing quote of a quoted string whose opening quote was
/// already stripped, honouring backslash escapes.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: String,
}

impl CSeq {
    pub fn parse(value: &str) -> Result<CSeq, &'static str> {
        let mut parts = value.split_whitespace();
        let seq = parts.next().ok_or("empty CSeq")?;
        let method = parts.next().ok_or("CSeq without method")?;
        if parts.next().is_some() {
            return Err("bad CSeq");
        }
        let seq: u32 = seq
            .parse()
            .ok()
            .filter(|&n: &u32| n < 1 << 31)
            .ok_or("CSeq number out of range")?;
        if !super::message::is_token(method) {
            return Err("bad CSeq method");
        }
        Ok(CSeq {
            seq,
            method: method.to_string(),
        })
    }
}

/// One identity of a P-Asserted-Identity (RFC 3325 §9.1), or the address
/// of a Remote-Party-ID: a SIP or SIPS URI, or a `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertedIdentity {
    pub display: Option<String>,
    pub uri: Uri,
}

impl AssertedIdentity {
    /// A P-Asserted-Identity value: one identity, or two separated by a
    /// comma (a SIP or SIPS URI and a `tel:` URI).
    pub fn parse_list(value: &str) -> Result<Vec<AssertedIdentity>, &'static str> {
        let mut identities = Vec::new();
        for item in super::message::split_list(value) {
            let address = NameAddr::parse(item)?;
            if !address.params.is_empty() {
                return Err("P-Asserted-Identity takes no header parameters");
            }
            identities.push(AssertedIdentity::from_address(&address)?);
        }
        match identities.len() {
            1 | 2 => Ok(identities),
            _ => Err("P-Asserted-Identity holds one or two identities"),
        }
    }

    fn from_address(address: &NameAddr) -> Result<AssertedIdentity, &'static str> {
        let uri = Uri::parse(&address.uri)?;
        if !uri.is_sip() && uri.scheme != "tel" {
            return Err("identity URI is not sip:, sips: or tel:");
        }
        Ok(AssertedIdentity {
            display: address.display.clone(),
            uri,
        })
    }

    /// The telephone number the identity names, as written: a `tel:`
    /// URI's number (before its parameters) or a SIP URI's user part
    /// (before any `;` parameters of the user, RFC 4967's
    /// `;phone-context` and the like). Whether it is a phone number at all
    /// is for `phone` to say.
    pub fn number(&self) -> Option<&str> {
        let text = if self.uri.scheme == "tel" {
            self.uri.host.as_str()
        } else {
            self.uri.user.as_deref()?
        };
        let number = text.split(';').next().unwrap_or_default();
        (!number.is_empty()).then_some(number)
    }
}

/// A Remote-Party-ID header value (draft-ietf-sip-privacy-04 §6): an
/// address with `party`, `screen` and `privacy` parameters, which many
/// trunks still send instead of P-Asserted-Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePartyId {
    pub identity: AssertedIdentity,
    /// `calling` or `called`; absent means calling.
    pub party: Option<String>,
    /// `screen=yes`: the network checked the number.
    pub screened: bool,
    /// The privacy tokens asked for: `full`, `name`, `uri`, `off`, `ipaddr`.
    pub privacy: Vec<String>,
}

impl RemotePartyId {
    pub fn parse(value: &str) -> Result<RemotePartyId, &'static str> {
        let address = NameAddr::parse(value)?;
        let identity = AssertedIdentity::from_address(&address)?;
        fn value_of(param: &Param) -> Option<&str> {
            param.value.as_deref().map(|v| v.trim_matches('"'))
        }
        let party = address
            .param("party")
            .and_then(value_of)
            .map(str::to_ascii_lowercase);
        let screened = address
            .param("screen")
            .and_then(value_of)
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        let privacy = address
            .params
            .iter()
            .filter(|p| p.name.eq_ignore_ascii_case("privacy"))
            .filter_map(value_of)
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .collect();
        Ok(RemotePartyId {
            identity,
            party,
            screened,
            privacy,
        })
    }

    /// Whether it names the caller (not the called party).
    pub fn is_calling(&self) -> bool {
        self.party.as_deref().is_none_or(|p| p == "calling")
    }

    /// Whether the caller asked that their number not be shown onwards.
    pub fn withholds_number(&self) -> bool {
        self.privacy
            .iter()
            .any(|p| matches!(p.as_str(), "full" | "uri" | "name"))
    }
}

/// The Privacy header (RFC 3323 §4.2; `id` from RFC 3325 §9.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privacy {
    /// The priv-values in lower case: `header`, `session`, `user`, `none`,
    /// `critical`, `id`, or extensions.
    pub values: Vec<String>,
}

impl Privacy {
    pub fn parse(value: &str) -> Result<Privacy, &'static str> {
        let values: Vec<String> = value
            .split([';', ','])
            .map(|v| v.trim().to_ascii_lowercase())
            .collect();
        if values.iter().any(|v| !super::message::is_token(v)) {
            return Err("bad Privacy value");
        }
        Ok(Privacy { values })
    }

    /// Whether the caller's identity must not be passed on: `id`, `user`
    /// or `header` asked for, and not `none`.
    pub fn withholds_identity(&self) -> bool {
        let asked = |value: &str| self.values.iter().any(|v| v == value);
        !asked("none") && (asked("id") || asked("user") || asked("header"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_spaces_around_slashes() {
        let via = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(via.transport, "UDP");
        assert_eq!(via.host, "192.0.2.2");
        assert_eq!(via.branch(), Some("390skdjuw"));
        assert!(!via.has_rfc3261_branch());
    }

    #[test]
    fn via_with_port_rport_and_ipv6() {
        let via = Via::parse("SIP/2.0/TCP [::1]:5070;rport;branch=z9hG4bKa").unwrap();
        assert_eq!(via.host, "[::1]");
        assert_eq!(via.port, Some(5070));
        assert!(via.has_param("rport"));
        assert_eq!(via.sent_by(), "[::1]:5070");
    }

    #[test]
    fn via_with_empty_parameters_is_rejected() {
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
    }

    #[test]
    fn uri_user_is_unescaped() {
        let uri = Uri::parse("sip:%75se%72@example.com;lr").unwrap();
        assert_eq!(uri.user.as_deref(), Some("user"));
        assert!(uri.param("lr").is_some());
    }

    #[test]
    fn uri_user_may_hold_question_marks_and_semicolons() {
        // RFC 4475 intmeth: the user part is "1_unusual...crazy?,/;;*".
        let uri = Uri::parse(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        )
        .unwrap();
        assert_eq!(uri.host, "example.com");
        assert_eq!(
            uri.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(uri.headers, None);
        let with_headers = Uri::parse("sip:user@example.com?Route=%3Csip:example.com%3E").unwrap();
        assert_eq!(with_headers.host, "example.com");
        assert_eq!(
            with_headers.headers.as_deref(),
            Some("Route=%3Csip:example.com%3E")
        );
        let hostonly = Uri::parse("sip:example.com;lr?subject=x").unwrap();
        assert_eq!(
            (hostonly.user.as_deref(), hostonly.host.as_str()),
            (None, "example.com")
        );
        assert!(hostonly.param("lr").is_some());
        assert_eq!(hostonly.headers.as_deref(), Some("subject=x"));
    }

    #[test]
    fn unknown_scheme_is_kept() {
        let uri = Uri::parse("isbn:2983792873").unwrap();
        assert_eq!(uri.scheme, "isbn");
        assert!(!uri.is_sip());
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(r#""J Rosenberg \\\""  <sip:jdrosen@example.com> ; tag = 98asjd8"#)
            .unwrap();
        assert_eq!(a.tag(), Some("98asjd8"));
        let b = NameAddr::parse("sip:caller@example.net;tag=2").unwrap();
        assert_eq!(b.uri, "sip:caller@example.net");
        assert_eq!(b.tag(), Some("2"));
        let c = NameAddr::parse("Bob <sip:b@h>").unwrap();
        assert_eq!(c.display.as_deref(), Some("Bob"));
    }

    #[test]
    fn bad_name_addrs_are_rejected() {
        assert!(NameAddr::parse(r#""Bell, Alexander <sip:a@b>"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
        assert!(NameAddr::parse(r#""Watson" < sip:t@example.org >"#).is_err());
    }

    #[test]
    fn cseq_range() {
        assert_eq!(
            CSeq::parse("0009\r\n INVITE".replace("\r\n", "").as_str())
                .unwrap()
                .seq,
            9
        );
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
    }

    #[test]
    fn asserted_identity_with_a_sip_and_a_tel_uri() {
        let ids = AssertedIdentity::parse_list(
            r#""Cullen Jennings" <sip:fluffy@cisco.com>, <tel:+1-408-555-1212;phone-context=x>"#,
        )
        .unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].display.as_deref(), Some("Cullen Jennings"));
        assert_eq!(ids[0].number(), Some("fluffy"));
        assert_eq!(ids[1].uri.scheme, "tel");
        assert_eq!(ids[1].number(), Some("+1-408-555-1212"));
        let one =
            AssertedIdentity::parse_list("<sip:+8613900139000@gw.example;user=phone>").unwrap();
        assert_eq!(one[0].number(), Some("+8613900139000"));
    }

    #[test]
    fn bad_asserted_identities_are_refused() {
        for value in [
            "",
            "<sip:a@b>, <tel:+1>, <sip:c@d>",
            "<mailto:a@b>",
            "<sip:a@b>;tag=x",
            "Bell, Alexander <sip:a@b>",
        ] {
            assert!(AssertedIdentity::parse_list(value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn remote_party_id_with_its_parameters() {
        let rpid = RemotePartyId::parse(
            r#""John" <sip:13900139000@trunk.example;user=phone>;party=calling;screen=yes;privacy=full"#,
        )
        .unwrap();
        assert_eq!(rpid.identity.number(), Some("13900139000"));
        assert!(rpid.is_calling() && rpid.screened && rpid.withholds_number());
        let called = RemotePartyId::parse("<sip:10000@gw>;party=called;privacy=off").unwrap();
        assert!(!called.is_calling() && !called.screened && !called.withholds_number());
        let plain = RemotePartyId::parse("<tel:13900139000>").unwrap();
        assert!(plain.is_calling() && !plain.withholds_number());
        assert!(RemotePartyId::parse("<http://x>;party=calling").is_err());
    }

    #[test]
    fn privacy_values() {
        assert!(Privacy::parse("id").unwrap().withholds_identity());
        assert!(Privacy::parse("user; header").unwrap().withholds_identity());
        assert!(Privacy::parse("ID;critical").unwrap().withholds_identity());
        assert!(!Privacy::parse("none").unwrap().withholds_identity());
        assert!(!Privacy::parse("session").unwrap().withholds_identity());
        assert!(Privacy::parse("id;;").is_err());
    }
}
