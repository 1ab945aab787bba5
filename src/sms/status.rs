//! The delivery-status callback routes: the SMS provider tells us what
//! became of a text we sent, and the notification's row records it.
//!
//! - `POST /sms/status`: Twilio's form (`MessageSid`, `MessageStatus`,
//!   optional `ErrorCode`), signed with `X-Twilio-Signature` over the
//!   configured `status_callback_url` plus the query string the request
//!   came with (we add `key=<dedup key>` to every callback URL).
//! - `POST /sms/status/generic`: JSON `{"id" or "message_id", "status",
//!   "error"?}` signed like the generic provider's webhooks
//!   (`X-Hotline-Timestamp`, `X-Hotline-Signature`).
//!
//! Statuses: `queued`, `accepted`, `scheduled`, `sending`, `sent` (the
//! provider has it), `delivered` (and `read`), `undelivered`, `failed` and
//! `canceled` (it will not arrive). Answers: 200 recorded, 400 malformed,
//! 401 unsigned, 403 badly signed (or the route's secret is not
//! configured), 404 no such message.
//!
//! This module owns only the HTTP edge: it checks, parses and hands the
//! report to the store; it never sends anything.

use crate::config::SmsOutboxConfig;
use crate::sms::signature::{
    verify_generic, verify_twilio_form, SignatureError, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
};
use crate::tickets::store::{DeliveryReference, DeliveryReport, Store};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// How far a generic callback's timestamp may be from our clock.
const GENERIC_WINDOW_SECS: i64 = 300;

struct StatusRoutes {
    store: Store,
    auth_token: String,
    status_callback_url: String,
    secret: String,
}

/// The delivery-status routes, ready to merge into the gateway's router.
pub fn router(store: Store, config: SmsOutboxConfig) -> Router {
    let routes = Arc::new(StatusRoutes {
        store,
        auth_token: config.auth_token,
        status_callback_url: config.status_callback_url,
        secret: config.secret,
    });
    Router::new()
        .route("/sms/status", post(twilio_status))
        .route("/sms/status/generic", post(generic_status))
        .with_state(routes)
}

type Reply = (StatusCode, String);

async fn twilio_status(
    State(routes): State<Arc<StatusRoutes>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let span = tracing::info_span!("sms_status", provider = "twilio");
    twilio_report(&routes, &uri, &headers, &body)
        .instrument(span)
        .await
}

async fn twilio_report(
    routes: &StatusRoutes,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if routes.auth_token.is_empty() || routes.status_callback_url.is_empty() {
        tracing::warn!("a Twilio status callback came, but sms_outbox.auth_token or status_callback_url is not set");
        return refuse(StatusCode::FORBIDDEN, "status callbacks are not configured");
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    // The URL Twilio signed: ours as configured, with the query it came with.
    let base = routes
        .status_callback_url
        .split('?')
        .next()
        .unwrap_or_default();
    let url = match uri.query() {
        Some(query) => format!("{base}?{query}"),
        None => base.to_string(),
    };
    let signature = headers
        .get(TWILIO_SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = verify_twilio_form(&routes.auth_token, &url, &params, signature) {
        return signature_refused(&e);
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
    };
    let (Some(sid), Some(status)) = (param("MessageSid"), param("MessageStatus")) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "MessageSid and MessageStatus are required",
        );
    };
    let key = uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "key")
            .map(|(_, value)| value.into_owned())
    });
    let reference = match key {
        Some(key) => DeliveryReference::DedupKey(key),
        None => DeliveryReference::ProviderMessageId(sid.clone()),
    };
    let Some(report) = report_of(&status, param("ErrorCode").as_deref()) else {
        return refuse(StatusCode::BAD_REQUEST, "unknown MessageStatus");
    };
    record(&routes.store, reference, Some(sid), report).await
}

#[derive(serde::Deserialize)]
struct GenericStatus {
    id: Option<String>,
    message_id: Option<String>,
    status: String,
    error: Option<String>,
}

async fn generic_status(
    State(routes): State<Arc<StatusRoutes>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let span = tracing::info_span!("sms_status", provider = "generic");
    generic_report(&routes, &headers, &body)
        .instrument(span)
        .await
}

async fn generic_report(routes: &StatusRoutes, headers: &HeaderMap, body: &[u8]) -> Reply {
    if routes.secret.is_empty() {
        tracing::warn!("a generic status callback came, but sms_outbox.secret is not set");
        return refuse(StatusCode::FORBIDDEN, "status callbacks are not configured");
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if let Err(e) = verify_generic(
        routes.secret.as_bytes(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        body,
        now,
        GENERIC_WINDOW_SECS,
    ) {
        return signature_refused(&e);
    }
    let Ok(update) = serde_json::from_slice::<GenericStatus>(body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"id\" or \"message_id\", \"status\"}",
        );
    };
    let message_id = update.message_id.filter(|id| !id.is_empty());
    let reference = match (update.id.filter(|id| !id.is_empty()), &message_id) {
        (Some(key), _) => DeliveryReference::DedupKey(key),
        (None, Some(id)) => DeliveryReference::ProviderMessageId(id.clone()),
        (None, None) => return refuse(StatusCode::BAD_REQUEST, "id or message_id is required"),
    };
    let Some(report) = report_of(&update.status, update.error.as_deref()) else {
        return refuse(StatusCode::BAD_REQUEST, "unknown status");
    };
    record(&routes.store, reference, message_id, report).await
}

/// What a provider's status word means for the notification.
fn report_of(status: &str, error: Option<&str>) -> Option<DeliveryReport> {
    Some(match status {
        "queued" | "accepted" | "scheduled" | "sending" | "sent" => DeliveryReport::Accepted,
        "delivered" | "read" => DeliveryReport::Delivered,
        "undelivered" | "failed" | "canceled" => DeliveryReport::Undelivered {
            reason: match error.filter(|e| !e.is_empty()) {
                Some(error) => format!("{status} (error {error})"),
                None => status.to_string(),
            },
        },
        _ => return None,
    })
}

async fn record(
    store: &Store,
    reference: DeliveryReference,
    provider_message_id: Option<String>,
    report: DeliveryReport,
) -> Reply {
    tracing::info!(?reference, ?report, "delivery status reported");
    match store
        .mark_delivery_status(reference, provider_message_id, report)
        .await
    {
        Ok(Some(status)) => (StatusCode::OK, format!("{status}\n")),
        Ok(None) => refuse(StatusCode::NOT_FOUND, "no such message"),
        Err(e) => {
            tracing::error!(error = %e, "recording a delivery status failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "try again later")
        }
    }
}

fn signature_refused(error: &SignatureError) -> Reply {
    tracing::warn!(%error, "status callback refused");
    let status = if error.is_missing() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    };
    (status, format!("{error}\n"))
}

fn refuse(status: StatusCode, reason: &str) -> Reply {
    (status, format!("{reason}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_statuses_map_to_reports() {
        assert_eq!(report_of("queued", None), Some(DeliveryReport::Accepted));
        assert_eq!(
            report_of("delivered", None),
            Some(DeliveryReport::Delivered)
        );
        assert_eq!(
            report_of("undelivered", Some("30003")),
            Some(DeliveryReport::Undelivered {
                reason: "undelivered (error 30003)".into()
            })
        );
        assert_eq!(report_of("lost", None), None);
    }
}
