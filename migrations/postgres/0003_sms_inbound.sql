-- Inbound SMS (src/tickets/store/sms.rs). Indexes only, no new columns, so
-- the two schemas stay column-for-column the same.
-- A retried webhook finds the reply stored for its text by reply_to.
CREATE INDEX sms_messages_reply_to ON sms_messages(reply_to);
-- An answer ("1"/"2") finds the latest restoration question sent to the
-- sender: outbox rows of kind 'resolved' by recipient.
CREATE INDEX outbox_recipient_kind ON outbox(recipient, kind, id);
