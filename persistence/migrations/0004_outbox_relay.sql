-- The outbox relay and projections (persistence/README.md, "Relay and projections").
-- The transaction that wrote each event: the high-water mark is "every transaction older than
-- the oldest one still running", and feeds are ordered by (txid, global_position), an order in
-- which no event can appear later below a point already read. Rows that exist already get this
-- migration's transaction id: they are all committed, so that is an equally valid order.
ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_txid_position ON events (txid, global_position);
-- Where each projection is, written in the same transaction as its read model: the last event
-- applied, as (txid, position) in feed order. (0, 0) is before every event.
CREATE TABLE projection_checkpoints (
  name     text   PRIMARY KEY,
  position bigint NOT NULL DEFAULT 0,
  txid     xid8   NOT NULL DEFAULT '0'
);
