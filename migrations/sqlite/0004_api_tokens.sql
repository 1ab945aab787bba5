-- Staff API tokens (src/api/auth.rs, src/tickets/store/tokens.rs). Kept
-- column-for-column in step with migrations/postgres/0004_api_tokens.sql.
-- Only the SHA-256 of a token is stored (hex); the token itself is shown
-- once, when it is created. role: agent, supervisor or admin. A revoked
-- token keeps its row (revoked_at set) so that the list shows who had what.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

-- A ticket's history in the staff API: its calls and its texts.
CREATE INDEX call_tickets_ticket ON call_tickets(ticket_id);
CREATE INDEX sms_messages_ticket ON sms_messages(ticket_id, id);
