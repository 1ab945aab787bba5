//! The console's page frame (head, navigation with the logout form) and
//! its error pages. Every value spliced into markup by maud's `(…)` is
//! HTML-escaped; nothing here uses `PreEscaped` on data.

use crate::api::ApiError;
use crate::tickets::model::StaffRole;
use crate::tickets::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup, DOCTYPE};

/// A whole page: `title`, the `navigation` of whoever is logged in
/// (`Session::navigation`), and `body`. `refresh_secs` reloads the page on
/// its own (live views).
pub(super) fn page(
    title: &str,
    navigation: Option<Markup>,
    refresh_secs: Option<u32>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh_secs {
                    meta http-equiv="refresh" content=(secs);
                }
                title { (title) " · hotline console" }
                link rel="icon" href="/console/assets/favicon.svg";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                @if let Some(navigation) = navigation {
                    (navigation)
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The links for a staff member `name` of `role`, and the logout form
/// (carrying the session's `csrf_field`).
pub(super) fn navigation(name: &str, role: StaffRole, csrf_field: Markup) -> Markup {
    html! {
        nav {
            a.brand href="/console/board" { "hotline" }
            a href="/console/board" { "Tickets 工单" }
            a href="/console/calls/live" { "Live calls 在线呼叫" }
            @if role >= StaffRole::Supervisor {
                a href="/console/dashboard" { "Dashboard 指标" }
            }
            span.who { (name) " (" (role) ")" }
            form.logout method="post" action="/console/logout" {
                (csrf_field)
                button type="submit" { "Log out" }
            }
        }
    }
}

/// A time in the SLA calendar's zone, to the second.
pub(super) fn local_time(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A page that says what went wrong, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConsoleError {
    status: StatusCode,
    message: String,
}

impl ConsoleError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ConsoleError {
        ConsoleError {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::FORBIDDEN, message)
    }
}

/// Store errors get the staff API's status and wording (one mapping for
/// both; database detail stays in the log).
impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> ConsoleError {
        let api = ApiError::from(error);
        ConsoleError::new(api.status(), api.body().error.message.clone())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let title = self
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string();
        let body = html! {
            p.error { (self.message) }
            p { a href="/console/board" { "Back to the tickets" } }
        };
        (self.status, page(&title, None, None, body)).into_response()
    }
}
