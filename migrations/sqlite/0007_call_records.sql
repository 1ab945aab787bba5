-- Complete call records (src/tickets/store/calls.rs): the transfers a call
-- tried, as a JSON array of {at, target, mode, outcome}, so that transfers
-- by mode and outcome can be counted (src/tickets/store/indicators.rs).
-- Rejected calls are recorded too, with answered_at NULL and the reason in
-- the (until now unused) reason column. Kept column-for-column in step with
-- migrations/postgres/0007_call_records.sql.
ALTER TABLE calls ADD COLUMN transfers TEXT NOT NULL DEFAULT '[]';
CREATE INDEX calls_disposition ON calls(disposition, offered_at);
