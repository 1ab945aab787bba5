-- Web console sessions (src/console/session.rs, src/tickets/store/sessions.rs).
-- Kept column-for-column in step with migrations/postgres/0008_console_sessions.sql.
-- A staff member logs in with their API token; the session belongs to that
-- token, so revoking the token ends its sessions too. Only the SHA-256 of
-- the session id (the cookie's value) is stored, as hex. csrf_token is the
-- synchronizer token every form of the session must send back.
CREATE TABLE console_sessions (
    id_hash     TEXT    NOT NULL PRIMARY KEY,
    token_id    BIGINT  NOT NULL REFERENCES api_tokens(id),
    csrf_token  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);

CREATE INDEX console_sessions_expires ON console_sessions(expires_at);
