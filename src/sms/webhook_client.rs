//! `hotline sms test`: one text posted to a running gateway's own SMS
//! webhook exactly as a provider would post it, signed with the configured
//! secret, so an operator can try the SMS side without a provider. The
//! generic JSON webhook is used when `sms.generic_secret` is set, else the
//! Twilio one (signed over `sms.public_url`, posted to the gateway's own
//! address as a reverse proxy would). Builds and sends one request; the
//! gateway does all the work, and its reply is printed.

use crate::config::Config;
use crate::sms::signature;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// Which webhook the test text goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    Generic,
    Twilio,
}

/// What `hotline sms test` sends.
#[derive(Debug, Clone, clap::Args)]
pub struct TestText {
    /// The text, as a customer would type it (e.g. "报障 专线中断", "STATUS").
    pub text: String,
    /// The sender's number.
    #[arg(long, default_value = "13800138000")]
    pub from: String,
    /// The number texted (ours).
    #[arg(long, default_value = "10000")]
    pub to: String,
    /// The provider's message id; send the same one again to see a retry
    /// answered from the store (default: a new one).
    #[arg(long)]
    pub id: Option<String>,
    /// Which webhook (default: generic if sms.generic_secret is set, else
    /// twilio).
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,
    /// The gateway's HTTP base URL (default: http:// and http.listen).
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Debug, Error)]
pub enum TestTextError {
    #[error(
        "the SMS webhooks are off: set sms.generic_secret (or sms.twilio_auth_token and \
         sms.public_url) for the gateway and for this command, e.g. \
         export HOTLINE_SMS_GENERIC_SECRET=try-it before both"
    )]
    Off,
    #[error("sms.{0} is not set, so the {1} webhook is off")]
    NotConfigured(&'static str, &'static str),
    #[error("cannot reach the gateway at {url} (is `hotline serve` running?): {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the gateway answered {status} at {url}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

/// Sends `text` to the gateway `config` describes and returns what to print:
/// where it went and the reply (or that none is sent).
pub async fn send(config: &Config, text: TestText) -> Result<String, TestTextError> {
    let sms = &config.sms;
    let provider = match text.provider {
        Some(provider) => provider,
        None if !sms.generic_secret.is_empty() => Provider::Generic,
        None if !sms.twilio_auth_token.is_empty() => Provider::Twilio,
        None => return Err(TestTextError::Off),
    };
    let base = text
        .url
        .clone()
        .unwrap_or_else(|| local_base_url(config.http.listen));
    let base = base.trim_end_matches('/');
    let id = text.id.clone().unwrap_or_else(fresh_id);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TestTextError::Unreachable {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
    let (url, request) = match provider {
        Provider::Generic => {
            if sms.generic_secret.is_empty() {
                return Err(TestTextError::NotConfigured("generic_secret", "generic"));
            }
            let url = format!("{base}/sms/generic");
            let body = serde_json::json!({
                "id": id,
                "from": text.from,
                "to": text.to,
                "text": text.text,
                "received_at": chrono::Utc::now().to_rfc3339(),
            })
            .to_string();
            let timestamp = chrono::Utc::now().timestamp();
            let signed = signature::generic_signature(
                sms.generic_secret.as_bytes(),
                timestamp,
                body.as_bytes(),
            );
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
                .header(signature::SIGNATURE_HEADER, signed)
                .body(body);
            (url, request)
        }
        Provider::Twilio => {
            if sms.twilio_auth_token.is_empty() {
                return Err(TestTextError::NotConfigured("twilio_auth_token", "Twilio"));
            }
            let url = format!("{base}/sms/twilio");
            let params: Vec<(String, String)> = [
                ("MessageSid", id.as_str()),
                ("From", text.from.as_str()),
                ("To", text.to.as_str()),
                ("Body", text.text.as_str()),
            ]
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
            // Twilio signs the public URL; the gateway rebuilds it from
            // sms.public_url whatever address it is reached at.
            let public = format!("{}/sms/twilio", sms.public_url.trim_end_matches('/'));
            let signed = signature::twilio_signature(&sms.twilio_auth_token, &public, &params);
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish();
            let request = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header(signature::TWILIO_SIGNATURE_HEADER, signed)
                .body(body);
            (url, request)
        }
    };
    let response = request
        .send()
        .await
        .map_err(|e| TestTextError::Unreachable {
            url: url.clone(),
            reason: e.without_url().to_string(),
        })?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| TestTextError::Unreachable {
            url: url.clone(),
            reason: e.without_url().to_string(),
        })?;
    if status != 200 {
        return Err(TestTextError::Refused {
            url,
            status,
            body: body.trim().to_string(),
        });
    }
    let reply = match provider {
        Provider::Generic => generic_reply(&body),
        Provider::Twilio => twiml_reply(&body),
    };
    Ok(match reply {
        Some(reply) => format!("text {id} from {} → {url}\nreply: {reply}\n", text.from),
        None => format!(
            "text {id} from {} → {url}\nno reply is sent (the sender was told already that it is over its limit)\n",
            text.from
        ),
    })
}

/// `http://` and the listening address, a wildcard one as loopback.
fn local_base_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

fn fresh_id() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

/// The generic webhook's reply text; `None` for `"reply": null`.
fn generic_reply(body: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["reply"]["text"].as_str().map(str::to_string)
}

/// The text of a TwiML `<Message>`; `None` for a response without one.
fn twiml_reply(body: &str) -> Option<String> {
    let start = body.find("<Message>")? + "<Message>".len();
    let end = body[start..].find("</Message>")? + start;
    Some(
        body[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        let base = |addr: &str| local_base_url(addr.parse().unwrap());
        assert_eq!(base("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(base("[::]:8080"), "http://[::1]:8080");
        assert_eq!(base("10.0.0.5:80"), "http://10.0.0.5:80");
    }

    #[test]
    fn replies_are_read_from_both_answers() {
        assert_eq!(
            twiml_reply("<?xml version=\"1.0\"?><Response><Message>a &amp; b</Message></Response>"),
            Some("a & b".to_string())
        );
        assert_eq!(twiml_reply("<Response></Response>"), None);
        assert_eq!(
            generic_reply(r#"{"id":"x","reply":{"text":"好"}}"#),
            Some("好".to_string())
        );
        assert_eq!(generic_reply(r#"{"id":"x","reply":null}"#), None);
    }
}
