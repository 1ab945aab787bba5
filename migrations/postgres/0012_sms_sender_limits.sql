-- SMS rate limits shared by every gateway on this database
-- (src/sms/limits.rs, src/tickets/store/sms_limits.rs): one token bucket
-- per limit and sender, updated by one atomic upsert per text, so a sender
-- talking to several gateways gets the limit once, not once per gateway.
-- Kept column-for-column in step with migrations/sqlite/0012_sms_sender_limits.sql
-- (on SQLite, one gateway per file, the buckets stay in memory and this
-- table is empty). recent_ids: the last message ids counted (a provider's
-- retry of one is not counted again); told: 1 once the sender has been told
-- it is over the limit, until its next accepted text; outcome: what the
-- last take did (token, free, refused), read back by the upsert.
CREATE TABLE sms_sender_limits (
    limit_name  TEXT             NOT NULL,
    sender      TEXT             NOT NULL,
    tokens      DOUBLE PRECISION NOT NULL,
    updated_at  BIGINT           NOT NULL,
    recent_ids  TEXT[]           NOT NULL,
    told        BIGINT           NOT NULL,
    outcome     TEXT             NOT NULL,
    PRIMARY KEY (limit_name, sender)
);

CREATE INDEX sms_sender_limits_updated ON sms_sender_limits(updated_at);
