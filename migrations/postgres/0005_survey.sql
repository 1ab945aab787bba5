-- Satisfaction surveys (满意度调查, src/tickets/store/surveys.rs): one row per
-- score a caller gave, next to the `survey` event in the ticket's history,
-- so that scores can be averaged per agent and per period without reading
-- event texts. Kept column-for-column in step with
-- migrations/sqlite/0005_survey.sql.
--   agent: who transferred the caller to the survey (the INVITE's
--   Referred-By), when known.
CREATE TABLE ticket_surveys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id  BIGINT  NOT NULL REFERENCES tickets(id),
    event_id   BIGINT  NOT NULL REFERENCES ticket_events(id),
    score      BIGINT  NOT NULL CHECK (score BETWEEN 1 AND 5),
    agent      TEXT,
    at         BIGINT  NOT NULL
);
CREATE INDEX ticket_surveys_ticket ON ticket_surveys(ticket_id, id);
CREATE INDEX ticket_surveys_at ON ticket_surveys(at);
