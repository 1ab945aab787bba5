//! The staff REST API under `/api/v1`: tickets (list with filters, detail
//! with the whole history, create, transition, assign, note), call records
//! and the calls now in the IVR, transfer contexts for agent desktops, the
//! customer file, and the centre's monitoring indicators (`reports`); JSON
//! in and out,
//! Bearer tokens with roles (`auth`), one error shape (`error`) and an
//! OpenAPI document (`openapi`, served without a token).
//!
//! It owns the routes, the request and response types and the role rules.
//! The handlers are thin: they check the role, turn the request into a
//! store call and the result into JSON. The store does the work and holds
//! every rule about tickets; this module must not query the database
//! itself nor decide anything about a ticket's lifecycle.

mod auth;
mod calls;
mod codes;
mod customers;
mod error;
mod log_level;
mod openapi;
mod outbound;
mod recordings;
mod reports;
mod tickets;
mod transfers;

pub use auth::{hash_token, issue_token, may_assign, IssuedToken, TOKEN_PREFIX};
pub use error::{ApiError, ErrorBody};
pub use recordings::serve_audio;

use crate::instances::Cluster;
use crate::recordings::Recordings;
use crate::tickets::store::Store;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

/// What every handler can reach.
#[derive(Clone)]
struct ApiState {
    store: Store,
    cluster: Cluster,
    recordings: Recordings,
}

/// The staff API's routes, to be merged into the gateway's router.
pub fn router(store: Store, cluster: Cluster, recordings: Recordings) -> Router {
    let api = Router::new()
        .route("/tickets", get(tickets::list).post(tickets::create))
        .route("/tickets/{number}", get(tickets::detail))
        .route(
            "/tickets/{number}/transitions",
            axum::routing::post(tickets::transition),
        )
        .route(
            "/tickets/{number}/assign",
            axum::routing::post(tickets::assign),
        )
        .route(
            "/tickets/{number}/notes",
            axum::routing::post(tickets::note),
        )
        .route("/tickets/{number}/recordings", get(recordings::list))
        .route("/recordings/{token}", get(recordings::audio))
        .route("/calls", get(calls::list))
        .route("/calls/live", get(calls::live))
        .route("/instances", get(calls::instances))
        .route(
            "/outbound-calls",
            get(outbound::list).post(outbound::create),
        )
        .route("/outbound-calls/{id}", get(outbound::show))
        .route("/transfer-contexts/{token}", get(transfers::show))
        .route("/customers", get(customers::list).post(customers::create))
        .route(
            "/customers/{id}",
            get(customers::show)
                .put(customers::update)
                .delete(customers::delete),
        )
        .route("/reports/indicators", get(reports::indicators))
        .route(
            "/admin/log-level",
            get(log_level::show).put(log_level::change),
        )
        .route("/openapi.json", get(openapi::serve))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .with_state(ApiState {
            store,
            cluster,
            recordings,
        })
        .layer(middleware::from_fn(in_span));
    Router::new().nest("/api/v1", api)
}

/// Runs each request in its own `api` span (with an id, the method, the
/// path and, once authenticated, the token's name) and logs its outcome.
async fn in_span(request: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let span = tracing::info_span!(
        "api",
        id = NEXT_ID.fetch_add(1, Ordering::Relaxed),
        method = %request.method(),
        path = %request.uri().path(),
        staff = tracing::field::Empty,
    );
    async move {
        let response = next.run(request).await;
        tracing::info!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// A JSON body whose problems are answered in the API's error shape:
/// unreadable JSON 400 `invalid_json`, a body of the wrong form 422
/// `invalid_field` (naming the field when serde does), no JSON content
/// type 415 `unsupported_media_type`.
struct ApiJson<T>(T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonDataError(e)) => {
                let text = e.body_text();
                Err(ApiError::invalid(field_named_in(&text), text))
            }
            Err(JsonRejection::MissingJsonContentType(e)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                e.body_text(),
            )),
            Err(other) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                other.body_text(),
            )),
        }
    }
}

/// Query parameters whose problems are answered 422 `invalid_field`.
struct ApiQuery<T>(T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let text = e.body_text();
                Err(ApiError::invalid(field_named_in(&text), text))
            }
            Err(other) => Err(ApiError::invalid("query", other.body_text())),
        }
    }
}

/// The field a deserialisation message names ("… target type: version:
/// invalid type …", "missing field `action`"); "body" when it names none.
fn field_named_in(message: &str) -> String {
    let detail = ["target type: ", "query string: "]
        .iter()
        .find_map(|prefix| message.split_once(prefix).map(|(_, rest)| rest))
        .unwrap_or(message);
    if let Some((path, _)) = detail.split_once(": ") {
        if !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c))
        {
            return path.to_string();
        }
    }
    detail
        .split_once("field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map_or_else(|| "body".to_string(), |(field, _)| field.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_named_in("Failed to deserialize the JSON body into the target type: missing field `action` at line 1 column 2"),
            "action"
        );
        assert_eq!(
            field_named_in("Failed to deserialize the JSON body into the target type: version: invalid type: string \"x\", expected i64 at line 1 column 15"),
            "version"
        );
        assert_eq!(field_named_in("something else"), "body");
    }
}
