//! Name resolution for calls we place: the one part of placing a call
//! that waits on the network before the sans-IO endpoint takes over.

use std::net::SocketAddr;

/// The addresses of a target's host (a bridged transfer's, an outbound
/// trunk's): itself when it is an IP literal, else what the system
/// resolver gives for it (A and AAAA records; SRV and NAPTR are not looked
/// up, so the port is the URI's or 5060, 5061 over TLS). Empty when the
/// name does not resolve: the call then fails.
pub async fn target_addresses(uri: &str) -> Vec<SocketAddr> {
    let Ok(target) = crate::sip::headers::Uri::parse(crate::sip::uac::request_uri(uri)) else {
        return Vec::new();
    };
    let port = target
        .port
        .unwrap_or_else(|| crate::sip::uac::default_port(&target));
    if let Some(ip) = target.ip() {
        return vec![SocketAddr::new(ip, port)];
    }
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    match tokio::net::lookup_host(format!("{host}:{port}")).await {
        Ok(addresses) => addresses.collect(),
        Err(error) => {
            tracing::warn!(host = %target.host, %error, "cannot resolve a call target");
            Vec::new()
        }
    }
}
