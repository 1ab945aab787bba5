//! Console login, sessions and CSRF protection.
//!
//! A staff member logs in by pasting their API token. The console then
//! keeps a server-side session (`console_sessions`): a random 256-bit id in
//! the `hotline_console` cookie (HttpOnly, SameSite=Strict, Path=/console;
//! Secure behind a TLS proxy that says `X-Forwarded-Proto: https`), of
//! which the store keeps only the SHA-256, like the tokens. The session
//! ends at logout, after [`SESSION_HOURS`], or when its token is revoked.
//!
//! Every form carries the session's synchronizer token in a hidden `csrf`
//! field; [`CsrfForm`] checks it (constant-time) before the form is even
//! parsed and answers 403 with the reason when it is missing or wrong. The
//! login form, which has no session yet, is protected the double-submit
//! way: its token is also in a short-lived `hotline_console_login` cookie.

use super::page::{navigation, page, ConsoleError};
use super::ConsoleState;
use crate::api::hash_token;
use crate::tickets::model::StaffRole;
use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Request, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The session cookie.
pub(super) const SESSION_COOKIE: &str = "hotline_console";
/// The login form's double-submit cookie.
const LOGIN_COOKIE: &str = "hotline_console_login";
/// The hidden form field with the CSRF token.
pub(super) const CSRF_FIELD: &str = "csrf";
/// How long a session lasts: a long shift.
const SESSION_HOURS: i64 = 12;
/// How long the login form stays usable.
const LOGIN_FORM_SECS: i64 = 600;
/// The largest form the console reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A logged-in staff member.
#[derive(Debug, Clone)]
pub(super) struct Session {
    id_hash: String,
    pub name: String,
    pub role: StaffRole,
    csrf_token: String,
}

impl Session {
    /// The hidden field every form of this session carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(CSRF_FIELD) value=(self.csrf_token); }
    }

    /// The navigation atop this session's pages.
    pub fn navigation(&self) -> Markup {
        navigation(&self.name, self.role, self.csrf_field())
    }

    /// 403 unless the session's role is at least `role`.
    pub fn require(&self, role: StaffRole) -> Result<(), ConsoleError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ConsoleError::forbidden(format!(
                "this page needs the {role} role or above; {} is {}",
                self.name, self.role
            )))
        }
    }
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Response;

    /// The request's session; without a live one, a redirect to the login.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Session, Response> {
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        let id_hash = hash_token(id);
        match state.store.console_session(&id_hash).await {
            Ok(Some(found)) => Ok(Session {
                id_hash,
                name: found.name,
                role: found.role,
                csrf_token: found.csrf_token,
            }),
            Ok(None) => Err(to_login()),
            Err(error) => Err(ConsoleError::from(error).into_response()),
        }
    }
}

/// A form POSTed within a session whose CSRF token matched.
pub(super) struct CsrfForm<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<ConsoleState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                ConsoleError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the form is unreadable or larger than {MAX_FORM_BYTES} bytes"),
                )
                .into_response()
            })?;
        let sent = form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == CSRF_FIELD)
            .map(|(_, value)| value.into_owned());
        check_csrf(sent.as_deref(), &session.csrf_token).map_err(IntoResponse::into_response)?;
        let request = Request::from_parts(parts, Body::from(bytes));
        let Form(form) = Form::<T>::from_request(request, state)
            .await
            .map_err(|rejection| {
                ConsoleError::new(rejection.status(), rejection.body_text()).into_response()
            })?;
        Ok(CsrfForm { session, form })
    }
}

/// 403 with the reason unless `sent` is the session's token.
fn check_csrf(sent: Option<&str>, expected: &str) -> Result<(), ConsoleError> {
    match sent {
        None => Err(ConsoleError::forbidden(
            "CSRF check failed: the form has no CSRF token; reload the page and try again",
        )),
        Some(sent) if bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        Some(_) => Err(ConsoleError::forbidden(
            "CSRF check failed: the form's CSRF token does not belong to this session; \
             reload the page and try again",
        )),
    }
}

/// The value of cookie `name` in the request, if sent.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` value for a console cookie; `None` clears it.
fn set_cookie(name: &str, value: Option<&str>, max_age: i64, headers: &HeaderMap) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let (value, max_age) = value.map_or(("", 0), |v| (v, max_age));
    let text = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    // Names and values are hex and fixed text: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// 256 random bits from the CSPRNG, as hex.
fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn to_login() -> Response {
    redirect("/console/login", Vec::new())
}

/// 303 See Other to `location`, with cookies to set.
fn redirect(location: &'static str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(LOCATION, HeaderValue::from_static(location));
    for value in cookies {
        headers.append(SET_COOKIE, value);
    }
    response
}

/// The login form with a fresh double-submit token, and `problem` above it.
fn login_form(status: StatusCode, problem: Option<&str>, headers: &HeaderMap) -> Response {
    let token = random_hex();
    let body = html! {
        @if let Some(problem) = problem {
            p.error { (problem) }
        }
        form.login method="post" action="/console/login" {
            input type="hidden" name=(CSRF_FIELD) value=(token);
            label for="token" { "API token 令牌" }
            input #token type="password" name="token" autocomplete="off" required
                placeholder="hl_…";
            button type="submit" { "Log in 登录" }
        }
        p.hint { "A token is made with " code { "hotline token create" } "." }
    };
    let mut response = (status, page("Log in", None, None, body)).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(LOGIN_COOKIE, Some(&token), LOGIN_FORM_SECS, headers),
    );
    response
}

pub(super) async fn login_page(headers: HeaderMap) -> Response {
    login_form(StatusCode::OK, None, &headers)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
    csrf: Option<String>,
}

pub(super) async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let expected = cookie(&headers, LOGIN_COOKIE).ok_or_else(|| {
        ConsoleError::forbidden(
            "CSRF check failed: the login form's cookie is missing or expired; reload the page",
        )
    })?;
    check_csrf(form.csrf.as_deref(), expected)?;
    let token = form.token.trim();
    let record = if token.is_empty() {
        None
    } else {
        state.store.active_api_token(&hash_token(token)).await?
    };
    let Some(record) = record else {
        tracing::info!("console login refused: unknown or revoked token");
        return Ok(login_form(
            StatusCode::UNAUTHORIZED,
            Some("Unknown or revoked token."),
            &headers,
        ));
    };
    let id = random_hex();
    let expires_at = state.store.now() + chrono::Duration::hours(SESSION_HOURS);
    state
        .store
        .create_console_session(hash_token(&id), record.id, random_hex(), expires_at)
        .await?;
    tracing::info!(staff = %record.name, "console login");
    Ok(redirect(
        "/console/board",
        vec![
            set_cookie(SESSION_COOKIE, Some(&id), SESSION_HOURS * 3600, &headers),
            set_cookie(LOGIN_COOKIE, None, 0, &headers),
        ],
    ))
}

/// Logout takes no fields but the CSRF token.
#[derive(Deserialize)]
pub(super) struct NoFields {}

pub(super) async fn logout(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    state.store.delete_console_session(session.id_hash).await?;
    tracing::info!(staff = %session.name, "console logout");
    Ok(redirect(
        "/console/login",
        vec![set_cookie(SESSION_COOKIE, None, 0, &headers)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; hotline_console=abc"));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "hotline"), None);
    }

    #[test]
    fn the_csrf_token_must_be_sent_and_equal() {
        assert!(check_csrf(Some("abc"), "abc").is_ok());
        assert!(check_csrf(Some("abd"), "abc").is_err());
        assert!(check_csrf(Some(""), "abc").is_err());
        assert!(check_csrf(None, "abc").is_err());
    }

    #[test]
    fn session_cookies_are_strict_and_http_only() {
        let plain = set_cookie(SESSION_COOKIE, Some("ab"), 60, &HeaderMap::new());
        assert_eq!(
            plain.to_str().unwrap(),
            "hotline_console=ab; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let secure = set_cookie(SESSION_COOKIE, None, 60, &proxied);
        assert!(secure.to_str().unwrap().ends_with("Max-Age=0; Secure"));
    }
}
