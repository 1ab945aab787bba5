-- Recordings (src/tickets/store/recordings.rs, src/recordings.rs): a
-- caller's fault description from a dialplan's record node, kept as an
-- 8 kHz 16-bit WAV file under [recordings] dir, named by an unguessable
-- token. ticket_id is set when the call had a ticket (or created one
-- later); purged_at once retention deleted the audio (the row stays).
-- Kept column-for-column in step with migrations/sqlite/0022_recordings.sql.
CREATE TABLE recordings (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token        TEXT    NOT NULL UNIQUE,
    kind         TEXT    NOT NULL,
    ticket_id    BIGINT  REFERENCES tickets(id),
    sip_call_id  TEXT    NOT NULL,
    channels     BIGINT  NOT NULL,
    duration_ms  BIGINT  NOT NULL,
    bytes        BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    purged_at    BIGINT
);

CREATE INDEX recordings_ticket ON recordings(ticket_id, id);
CREATE INDEX recordings_call ON recordings(sip_call_id);
CREATE INDEX recordings_created ON recordings(created_at);
