-- Transfer contexts (src/tickets/store/transfer.rs): what an agent's
-- desktop needs about a caller handed over by a transfer, found by the
-- short-lived random token the REFER carried (X-Context-Token), since SIP
-- headers may not survive the way to the agent. Kept column-for-column in
-- step with migrations/postgres/0006_transfer_context.sql.
-- Times are milliseconds since the Unix epoch (UTC); expired rows are
-- deleted when new ones are written.
CREATE TABLE transfer_contexts (
    token          TEXT    PRIMARY KEY,
    sip_call_id    TEXT    NOT NULL,
    caller         TEXT    NOT NULL,
    level          TEXT    NOT NULL,
    ticket_number  TEXT,
    target         TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL
);
CREATE INDEX transfer_contexts_expires_at ON transfer_contexts(expires_at);
