-- The outbox row is written by the same statement as its event and deleted with it, so the
-- foreign key only ever checked what the statement had just made true. Checking it cost a
-- lookup and a row lock (a WAL record) on the event for every append: the journal's single
-- largest cost after the inserts themselves (bench/README.md, persistence).
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_global_position_fkey;
