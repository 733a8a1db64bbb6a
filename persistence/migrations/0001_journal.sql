-- The event journal: one row per event, unique per (stream, version).
CREATE TABLE events (
  global_position bigserial UNIQUE,
  stream          text        NOT NULL,
  version         bigint      NOT NULL CHECK (version > 0),
  type            text        NOT NULL,
  payload         bytea       NOT NULL,
  metadata        jsonb       NOT NULL DEFAULT '{}',
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream, version)
);
-- Written in the same transaction as the event; the relay marks rows published.
CREATE TABLE outbox (
  global_position bigint PRIMARY KEY REFERENCES events (global_position),
  published_at    timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (global_position) WHERE published_at IS NULL;
