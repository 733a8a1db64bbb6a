-- The latest snapshot per stream: restore = snapshot + the events after its version.
CREATE TABLE snapshots (
  stream   text        PRIMARY KEY,
  version  bigint      NOT NULL CHECK (version > 0),
  type     text        NOT NULL,
  payload  bytea       NOT NULL,
  taken_at timestamptz NOT NULL DEFAULT now()
);
