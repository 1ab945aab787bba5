-- Delivery state of the notification outbox, for the SMS outbox worker.
-- Kept column-for-column in step with migrations/postgres/0002_outbox_delivery.sql.
--   status: pending (waiting for its next attempt), sending (claimed by a
--   worker until claimed_until), sent (the provider took it), delivered (the
--   provider reported delivery), failed (permanently refused, reported
--   undelivered, or out of attempts).
-- A claim whose claimed_until has passed (its gateway died mid-send) may be
-- claimed again; the resend carries the same idempotency key (dedup_key).

ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE outbox ADD COLUMN provider_message_id TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE outbox ADD COLUMN delivered_at BIGINT;
ALTER TABLE outbox ADD COLUMN failed_at BIGINT;
UPDATE outbox SET status = 'sent' WHERE sent_at IS NOT NULL;
DROP INDEX outbox_pending;
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_provider_message ON outbox(provider_message_id);
