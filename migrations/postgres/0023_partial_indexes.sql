-- Rows without a value have no use in these indexes: an inbound text has
-- no reply_to, a ticket from a caller not on file no customer_id. Leaving
-- them out saves an index entry per such row on the hot write path (every
-- query that uses the indexes names a value, which implies NOT NULL).
-- Rebuilding locks each table for writes while it runs: upgrade in a quiet
-- hour (docs/operations.md, Upgrades).
DROP INDEX sms_messages_reply_to;
CREATE INDEX sms_messages_reply_to ON sms_messages(reply_to) WHERE reply_to IS NOT NULL;
DROP INDEX tickets_customer;
CREATE INDEX tickets_customer ON tickets(customer_id, created_at) WHERE customer_id IS NOT NULL;
