//! Who is calling, from an INVITE: the caller's number and whether they
//! asked to stay anonymous. Pure.
//!
//! The number is, in this order of preference:
//! 1. a P-Asserted-Identity (RFC 3325): its `tel:` URI, else its SIP URI's
//!    user part;
//! 2. a Remote-Party-ID (draft-ietf-sip-privacy-04) naming the calling
//!    party;
//! 3. the From URI's user part;
//!
//! each only when it is a number a person can be called back on
//! (`phone`): `anonymous`, `sipp`, `linphone` and extensions such
//! as `8001` are not. The first two are network assertions, taken only from
//! the sources an operator trusts to make them (`sip.asserted_identity_from`:
//! the trunks' SBCs, never networks of phones, which could write anything
//! there); from anywhere else they are ignored, and the caller says why so
//! that it can be logged.
//!
//! Privacy (RFC 3323 §4.2, RFC 3325 §9.3) is asked for by a `Privacy`
//! header with `id`, `user` or `header`, a Remote-Party-ID with
//! `privacy=full`, `uri` or `name`, or an anonymous From
//! (`anonymous@anonymous.invalid`); it is honoured from any source, as it
//! only ever withholds. The number is still used inside the gateway (for
//! the caller's ticket); it is only not presented onwards.

use super::headers::{AssertedIdentity, NameAddr, Privacy, RemotePartyId, Uri};
use super::message::Message;
use crate::phone::PhoneNumber;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// Where the caller's number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    AssertedIdentity,
    RemotePartyId,
    From,
    /// We called this number (an outbound call).
    Dialled,
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentitySource::AssertedIdentity => "P-Asserted-Identity",
            IdentitySource::RemotePartyId => "Remote-Party-ID",
            IdentitySource::From => "From",
            IdentitySource::Dialled => "dialled",
        })
    }
}

/// The caller as the gateway knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The From URI's user part as sent (`13800138000`, `anonymous`,
    /// `sipp`, `8001`), for records and logs.
    pub from_user: Option<String>,
    /// The caller's number, when one is known, and where it came from.
    pub number: Option<(PhoneNumber, IdentitySource)>,
    /// The caller asked not to be identified onwards.
    pub private: bool,
    /// Identity headers that were present and not used, and why (for a
    /// debug log).
    pub ignored: Vec<String>,
}

impl CallerIdentity {
    /// The caller's number, when known.
    pub fn phone(&self) -> Option<&PhoneNumber> {
        self.number.as_ref().map(|(phone, _)| phone)
    }

    /// How the caller is named in call records, logs and to staff: the
    /// number when known, else the From user as sent.
    pub fn label(&self) -> String {
        match (&self.number, &self.from_user) {
            (Some((phone, _)), _) => phone.to_string(),
            (None, Some(user)) => user.clone(),
            (None, None) => String::new(),
        }
    }
}

/// Reads the caller's identity from `invite`, which came from `source`;
/// identity assertions count only from the networks in `trusted`.
pub fn caller_identity(invite: &Message, source: IpAddr, trusted: &[IpNet]) -> CallerIdentity {
    let from = invite.header("From").and_then(|f| NameAddr::parse(f).ok());
    let from_uri = from.as_ref().and_then(|f| Uri::parse(&f.uri).ok());
    let from_user = from_uri.as_ref().and_then(|u| u.user.clone());
    let trusted_source = trusted.iter().any(|net| net.contains(&source));
    let mut ignored = Vec::new();
    let mut private = invite
        .header_lines("Privacy")
        .filter_map(|value| Privacy::parse(value).ok())
        .any(|privacy| privacy.withholds_identity())
        || from_uri.as_ref().is_some_and(is_anonymous);

    let asserted: Vec<AssertedIdentity> = invite
        .header_lines("P-Asserted-Identity")
        .filter_map(|value| match AssertedIdentity::parse_list(value) {
            Ok(ids) => Some(ids),
            Err(reason) => {
                ignored.push(format!("P-Asserted-Identity {value:?}: {reason}"));
                None
            }
        })
        .flatten()
        .collect();
    let parties: Vec<RemotePartyId> = invite
        .header_lines("Remote-Party-ID")
        .filter_map(|value| match RemotePartyId::parse(value) {
            Ok(rpid) => Some(rpid),
            Err(reason) => {
                ignored.push(format!("Remote-Party-ID {value:?}: {reason}"));
                None
            }
        })
        .filter(RemotePartyId::is_calling)
        .collect();
    private |= parties.iter().any(RemotePartyId::withholds_number);

    let mut number = None;
    if !asserted.is_empty() || !parties.is_empty() {
        if trusted_source {
            // A tel: URI names the number itself; a SIP URI's user part
            // may be a name.
            let mut by_preference: Vec<&AssertedIdentity> = asserted.iter().collect();
            by_preference.sort_by_key(|id| id.uri.scheme != "tel");
            number = by_preference
                .into_iter()
                .find_map(|id| dialable(id.number()))
                .map(|phone| (phone, IdentitySource::AssertedIdentity))
                .or_else(|| {
                    parties
                        .iter()
                        .find_map(|rpid| dialable(rpid.identity.number()))
                        .map(|phone| (phone, IdentitySource::RemotePartyId))
                });
            if number.is_none() {
                ignored.push("the asserted identity names no phone number".to_string());
            }
        } else {
            ignored.push(format!(
                "identity headers from {source}, which is not in sip.asserted_identity_from"
            ));
        }
    }
    let number = number
        .or_else(|| dialable(from_user.as_deref()).map(|phone| (phone, IdentitySource::From)));
    CallerIdentity {
        from_user,
        number,
        private,
        ignored,
    }
}

fn dialable(text: Option<&str>) -> Option<PhoneNumber> {
    PhoneNumber::contact(text?).ok()
}

/// An anonymous From (RFC 3323 §4.1.1.3): the user `anonymous`, or the
/// host `anonymous.invalid`.
fn is_anonymous(uri: &Uri) -> bool {
    uri.user
        .as_deref()
        .is_some_and(|user| user.eq_ignore_ascii_case("anonymous"))
        || uri.host.eq_ignore_ascii_case("anonymous.invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUNK: [u8; 4] = [192, 0, 2, 10];

    fn trusted() -> Vec<IpNet> {
        vec!["192.0.2.0/28".parse().unwrap()]
    }

    fn invite(from: &str, extra: &[(&str, &str)]) -> Message {
        let mut invite = Message::request(crate::sip::message::Method::Invite, "sip:10000@gw");
        invite.push_header("From", from);
        for (name, value) in extra {
            invite.push_header(name, *value);
        }
        invite
    }

    fn from_trunk(from: &str, extra: &[(&str, &str)]) -> CallerIdentity {
        caller_identity(&invite(from, extra), IpAddr::from(TRUNK), &trusted())
    }

    const ANONYMOUS: &str = r#""Anonymous" <sip:anonymous@anonymous.invalid>;tag=1"#;

    #[test]
    fn a_phone_number_in_from_is_the_callers_number() {
        let id = from_trunk("<sip:+86-138-0013-8000@trunk>;tag=1", &[]);
        assert_eq!(id.phone().unwrap().as_str(), "13800138000");
        assert_eq!(id.number.unwrap().1, IdentitySource::From);
        assert!(!id.private);
    }

    #[test]
    fn names_and_extensions_in_from_are_no_number() {
        for user in ["sipp", "linphone", "8001"] {
            let id = from_trunk(&format!("<sip:{user}@127.0.0.1>;tag=1"), &[]);
            assert_eq!(id.phone(), None, "{user}");
            assert_eq!(id.label(), user);
        }
    }

    #[test]
    fn an_anonymous_caller_with_a_trusted_asserted_identity() {
        let id = from_trunk(
            ANONYMOUS,
            &[
                (
                    "P-Asserted-Identity",
                    "<sip:13900139000@trunk.example>, <tel:+86-139-0013-9000>",
                ),
                ("Privacy", "id"),
            ],
        );
        let (phone, source) = id.number.clone().unwrap();
        assert_eq!(
            (phone.as_str(), source),
            ("13900139000", IdentitySource::AssertedIdentity)
        );
        assert!(id.private);
        assert_eq!(id.from_user.as_deref(), Some("anonymous"));
        assert_eq!(id.label(), "13900139000");
    }

    #[test]
    fn the_tel_uri_wins_over_a_sip_user_that_is_a_name() {
        let id = from_trunk(
            "<sip:13800138000@x>;tag=1",
            &[(
                "P-Asserted-Identity",
                "<sip:alice@pbx.example>, <tel:+8613900139000>",
            )],
        );
        assert_eq!(id.phone().unwrap().as_str(), "13900139000");
    }

    #[test]
    fn assertions_from_untrusted_sources_are_ignored_and_said_why() {
        let id = caller_identity(
            &invite(
                ANONYMOUS,
                &[("P-Asserted-Identity", "<tel:+8613900139000>")],
            ),
            IpAddr::from([198, 51, 100, 7]),
            &trusted(),
        );
        assert_eq!(id.phone(), None);
        assert!(id.private);
        assert!(id.ignored[0].contains("not in sip.asserted_identity_from"));
    }

    #[test]
    fn remote_party_id_of_the_calling_party_with_privacy() {
        let id = from_trunk(
            ANONYMOUS,
            &[
                ("Remote-Party-ID", "<sip:10000@gw>;party=called"),
                (
                    "Remote-Party-ID",
                    "<sip:13700137000@trunk;user=phone>;party=calling;screen=yes;privacy=full",
                ),
            ],
        );
        let (phone, source) = id.number.clone().unwrap();
        assert_eq!(
            (phone.as_str(), source),
            ("13700137000", IdentitySource::RemotePartyId)
        );
        assert!(id.private);
    }

    #[test]
    fn asserted_identity_beats_remote_party_id_and_from() {
        let id = from_trunk(
            "<sip:13800138000@x>;tag=1",
            &[
                ("Remote-Party-ID", "<sip:13700137000@trunk>;party=calling"),
                ("P-Asserted-Identity", "<sip:13900139000@trunk>"),
            ],
        );
        assert_eq!(id.phone().unwrap().as_str(), "13900139000");
        assert!(!id.private);
    }

    #[test]
    fn an_assertion_without_a_number_falls_back_to_from() {
        let id = from_trunk(
            "<sip:13800138000@x>;tag=1",
            &[("P-Asserted-Identity", "<sip:agent7@pbx>")],
        );
        assert_eq!(id.number.clone().unwrap().1, IdentitySource::From);
        assert_eq!(id.ignored, ["the asserted identity names no phone number"]);
        let broken = from_trunk(
            "<sip:sipp@x>;tag=1",
            &[("P-Asserted-Identity", "<mailto:x@y>")],
        );
        assert_eq!(broken.phone(), None);
        assert!(broken.ignored[0].starts_with("P-Asserted-Identity"));
    }

    #[test]
    fn privacy_none_or_session_does_not_withhold() {
        for value in ["none", "session"] {
            let id = from_trunk("<sip:13800138000@x>;tag=1", &[("Privacy", value)]);
            assert!(!id.private, "{value}");
        }
        assert!(from_trunk("<sip:13800138000@x>;tag=1", &[("Privacy", "user")]).private);
    }
}
