-- Call records say which way the call went (src/tickets/store/calls.rs):
-- inbound (a customer called the hotline) or outbound (a call the outbound
-- worker placed: every attempt, answered or not). The call indicators count
-- inbound calls only. Kept column-for-column in step with the other
-- database's 0021_call_direction.sql.
ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound';
