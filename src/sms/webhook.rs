//! The inbound SMS webhooks: `POST /sms/twilio` (Twilio-compatible, form
//! or JSON, answered with TwiML) and `POST /sms/generic` (JSON signed with
//! HMAC-SHA256, answered with JSON). Thin: each handler checks the content
//! type and size, reads the body, verifies the signature
//! (`sms::signature`), picks out the fields, and hands the text to
//! `sms::inbound`. Every refusal is a 4xx with its reason in the body and
//! stores nothing; a store failure is a 503 the provider retries. A text
//! over a sender's rate limit is not refused here: it is answered with 200
//! and a reply that says so (or no reply, see `sms::limits`), because a
//! provider shows the customer nothing of a 4xx.

use crate::config::SmsConfig;
use crate::sms::inbound::{InboundError, SmsInbound, Text};
use crate::sms::{segments, signature};
use crate::tickets::store::Store;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use std::sync::Arc;
use tracing::Instrument;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// The SMS webhook routes.
pub fn router(config: &SmsConfig, store: Store) -> Router {
    let state = Arc::new(Webhooks {
        config: config.clone(),
        inbound: SmsInbound::new(store, config),
    });
    Router::new()
        .route("/sms/twilio", post(twilio))
        .route("/sms/generic", post(generic))
        .with_state(state)
}

struct Webhooks {
    config: SmsConfig,
    inbound: SmsInbound,
}

/// A refusal: the status and the reason, sent as plain text.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    reason: String,
}

impl Refusal {
    /// The HTTP status the refusal is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn new(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, reason = %self.reason, "webhook failed");
        } else {
            tracing::info!(status = %self.status, reason = %self.reason, "webhook refused");
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.reason),
        )
            .into_response()
    }
}

impl From<InboundError> for Refusal {
    fn from(error: InboundError) -> Refusal {
        match error {
            InboundError::Invalid(reason) => Refusal::new(StatusCode::BAD_REQUEST, reason),
            InboundError::Store(error) => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the ticket store failed, retry later: {error}"),
            ),
        }
    }
}

impl From<signature::SignatureError> for Refusal {
    fn from(error: signature::SignatureError) -> Refusal {
        let status = if error.is_missing() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        Refusal::new(status, error.to_string())
    }
}

async fn twilio(State(webhooks): State<Arc<Webhooks>>, request: Request) -> Response {
    let span = tracing::info_span!(
        "sms_webhook",
        provider = "twilio",
        message_id = tracing::field::Empty
    );
    async move {
        match handle_twilio(&webhooks, request).await {
            Ok(response) => response,
            Err(refusal) => refusal.into_response(),
        }
    }
    .instrument(span)
    .await
}

async fn handle_twilio(webhooks: &Webhooks, request: Request) -> Result<Response, Refusal> {
    let config = &webhooks.config;
    if config.twilio_auth_token.is_empty() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "the Twilio SMS endpoint is off: sms.twilio_auth_token is not set",
        ));
    }
    let (parts, body) = request.into_parts();
    let kind = media_type(&parts.headers, &[FORM, JSON])?;
    let body = read_body(&parts.headers, body, config.max_body_bytes).await?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), ToString::to_string);
    let url = format!(
        "{}{path_and_query}",
        config.public_url.trim_end_matches('/')
    );
    let header = parts
        .headers
        .get(signature::TWILIO_SIGNATURE_HEADER)
        .map(|value| value.to_str().unwrap_or("\u{FFFD}"));
    let fields: Vec<(String, String)> = if kind == FORM {
        let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        signature::verify_twilio_form(&config.twilio_auth_token, &url, &params, header)?;
        params
    } else {
        signature::verify_twilio_json(&config.twilio_auth_token, &url, &body, header)?;
        json_strings(&body)?
    };
    let text = twilio_text(&fields)?;
    tracing::Span::current().record("message_id", text.message_id.as_str());
    let outcome = webhooks.inbound.receive(text).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        twiml(&outcome.reply),
    )
        .into_response())
}

/// The generic provider's webhook body.
#[derive(Debug, Deserialize)]
struct GenericText {
    id: String,
    from: String,
    to: String,
    text: String,
    /// RFC 3339; checked when present, for the logs.
    received_at: Option<String>,
}

async fn generic(State(webhooks): State<Arc<Webhooks>>, request: Request) -> Response {
    let span = tracing::info_span!(
        "sms_webhook",
        provider = "generic",
        message_id = tracing::field::Empty
    );
    async move {
        match handle_generic(&webhooks, request).await {
            Ok(response) => response,
            Err(refusal) => refusal.into_response(),
        }
    }
    .instrument(span)
    .await
}

async fn handle_generic(webhooks: &Webhooks, request: Request) -> Result<Response, Refusal> {
    let config = &webhooks.config;
    if config.generic_secret.is_empty() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "the generic SMS endpoint is off: sms.generic_secret is not set",
        ));
    }
    let (parts, body) = request.into_parts();
    media_type(&parts.headers, &[JSON])?;
    let body = read_body(&parts.headers, body, config.max_body_bytes).await?;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|value| value.to_str().unwrap_or("\u{FFFD}"))
    };
    signature::verify_generic(
        config.generic_secret.as_bytes(),
        header(signature::TIMESTAMP_HEADER),
        header(signature::SIGNATURE_HEADER),
        &body,
        chrono::Utc::now().timestamp(),
        i64::try_from(config.replay_window_secs).unwrap_or(i64::MAX),
    )?;
    let text = generic_text(&body)?;
    tracing::Span::current().record("message_id", text.message_id.as_str());
    let reply_from = if config.sender_number.is_empty() {
        text.to.clone()
    } else {
        config.sender_number.clone()
    };
    let (id, sender) = (text.message_id.clone(), text.from.clone());
    let outcome = webhooks.inbound.receive(text).await?;
    // An empty reply is one withheld (a sender told once already that it
    // is over its limit): nothing to send.
    let reply = if outcome.reply.is_empty() {
        serde_json::json!({ "id": id, "reply": null })
    } else {
        serde_json::json!({
            "id": id,
            "reply": {
                "from": reply_from,
                "to": sender,
                "text": outcome.reply,
                "segments": segments::segments(&outcome.reply),
            },
        })
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, JSON)],
        reply.to_string(),
    )
        .into_response())
}

/// The request's media type if it is one of `accepted`; 415 otherwise.
fn media_type(headers: &HeaderMap, accepted: &[&'static str]) -> Result<&'static str, Refusal> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    accepted
        .iter()
        .find(|kind| essence.eq_ignore_ascii_case(kind))
        .copied()
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the content type is {:?}; expected {}",
                    given,
                    accepted.join(" or ")
                ),
            )
        })
}

/// The whole body, at most `limit` bytes (413 beyond).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    // Past the limit, or a body broken off: either way nothing to read.
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// The text of a Twilio webhook, from its fields (the form's parameters or
/// the JSON body's string fields), the signature already checked. Pure, and
/// public for the fuzz targets.
#[doc(hidden)]
pub fn twilio_text(fields: &[(String, String)]) -> Result<Text, Refusal> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("the field {name} is missing"),
                )
            })
    };
    Ok(Text {
        provider: "twilio",
        message_id: non_empty("MessageSid", field("MessageSid")?)?,
        from: non_empty("From", field("From")?)?,
        to: field("To")?,
        body: field("Body")?,
    })
}

/// The text of a generic provider's webhook body, the signature already
/// checked. Pure, and public for the fuzz targets.
#[doc(hidden)]
pub fn generic_text(body: &[u8]) -> Result<Text, Refusal> {
    let message: GenericText = serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not the expected JSON object: {e}"),
        )
    })?;
    if let Some(at) = &message.received_at {
        chrono::DateTime::parse_from_rfc3339(at).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("received_at {at:?} is not an RFC 3339 time: {e}"),
            )
        })?;
    }
    Ok(Text {
        provider: "generic",
        message_id: non_empty("id", message.id)?,
        from: non_empty("from", message.from)?,
        to: message.to,
        body: message.text,
    })
}

/// The string fields of a JSON object (Twilio's JSON webhooks). Public for
/// the fuzz targets.
#[doc(hidden)]
pub fn json_strings(body: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not a JSON object: {e}"),
            )
        })?;
    Ok(object
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::String(text) => Some((key, text)),
            _ => None,
        })
        .collect())
}

fn non_empty(name: &str, value: String) -> Result<String, Refusal> {
    if value.trim().is_empty() {
        Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the field {name} is empty"),
        ))
    } else {
        Ok(value)
    }
}

/// A TwiML response that sends `reply` back to the sender; an empty one
/// (a reply withheld) sends nothing.
fn twiml(reply: &str) -> String {
    if reply.is_empty() {
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_string();
    }
    let mut escaped = String::with_capacity(reply.len());
    for c in reply.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            _ => escaped.push(c),
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{escaped}</Message></Response>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn twiml_escapes_markup() {
        assert_eq!(
            twiml("a <b> & 'c'"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>\
             a &lt;b&gt; &amp; &apos;c&apos;</Message></Response>"
        );
    }

    #[test]
    fn an_empty_reply_is_a_response_without_a_message() {
        assert_eq!(
            twiml(""),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"
        );
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        );
        assert_eq!(media_type(&headers, &[FORM, JSON]).ok(), Some(FORM));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let refusal = media_type(&headers, &[FORM, JSON]).err();
        assert_eq!(
            refusal.map(|r| r.status),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }
}
