//! Route headers on requests we receive (pure). Behind a loose-routing
//! proxy (Kamailio), a request may still carry a top Route that names us:
//! RFC 3261 §16.4 has the element a Route names take it off before
//! processing, so what the endpoint and the application see is the route
//! beyond us. A top Route naming someone else (the proxy) is left alone:
//! we are a user agent, not a proxy, and serve the request as it came, by
//! its Request-URI's user whatever host it names.

use super::headers::{NameAddr, Uri};
use super::message::Message;
use std::net::SocketAddr;

/// Removes the first Route value when it names `local` (our address as we
/// advertise it: IP literal and port, 5060 or 5061 for `sips:` when
/// absent). Returns whether one was removed.
pub fn strip_own_route(request: &mut Message, local: SocketAddr) -> bool {
    let names_us = request
        .header_values("Route")
        .next()
        .is_some_and(|top| names(top, local));
    if !names_us {
        return false;
    }
    let rest: Vec<String> = request
        .header_values("Route")
        .skip(1)
        .map(str::to_string)
        .collect();
    request.remove_header("Route");
    for route in rest {
        request.push_header("Route", route);
    }
    true
}

fn names(route: &str, local: SocketAddr) -> bool {
    let Some(uri) = NameAddr::parse(route)
        .ok()
        .and_then(|n| Uri::parse(&n.uri).ok())
    else {
        return false;
    };
    let default_port = if uri.scheme == "sips" { 5061 } else { 5060 };
    uri.ip() == Some(local.ip()) && uri.port.unwrap_or(default_port) == local.port()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(routes: &str) -> Message {
        let text = format!(
            "INVITE sip:10000@127.0.0.9:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.1>;tag=abc\r\nTo: <sip:10000@127.0.0.9:5070>\r\nCall-ID: cid\r\n\
             CSeq: 1 INVITE\r\n{routes}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).unwrap()
    }

    fn us() -> SocketAddr {
        "127.0.0.2:5060".parse().unwrap()
    }

    fn routes(request: &Message) -> Vec<&str> {
        request.header_values("Route").collect()
    }

    #[test]
    fn a_top_route_naming_us_is_removed_and_the_rest_kept_in_order() {
        let mut invite = request(
            "Route: <sip:127.0.0.2;lr>, <sip:127.0.0.8;lr>\r\nRoute: <sip:127.0.0.7;lr>\r\n",
        );
        assert!(strip_own_route(&mut invite, us()));
        assert_eq!(
            routes(&invite),
            vec!["<sip:127.0.0.8;lr>", "<sip:127.0.0.7;lr>"]
        );
        let mut alone = request("Route: <sip:127.0.0.2:5060;lr>\r\n");
        assert!(strip_own_route(&mut alone, us()));
        assert!(!alone.has_header("Route"));
    }

    #[test]
    fn a_top_route_naming_the_proxy_or_another_port_stays() {
        for route in [
            "<sip:127.0.0.9:5070;lr>",
            "<sip:127.0.0.2:5080;lr>",
            "<sips:127.0.0.2;lr>",
            "<sip:proxy.example.com;lr>",
        ] {
            let mut invite = request(&format!("Route: {route}\r\n"));
            assert!(!strip_own_route(&mut invite, us()), "{route}");
            assert_eq!(routes(&invite), vec![route]);
        }
        let mut none = request("");
        assert!(!strip_own_route(&mut none, us()));
    }
}
