-- Durable reminders: one row per (entity kind, entity id, reminder name). Scheduling again
-- replaces the row. A node claims due rows by pushing due_at forward by a lease (so a node that
-- dies mid-delivery lets the lease run out and another node redelivers) and deletes them once
-- the entity acknowledged. attempts counts claims since the row was last scheduled.
CREATE TABLE reminders (
  kind         text        NOT NULL,
  id           text        NOT NULL,
  name         text        NOT NULL,
  due_at       timestamptz NOT NULL,
  payload_type text        NOT NULL,
  payload      bytea       NOT NULL,
  attempts     int         NOT NULL DEFAULT 0,
  PRIMARY KEY (kind, id, name)
);
CREATE INDEX reminders_due ON reminders (due_at);
