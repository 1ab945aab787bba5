//! Dialog state (RFC 3261 §12): identifiers, CSeq spaces, the route set and
//! the remote target, and building in-dialog requests from them.
//!
//! The gateway is the UAS of the calls it answers (a dialog from an INVITE
//! and the 2xx we send) and the UAC of the calls it places to bridge a
//! transfer (a dialog from our INVITE and the 2xx we receive).

use super::headers::{NameAddr, Uri};
use super::message::{Message, Method};
use std::net::SocketAddr;

/// What identifies a dialog on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    /// Empty for an RFC 2543 peer that sent no From tag.
    pub remote_tag: String,
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    /// Our address of record with our tag (the To of the INVITE).
    pub local_uri: String,
    /// The peer's address with its tag (the From of the INVITE).
    pub remote_uri: String,
    pub local_seq: u32,
    pub remote_seq: u32,
    /// Where in-dialog requests go: the peer's Contact URI.
    pub remote_target: String,
    /// Record-Route values in the order the UAS uses them.
    pub route_set: Vec<String>,
    /// The dialog is secure (RFC 3261 §12.1.1, RFC 5630): the request that
    /// set it up had a `sips:` Request-URI, or `sips:` top Record-Route (or
    /// Contact, without Record-Route). Our Contact is then `sips:` too.
    pub secure: bool,
}

/// Why an in-dialog request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceError {
    /// CSeq lower than or equal to one already seen: `500` (RFC 3261 §12.2.2).
    OutOfOrder,
}

impl Dialog {
    /// Builds the UAS side of a dialog from an INVITE (validated already)
    /// and the local tag we put in our responses.
    pub fn from_invite(invite: &Message, local_tag: &str) -> Result<Dialog, &'static str> {
        let from = NameAddr::parse(invite.header("From").ok_or("no From")?)?;
        let to = invite.header("To").ok_or("no To")?;
        let call_id = invite.header("Call-ID").ok_or("no Call-ID")?;
        let cseq = super::headers::CSeq::parse(invite.header("CSeq").ok_or("no CSeq")?)?;
        let remote_target = match invite.header_values("Contact").next() {
            Some(contact) => NameAddr::parse(contact)?.uri,
            None => from.uri.clone(),
        };
        let route_set: Vec<String> = invite
            .header_values("Record-Route")
            .map(str::to_string)
            .collect();
        let secure = is_sips(invite.request_uri().unwrap_or_default())
            || match route_set.first() {
                Some(route) => NameAddr::parse(route).is_ok_and(|r| is_sips(&r.uri)),
                None => is_sips(&remote_target),
            };
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: from.tag().unwrap_or_default().to_string(),
            },
            local_uri: format!("{to};tag={local_tag}"),
            remote_uri: invite.header("From").unwrap_or_default().to_string(),
            local_seq: rand::random::<u16>().into(),
            remote_seq: cseq.seq,
            remote_target,
            route_set,
            secure,
        })
    }

    /// Builds the UAC side of a dialog from the INVITE we sent and the 2xx
    /// that answered it (RFC 3261 §12.1.2): the route set is the 2xx's
    /// Record-Route in reverse, the remote target its Contact.
    pub fn from_uac(invite: &Message, response: &Message) -> Result<Dialog, &'static str> {
        let from = NameAddr::parse(invite.header("From").ok_or("no From")?)?;
        let to_value = response.header("To").ok_or("no To")?;
        let to = NameAddr::parse(to_value)?;
        let cseq = super::headers::CSeq::parse(invite.header("CSeq").ok_or("no CSeq")?)?;
        let contact = response
            .header_values("Contact")
            .next()
            .ok_or("no Contact in the 2xx")?;
        let mut route_set: Vec<String> = response
            .header_values("Record-Route")
            .map(str::to_string)
            .collect();
        route_set.reverse();
        let secure = is_sips(invite.request_uri().unwrap_or_default());
        Ok(Dialog {
            id: DialogId {
                call_id: invite.header("Call-ID").ok_or("no Call-ID")?.to_string(),
                local_tag: from.tag().ok_or("no From tag")?.to_string(),
                remote_tag: to.tag().unwrap_or_default().to_string(),
            },
            local_uri: invite.header("From").unwrap_or_default().to_string(),
            remote_uri: to_value.to_string(),
            local_seq: cseq.seq,
            remote_seq: 0,
            remote_target: NameAddr::parse(contact)?.uri,
            route_set,
            secure,
        })
    }

    /// The ACK of the 2xx to our INVITE with CSeq `seq` (RFC 3261
    /// §13.2.2.4), without Via: it takes the INVITE's sequence number and
    /// is not a new request of the dialog's CSeq space.
    pub fn ack(&self, seq: u32) -> Message {
        self.build_request(Method::Ack, seq)
    }

    /// Checks and records the CSeq of a new in-dialog request.
    pub fn accept_remote_seq(&mut self, seq: u32) -> Result<(), SequenceError> {
        if seq <= self.remote_seq {
            return Err(SequenceError::OutOfOrder);
        }
        self.remote_seq = seq;
        Ok(())
    }

    /// Updates the remote target from a target-refresh request (re-INVITE, UPDATE).
    pub fn refresh_target(&mut self, request: &Message) {
        if let Some(uri) = request
            .header_values("Contact")
            .next()
            .and_then(|c| NameAddr::parse(c).ok())
        {
            self.remote_target = uri.uri;
        }
    }

    /// A new in-dialog request (RFC 3261 §12.2.1.1) without Via: the
    /// caller adds the Via of the transport it picks.
    pub fn new_request(&mut self, method: Method) -> Message {
        self.local_seq += 1;
        self.build_request(method, self.local_seq)
    }

    fn build_request(&self, method: Method, seq: u32) -> Message {
        let (request_uri, routes) = self.request_uri_and_routes();
        let mut request = Message::request(method.clone(), request_uri);
        request.push_header("Max-Forwards", "70");
        request.push_header("From", self.local_uri.clone());
        request.push_header("To", self.remote_uri.clone());
        request.push_header("Call-ID", self.id.call_id.clone());
        request.push_header("CSeq", format!("{seq} {method}"));
        for route in routes {
            request.push_header("Route", route);
        }
        request
    }

    /// Loose routing when the first route has `lr`, strict routing otherwise.
    fn request_uri_and_routes(&self) -> (String, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let first_uri = NameAddr::parse(first).map(|n| n.uri).unwrap_or_default();
        let loose = Uri::parse(&first_uri).is_ok_and(|u| u.param("lr").is_some());
        if loose {
            return (self.remote_target.clone(), self.route_set.clone());
        }
        let mut routes: Vec<String> = self.route_set[1..].to_vec();
        routes.push(format!("<{}>", self.remote_target));
        (first_uri, routes)
    }

    /// The address the next request should be sent to: the first route or
    /// the remote target, when that is an IP literal; `None` for a host
    /// name (the caller then uses the address the dialog came from). The
    /// transport is the URI's `transport` parameter in upper case, and
    /// `TLS` for a `sips:` URI (RFC 3261 §26.2: TLS over TCP).
    pub fn next_hop(&self) -> Option<(SocketAddr, Option<String>)> {
        let uri = match self.route_set.first() {
            Some(route) => NameAddr::parse(route).ok()?.uri,
            None => self.remote_target.clone(),
        };
        let uri = Uri::parse(&uri).ok()?;
        let ip = uri.ip()?;
        let secure = uri.scheme.eq_ignore_ascii_case("sips");
        let default_port = if secure { 5061 } else { 5060 };
        let transport = if secure {
            Some("TLS".to_string())
        } else {
            uri.param("transport")
                .and_then(|p| p.value.clone())
                .map(|t| t.to_ascii_uppercase())
        };
        Some((
            SocketAddr::new(ip, uri.port.unwrap_or(default_port)),
            transport,
        ))
    }
}

/// A `sips:` URI (in any case), alone or in angle brackets.
fn is_sips(uri: &str) -> bool {
    let uri = uri.trim().trim_start_matches('<');
    uri.get(..5)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sips:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> Message {
        let text = format!(
            "INVITE sip:10000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n\
             From: \"A\" <sip:a@127.0.0.1>;tag=abc\r\nTo: <sip:10000@127.0.0.1>\r\nCall-ID: cid\r\n\
             CSeq: 7 INVITE\r\nContact: <sip:a@127.0.0.1:5061>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn dialog_ids_come_from_call_id_and_tags() {
        let dialog = Dialog::from_invite(&invite(""), "xyz").unwrap();
        assert_eq!(dialog.id.call_id, "cid");
        assert_eq!(dialog.id.remote_tag, "abc");
        assert_eq!(dialog.local_uri, "<sip:10000@127.0.0.1>;tag=xyz");
        assert_eq!(dialog.remote_target, "sip:a@127.0.0.1:5061");
    }

    #[test]
    fn uac_dialog_from_our_invite_and_the_2xx() {
        let invite = Message::parse(
            b"INVITE sip:agents@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
              From: <sip:138@127.0.0.1>;tag=ours\r\nTo: <sip:agents@127.0.0.1:5070>\r\nCall-ID: out\r\n\
              CSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let ok = Message::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
              From: <sip:138@127.0.0.1>;tag=ours\r\nTo: <sip:agents@127.0.0.1:5070>;tag=theirs\r\n\
              Call-ID: out\r\nCSeq: 2 INVITE\r\nContact: <sip:a7@127.0.0.1:5071>\r\n\
              Record-Route: <sip:127.0.0.8;lr>, <sip:127.0.0.9;lr>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut dialog = Dialog::from_uac(&invite, &ok).unwrap();
        assert_eq!(dialog.id.local_tag, "ours");
        assert_eq!(dialog.id.remote_tag, "theirs");
        assert_eq!(dialog.remote_target, "sip:a7@127.0.0.1:5071");
        let ack = dialog.ack(2);
        assert_eq!(ack.header("CSeq"), Some("2 ACK"));
        assert_eq!(
            ack.header_lines("Route").collect::<Vec<_>>(),
            vec!["<sip:127.0.0.9;lr>", "<sip:127.0.0.8;lr>"]
        );
        let bye = dialog.new_request(Method::Bye);
        assert_eq!(bye.header("CSeq"), Some("3 BYE"));
        assert_eq!(
            bye.header("To"),
            Some("<sip:agents@127.0.0.1:5070>;tag=theirs")
        );
        assert_eq!(dialog.accept_remote_seq(1), Ok(()));
    }

    #[test]
    fn remote_cseq_must_increase() {
        let mut dialog = Dialog::from_invite(&invite(""), "xyz").unwrap();
        assert_eq!(dialog.accept_remote_seq(7), Err(SequenceError::OutOfOrder));
        assert_eq!(dialog.accept_remote_seq(8), Ok(()));
        assert_eq!(dialog.accept_remote_seq(8), Err(SequenceError::OutOfOrder));
    }

    #[test]
    fn bye_follows_the_loose_route_set() {
        let mut dialog = Dialog::from_invite(
            &invite("Record-Route: <sip:p1.example.com;lr>, <sip:127.0.0.9:5070;lr>\r\n"),
            "xyz",
        )
        .unwrap();
        let bye = dialog.new_request(Method::Bye);
        assert_eq!(bye.request_uri(), Some("sip:a@127.0.0.1:5061"));
        assert_eq!(
            bye.header_lines("Route").collect::<Vec<_>>(),
            vec!["<sip:p1.example.com;lr>", "<sip:127.0.0.9:5070;lr>"]
        );
        assert_eq!(bye.header("To"), Some("\"A\" <sip:a@127.0.0.1>;tag=abc"));
        assert!(bye.header("CSeq").unwrap().ends_with(" BYE"));
        assert_eq!(dialog.next_hop(), None, "first route is a host name");
    }

    #[test]
    fn a_sips_request_uri_or_route_makes_the_dialog_secure() {
        assert!(!Dialog::from_invite(&invite(""), "xyz").unwrap().secure);
        let text = String::from_utf8(invite("").to_bytes().to_vec())
            .unwrap()
            .replacen("INVITE sip:", "INVITE sips:", 1);
        let sips_uri = Message::parse(text.as_bytes()).unwrap();
        assert!(Dialog::from_invite(&sips_uri, "xyz").unwrap().secure);
        let sips_route = invite("Record-Route: <sips:127.0.0.9:5071;lr>\r\n");
        let dialog = Dialog::from_invite(&sips_route, "xyz").unwrap();
        assert!(dialog.secure);
        assert_eq!(
            dialog.next_hop(),
            Some(("127.0.0.9:5071".parse().unwrap(), Some("TLS".to_string())))
        );
        let sips_contact = String::from_utf8(invite("").to_bytes().to_vec())
            .unwrap()
            .replace(
                "Contact: <sip:a@127.0.0.1:5061>",
                "Contact: <SIPS:a@127.0.0.1>",
            );
        let dialog =
            Dialog::from_invite(&Message::parse(sips_contact.as_bytes()).unwrap(), "x").unwrap();
        assert!(dialog.secure);
        assert_eq!(
            dialog.next_hop(),
            Some(("127.0.0.1:5061".parse().unwrap(), Some("TLS".to_string())))
        );
    }

    #[test]
    fn strict_route_puts_the_first_route_in_the_request_uri() {
        let mut dialog =
            Dialog::from_invite(&invite("Record-Route: <sip:127.0.0.9:5070>\r\n"), "xyz").unwrap();
        let bye = dialog.new_request(Method::Bye);
        assert_eq!(bye.request_uri(), Some("sip:127.0.0.9:5070"));
        assert_eq!(bye.header("Route"), Some("<sip:a@127.0.0.1:5061>"));
        assert_eq!(
            dialog.next_hop().unwrap().0,
            "127.0.0.9:5070".parse().unwrap()
        );
    }
}
