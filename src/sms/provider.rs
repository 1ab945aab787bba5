//! The outbound SMS providers: one HTTP request sends one text, through the
//! Twilio-compatible Messages REST API (form fields, HTTP basic auth) or a
//! generic JSON webhook (signed like the inbound generic scheme). Every
//! request carries the notification's idempotency key (`Idempotency-Key`
//! header; the generic body's `id` too), so a provider that dedupes can
//! take a resend of a message it already has without texting twice.
//!
//! This module owns the HTTP client and the reading of the provider's
//! answer as sent, retry later, or refused for good. It must not touch the
//! store or decide when to retry: that is the outbox worker's job.

use crate::config::SmsOutboxConfig;
use crate::phone::PhoneNumber;
use crate::sms::signature::{generic_signature, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use reqwest::StatusCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// The header carrying the idempotency key on every send.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The most of a provider's error body kept in `last_error`.
const ERROR_SNIPPET: usize = 200;

/// One text to send.
#[derive(Debug, Clone, Copy)]
pub struct OutboundMessage<'a> {
    /// The idempotency key: the same on every attempt of one notification.
    pub key: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    /// The ticket number the text is about, if any.
    pub ticket: Option<&'a str>,
}

/// What the provider answered to a send it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id of the message (Twilio's `sid`), when it gave one.
    pub provider_message_id: Option<String>,
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// Worth another try: a timeout, a connection error, 429, 408 or 5xx.
    #[error("{0}")]
    Transient(String),
    /// The provider refused this message (a 4xx): it will refuse it again.
    #[error("{0}")]
    Permanent(String),
}

/// A provider client could not be built.
#[derive(Debug, Error)]
pub enum ProviderError {
    #[error("cannot build the HTTP client for SMS provider {provider}: {source}")]
    Client {
        provider: String,
        source: reqwest::Error,
    },
}

/// A configured SMS provider.
pub struct Provider {
    client: reqwest::Client,
    kind: ProviderKind,
}

enum ProviderKind {
    Twilio {
        messages_url: String,
        account_sid: String,
        auth_token: String,
        from: String,
        messaging_service_sid: String,
        status_callback_url: String,
    },
    Generic {
        url: String,
        from: String,
        secret: String,
    },
}

impl Provider {
    /// The provider `config` names, or `None` for `provider = "none"` (and
    /// any other name, which validation has already refused).
    pub fn from_config(config: &SmsOutboxConfig) -> Result<Option<Provider>, ProviderError> {
        let kind = match config.provider.as_str() {
            "twilio" => ProviderKind::Twilio {
                messages_url: format!(
                    "{}/2010-04-01/Accounts/{}/Messages.json",
                    config.api_base.trim_end_matches('/'),
                    config.account_sid
                ),
                account_sid: config.account_sid.clone(),
                auth_token: config.auth_token.clone(),
                from: config.from.clone(),
                messaging_service_sid: config.messaging_service_sid.clone(),
                status_callback_url: config.status_callback_url.clone(),
            },
            "generic" => ProviderKind::Generic {
                url: config.url.clone(),
                from: config.from.clone(),
                secret: config.secret.clone(),
            },
            _ => return Ok(None),
        };
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            // A redirected POST would be resent as a GET: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hotline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ProviderError::Client {
                provider: config.provider.clone(),
                source,
            })?;
        Ok(Some(Provider { client, kind }))
    }

    /// `twilio` or `generic`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ProviderKind::Twilio { .. } => "twilio",
            ProviderKind::Generic { .. } => "generic",
        }
    }

    /// Sends one text: one HTTP request, bounded by the request timeout.
    /// The recipient goes in E.164 form (`+8613800138000`), as providers
    /// want it, whatever spelling the outbox holds.
    pub async fn send(&self, message: &OutboundMessage<'_>) -> Result<Sent, SendError> {
        let to = international(message.to);
        let request = match &self.kind {
            ProviderKind::Twilio {
                messages_url,
                account_sid,
                auth_token,
                from,
                messaging_service_sid,
                status_callback_url,
            } => {
                let mut form = vec![("To", to)];
                if messaging_service_sid.is_empty() {
                    form.push(("From", from.clone()));
                } else {
                    form.push(("MessagingServiceSid", messaging_service_sid.clone()));
                }
                form.push(("Body", message.body.to_string()));
                if !status_callback_url.is_empty() {
                    form.push((
                        "StatusCallback",
                        status_callback_for(status_callback_url, message.key),
                    ));
                }
                self.client
                    .post(messages_url)
                    .basic_auth(account_sid, Some(auth_token))
                    .header(IDEMPOTENCY_HEADER, message.key)
                    .form(&form)
            }
            ProviderKind::Generic { url, from, secret } => {
                let body = serde_json::json!({
                    "id": message.key,
                    "to": to,
                    "from": from,
                    "text": message.body,
                    "ticket": message.ticket,
                })
                .to_string();
                let timestamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                let signature = generic_signature(secret.as_bytes(), timestamp, body.as_bytes());
                self.client
                    .post(url)
                    .header(IDEMPOTENCY_HEADER, message.key)
                    .header(TIMESTAMP_HEADER, timestamp.to_string())
                    .header(SIGNATURE_HEADER, signature)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
            }
        };
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        let id_field = match self.kind {
            ProviderKind::Twilio { .. } => "sid",
            ProviderKind::Generic { .. } => "message_id",
        };
        read_answer(status, &body, id_field)
    }
}

/// `phone` in E.164 form when it has one (`crate::phone`), else as it is.
pub fn international(phone: &str) -> String {
    PhoneNumber::parse(phone)
        .ok()
        .and_then(|phone| phone.e164())
        .unwrap_or_else(|| phone.to_string())
}

/// The status callback URL for one message: ours, with its key added so
/// that a report arriving before we recorded the provider's id still finds
/// the notification. Twilio signs the URL as given, query included.
pub fn status_callback_for(status_callback_url: &str, key: &str) -> String {
    let separator = if status_callback_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("key", key)
        .finish();
    format!("{status_callback_url}{separator}{query}")
}

fn transport_error(error: reqwest::Error) -> SendError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // reqwest names the URL in its message; a provider URL may carry
    // credentials, which must not reach the logs or `last_error`.
    let url = error.url().map(|url| crate::redact::url(url.as_str()));
    let error = error.without_url();
    match url {
        Some(url) => SendError::Transient(format!("{what}: {error} ({url})")),
        None => SendError::Transient(format!("{what}: {error}")),
    }
}

/// Reads a provider's answer: 2xx is sent (with the id in `id_field` of a
/// JSON body, if any); 408, 429 and 5xx are worth a retry; any other 4xx
/// refuses the message for good; anything else (1xx, 3xx) is retried.
fn read_answer(status: StatusCode, body: &[u8], id_field: &str) -> Result<Sent, SendError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if status.is_success() {
        let provider_message_id = json
            .as_ref()
            .and_then(|v| v.get(id_field))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        return Ok(Sent {
            provider_message_id,
        });
    }
    let detail = match json {
        // Twilio: {"code": 21211, "message": "Invalid 'To' Phone Number", …}
        Some(v) if v.get("message").is_some() || v.get("error").is_some() => {
            let message = v
                .get("message")
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str())
                .unwrap_or_default();
            match v.get("code") {
                Some(code) => format!("code {code}: {message}"),
                None => message.to_string(),
            }
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let detail: String = detail.trim().chars().take(ERROR_SNIPPET).collect();
    let text = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    let retry = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || !status.is_client_error();
    if retry {
        Err(SendError::Transient(text))
    } else {
        Err(SendError::Permanent(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_go_to_providers_in_e164_form() {
        assert_eq!(international("13800138000"), "+8613800138000");
        assert_eq!(international("+14155550100"), "+14155550100");
        assert_eq!(international("55512345"), "55512345");
    }

    #[test]
    fn a_2xx_is_sent_with_the_id_when_the_body_has_one() {
        let sent = read_answer(
            StatusCode::CREATED,
            br#"{"sid":"SM1","status":"queued"}"#,
            "sid",
        );
        assert_eq!(
            sent,
            Ok(Sent {
                provider_message_id: Some("SM1".into())
            })
        );
        let sent = read_answer(StatusCode::ACCEPTED, b"", "message_id");
        assert_eq!(
            sent,
            Ok(Sent {
                provider_message_id: None
            })
        );
    }

    #[test]
    fn client_errors_are_permanent_except_429_and_408() {
        let refused = read_answer(
            StatusCode::BAD_REQUEST,
            br#"{"code":21211,"message":"Invalid 'To' Phone Number","status":400}"#,
            "sid",
        );
        assert_eq!(
            refused,
            Err(SendError::Permanent(
                "HTTP 400 Bad Request: code 21211: Invalid 'To' Phone Number".into()
            ))
        );
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::MOVED_PERMANENTLY,
        ] {
            assert!(
                matches!(
                    read_answer(status, b"busy", "sid"),
                    Err(SendError::Transient(_))
                ),
                "{status}"
            );
        }
        assert!(matches!(
            read_answer(StatusCode::UNAUTHORIZED, b"", "sid"),
            Err(SendError::Permanent(text)) if text == "HTTP 401 Unauthorized"
        ));
    }

    #[test]
    fn the_status_callback_carries_the_key() {
        assert_eq!(
            status_callback_for("https://gw.example/sms/status", "resolved:5551234560:5"),
            "https://gw.example/sms/status?key=resolved%3A5551234560%3A5"
        );
        assert_eq!(
            status_callback_for("https://gw.example/sms/status?a=1", "k"),
            "https://gw.example/sms/status?a=1&key=k"
        );
    }
}
