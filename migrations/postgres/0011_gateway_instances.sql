-- Gateway instances sharing this database, and the calls each has in its
-- IVR now (src/instances.rs, src/tickets/store/instances.rs).
-- Kept column-for-column in step with migrations/sqlite/0011_gateway_instances.sql.
-- Every instance writes its row and replaces its calls on each heartbeat;
-- readers ignore instances whose heartbeat is older than the expiry, so a
-- box that died (kill -9, power) drops out of the console by itself.
-- draining is 0 or 1.
CREATE TABLE gateway_instances (
    name              TEXT    NOT NULL PRIMARY KEY,
    started_at        BIGINT  NOT NULL,
    heartbeat_at      BIGINT  NOT NULL,
    sip_address       TEXT    NOT NULL,
    http_address      TEXT    NOT NULL,
    dialplan_version  TEXT    NOT NULL,
    draining          BIGINT  NOT NULL,
    live_calls        BIGINT  NOT NULL
);

CREATE TABLE gateway_live_calls (
    instance  TEXT    NOT NULL REFERENCES gateway_instances(name) ON DELETE CASCADE,
    call_id   TEXT    NOT NULL,
    caller    TEXT    NOT NULL,
    dialled   TEXT    NOT NULL,
    node      TEXT,
    since     BIGINT  NOT NULL,
    PRIMARY KEY (instance, call_id)
);
