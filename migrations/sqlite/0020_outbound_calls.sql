-- Outbound calls the gateway places (src/outbound/, src/tickets/store/outbound.rs):
-- confirmation calls after a repair (purpose confirm), callbacks (callback)
-- and surveys (survey). Kept column-for-column in step with
-- migrations/postgres/0020_outbound_calls.sql.
-- One row per call to make, claimed by any gateway with a lease
-- (claimed_until; FOR UPDATE SKIP LOCKED on PostgreSQL), like the SMS
-- outbox. state: queued (waiting for earliest_at), placing (claimed), done
-- (the call did its job), failed (attempts spent, declined, unreachable).
-- trunk: the index, in the purpose's trunk list, of the next attempt's trunk.
-- dedup_key makes queueing idempotent (e.g. confirm:<ticket id>:<version>).
CREATE TABLE outbound_calls (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key      TEXT    NOT NULL UNIQUE,
    purpose        TEXT    NOT NULL,
    ticket_id      BIGINT  REFERENCES tickets(id),
    number         TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    trunk          BIGINT  NOT NULL,
    earliest_at    BIGINT  NOT NULL,
    attempts       BIGINT  NOT NULL,
    claimed_until  BIGINT,
    last_cause     TEXT,
    outcome        TEXT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);

CREATE INDEX outbound_calls_due ON outbound_calls(state, earliest_at);
CREATE INDEX outbound_calls_ticket ON outbound_calls(ticket_id);

-- Every attempt, for the ticket's timeline and the console: when, on which
-- trunk, the SIP status, the cause (src/outbound/schedule.rs Cause) and the
-- key the customer pressed.
CREATE TABLE outbound_attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id        BIGINT  NOT NULL REFERENCES outbound_calls(id),
    attempt        BIGINT  NOT NULL,
    trunk          TEXT    NOT NULL,
    sip_call_id    TEXT    NOT NULL,
    started_at     BIGINT  NOT NULL,
    ended_at       BIGINT  NOT NULL,
    sip_status     BIGINT,
    cause          TEXT    NOT NULL,
    key_pressed    TEXT
);

CREATE INDEX outbound_attempts_call ON outbound_attempts(call_id);
