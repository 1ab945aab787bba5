//! Recording routes (issue 18): a ticket's recordings (what callers said
//! at a `record` node), and the audio itself as `audio/wav` with HTTP
//! range requests, for every staff role. Each play (a request for the
//! audio from its first byte) goes on the ticket's history as
//! `recording_played` with who played it. Purged audio answers 410.

use super::auth::Staff;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::recordings::Recordings;
use crate::tickets::model::Actor;
use crate::tickets::store::{StoreError, StoredRecording};
use axum::extract::{Path, Request, State};
use axum::http::header::RANGE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa::ToSchema;

/// A recording, without its audio.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RecordingView {
    id: i64,
    /// `description`: the caller's words at a `record` node.
    kind: String,
    /// Where the audio is: `/api/v1/recordings/{token}` (the token is
    /// random, so the address cannot be guessed).
    audio: String,
    duration_ms: u64,
    bytes: u64,
    channels: u16,
    /// The SIP Call-ID of the call it was made in.
    sip_call_id: String,
    created_at: DateTime<Utc>,
    /// When retention deleted the audio; the audio answers 410 since.
    purged_at: Option<DateTime<Utc>>,
}

impl From<StoredRecording> for RecordingView {
    fn from(r: StoredRecording) -> RecordingView {
        RecordingView {
            id: r.id,
            kind: r.kind.code().to_string(),
            audio: format!("/api/v1/recordings/{}", r.token),
            duration_ms: r.duration_ms,
            bytes: r.bytes,
            channels: r.channels,
            sip_call_id: r.sip_call_id,
            created_at: r.created_at,
            purged_at: r.purged_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/tickets/{number}/recordings",
    tag = "recordings",
    params(("number" = String, Path, description = "The ten-digit ticket number", pattern = "^[0-9]{10}$")),
    responses(
        (status = 200, description = "The ticket's recordings, oldest first", body = [RecordingView]),
        (status = 400, description = "Not a ticket number, or a mistyped one (check digit)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(state): State<ApiState>,
    _staff: Staff,
    Path(number): Path<String>,
) -> Result<Json<Vec<RecordingView>>, ApiError> {
    let ticket = state
        .store
        .ticket(&number)
        .await?
        .ok_or(StoreError::TicketNotFound(number))?;
    let recordings = state.store.ticket_recordings(ticket.id).await?;
    Ok(Json(recordings.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get,
    path = "/api/v1/recordings/{token}",
    tag = "recordings",
    params(
        ("token" = String, Path, description = "The recording's token (from its `audio` address)", pattern = "^[0-9a-f]{32}$"),
        ("Range" = Option<String>, Header, description = "A byte range, e.g. bytes=0-1023"),
    ),
    responses(
        (status = 200, description = "The whole WAV file", content_type = "audio/wav"),
        (status = 206, description = "The requested byte range", content_type = "audio/wav"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "`recording_not_found`", body = ErrorBody),
        (status = 410, description = "`recording_purged`: retention deleted the audio", body = ErrorBody),
        (status = 416, description = "The range is outside the file"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn audio(
    State(state): State<ApiState>,
    staff: Staff,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    serve_audio(&state.recordings, &token, staff.actor(), request).await
}

/// Serves recording `token` to `actor` (API or console): 404 unknown, 410
/// purged, else the file with range support; a play from the first byte
/// goes on the ticket's history.
pub async fn serve_audio(
    recordings: &Recordings,
    token: &str,
    actor: Actor,
    request: Request,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "recording_not_found",
            "no recording has this token",
        )
    };
    let path = recordings.path_of(token).ok_or_else(not_found)?;
    let recording = recordings
        .store()
        .recording(token)
        .await?
        .ok_or_else(not_found)?;
    if recording.purged_at.is_some() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "recording_purged",
            "the recording's audio was deleted after its retention period",
        ));
    }
    if starts_a_play(request.headers()) {
        recordings
            .store()
            .recording_played(&recording, actor)
            .await?;
    }
    let response = ServeFile::new_with_mime(&path, &mime_wav())
        .oneshot(request)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "recording_unreadable",
                e.to_string(),
            )
        })?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err(not_found());
    }
    Ok(response.into_response())
}

fn mime_wav() -> mime::Mime {
    "audio/wav"
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM)
}

/// A request without a range, or for a range from byte 0: a player
/// starting the recording (its later range requests are the same play).
fn starts_a_play(headers: &HeaderMap) -> bool {
    match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(range) => range
            .trim()
            .strip_prefix("bytes=")
            .is_some_and(|spec| spec.trim_start().starts_with("0-")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_play_starts_at_the_first_byte() {
        let with = |range: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RANGE, range.parse().expect("header"));
            starts_a_play(&headers)
        };
        assert!(starts_a_play(&HeaderMap::new()));
        assert!(with("bytes=0-"));
        assert!(with("bytes=0-1023"));
        assert!(!with("bytes=4096-"));
        assert!(!with("bytes=100-200"));
        assert!(!with("items=0-1"));
    }
}
