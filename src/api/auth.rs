//! Staff API authentication and roles.
//!
//! A token is `hl_` followed by 32 random bytes in hex, drawn from a
//! CSPRNG (rand's thread generator, seeded by the operating system); it is shown once, when made
//! (`hotline token create`), and only its SHA-256 (hex) is stored. A fast
//! hash is right here: a slow, salted password hash protects guessable
//! secrets, but nobody can guess or brute-force 256 random bits, fast hash
//! or not, and a stolen table of hashes gives no token. The lookup is by
//! hash through the unique index, so no comparison of secret bytes happens
//! in our code and there is no timing difference to measure: constant-time
//! comparison is irrelevant.
//!
//! Every request but the OpenAPI document needs `Authorization: Bearer
//! <token>` of a token not revoked (401 `unauthorized` otherwise); each
//! handler names the least role it needs (403 `forbidden` below it).

use super::error::ApiError;
use super::ApiState;
use crate::tickets::model::{Actor, StaffRole};
use crate::tickets::store::{ApiToken, Store, StoreError};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

/// What every token starts with (so that a leaked one is easy to spot).
pub const TOKEN_PREFIX: &str = "hl_";

/// A token just made: the token itself, shown once, and its record.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub record: ApiToken,
}

/// The stored form of a token: its SHA-256 in lower-case hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Makes a new random token for `name` with `role` and stores its hash.
pub async fn issue_token(
    store: &Store,
    name: &str,
    role: StaffRole,
) -> Result<IssuedToken, StoreError> {
    let secret: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let record = store
        .create_api_token(name, role, hash_token(&token))
        .await?;
    Ok(IssuedToken { token, record })
}

/// The assignment rule, for the API and the console alike: agents may
/// assign a ticket only to themselves and may not change its queue;
/// supervisors and admins may assign anyone and change queues.
pub fn may_assign(
    login: &str,
    role: StaffRole,
    assignee: Option<&str>,
    queue: Option<&str>,
) -> bool {
    role >= StaffRole::Supervisor || (assignee == Some(login) && queue.is_none())
}

/// The holder of the request's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Staff {
    pub name: String,
    pub role: StaffRole,
}

impl Staff {
    /// Who the ticket history records as acting.
    pub fn actor(&self) -> Actor {
        Actor::staff(&self.name)
    }

    /// 403 unless the token's role is at least `role`.
    pub fn require(&self, role: StaffRole) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {role} role or above; the token of {} is {}",
                self.name, self.role
            )))
        }
    }
}

impl FromRequestParts<ApiState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Staff, ApiError> {
        let token = bearer_token(parts)?;
        let record = state
            .store
            .active_api_token(&hash_token(token))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
        tracing::Span::current().record("staff", record.name.as_str());
        Ok(Staff {
            name: record.name,
            role: record.role,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("this needs an Authorization: Bearer <token> header")
    })?;
    header
        .to_str()
        .ok()
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header is not Bearer <token>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roles_are_ordered_by_power() {
        let agent = Staff {
            name: "li".into(),
            role: StaffRole::Agent,
        };
        assert!(agent.require(StaffRole::Agent).is_ok());
        assert!(agent.require(StaffRole::Supervisor).is_err());
        let admin = Staff {
            name: "wang".into(),
            role: StaffRole::Admin,
        };
        assert!(admin.require(StaffRole::Supervisor).is_ok());
    }

    #[test]
    fn only_bearer_headers_carry_a_token() {
        let parts = |value: &str| {
            let (parts, ()) = axum::http::Request::builder()
                .header(AUTHORIZATION, value)
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        assert_eq!(bearer_token(&parts("Bearer hl_x")).ok(), Some("hl_x"));
        assert_eq!(bearer_token(&parts("bearer  hl_x ")).ok(), Some("hl_x"));
        assert!(bearer_token(&parts("Basic abc")).is_err());
        assert!(bearer_token(&parts("Bearer ")).is_err());
    }
}
