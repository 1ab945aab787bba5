-- The shared store: customers, tickets and their history, calls, SMS and the
-- notification outbox. Kept column-for-column in step with
-- migrations/postgres/0001_tickets.sql (tests/store_schema.rs checks it).
-- Times are milliseconds since the Unix epoch (UTC) in both databases.

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    level       TEXT    NOT NULL,
    language    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE customer_phones (
    phone        TEXT   PRIMARY KEY,
    customer_id  BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE
);
CREATE INDEX customer_phones_customer ON customer_phones(customer_id);

CREATE TABLE customer_products (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id     BIGINT  NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    category        TEXT    NOT NULL,
    service_number  TEXT    NOT NULL
);
CREATE INDEX customer_products_customer ON customer_products(customer_id);

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    number          TEXT    NOT NULL UNIQUE,
    ticket_type     TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    service_number  TEXT,
    description     TEXT    NOT NULL,
    contact_phone   TEXT    NOT NULL,
    customer_id     BIGINT  REFERENCES customers(id),
    level           TEXT    NOT NULL,
    language        TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    queue           TEXT    NOT NULL,
    assignee        TEXT,
    status          TEXT    NOT NULL,
    version         BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    dispatched_at   BIGINT,
    accepted_at     BIGINT,
    resolved_at     BIGINT,
    confirmed_at    BIGINT,
    closed_at       BIGINT,
    dispatch_due    BIGINT,
    accept_due      BIGINT,
    feedback_due    BIGINT,
    repair_due      BIGINT,
    confirm_due     BIGINT
);
CREATE INDEX tickets_contact_phone ON tickets(contact_phone, created_at);
CREATE INDEX tickets_customer ON tickets(customer_id, created_at);
CREATE INDEX tickets_status ON tickets(status, created_at);

-- Append-only: the triggers below refuse any change to a written event.
CREATE TABLE ticket_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id    BIGINT  NOT NULL REFERENCES tickets(id),
    at           BIGINT  NOT NULL,
    actor_kind   TEXT    NOT NULL,
    actor_id     TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    from_status  TEXT,
    to_status    TEXT,
    detail       TEXT    NOT NULL
);
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id, id);
CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END;
CREATE TRIGGER ticket_events_no_delete BEFORE DELETE ON ticket_events
BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END;

-- One row per ticket and clock: what makes "breached" an exactly-once event.
CREATE TABLE sla_breaches (
    ticket_id    BIGINT NOT NULL REFERENCES tickets(id),
    clock        TEXT   NOT NULL,
    due_at       BIGINT NOT NULL,
    detected_at  BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, clock)
);

CREATE TABLE calls (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sip_call_id     TEXT    NOT NULL,
    caller          TEXT    NOT NULL,
    dialled         TEXT    NOT NULL,
    offered_at      BIGINT  NOT NULL,
    answered_at     BIGINT,
    ended_at        BIGINT,
    disposition     TEXT,
    reason          TEXT,
    menu_path       TEXT    NOT NULL
);
CREATE INDEX calls_sip_call_id ON calls(sip_call_id);
CREATE INDEX calls_offered_at ON calls(offered_at);

CREATE TABLE call_tickets (
    call_id    BIGINT NOT NULL REFERENCES calls(id),
    ticket_id  BIGINT NOT NULL REFERENCES tickets(id),
    PRIMARY KEY (call_id, ticket_id)
);

CREATE TABLE sms_messages (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    direction            TEXT    NOT NULL,
    provider             TEXT    NOT NULL,
    provider_message_id  TEXT,
    from_number          TEXT    NOT NULL,
    to_number            TEXT    NOT NULL,
    body                 TEXT    NOT NULL,
    ticket_id            BIGINT  REFERENCES tickets(id),
    reply_to             BIGINT  REFERENCES sms_messages(id),
    status               TEXT    NOT NULL,
    created_at           BIGINT  NOT NULL,
    UNIQUE (provider, provider_message_id)
);
CREATE INDEX sms_messages_from ON sms_messages(from_number, created_at);

CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key      TEXT    NOT NULL UNIQUE,
    kind           TEXT    NOT NULL,
    recipient      TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    ticket_id      BIGINT  REFERENCES tickets(id),
    created_at     BIGINT  NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts       BIGINT  NOT NULL,
    last_error     TEXT,
    sent_at        BIGINT
);
CREATE INDEX outbox_pending ON outbox(sent_at, next_attempt_at);
