-- The last event out of a transaction the relay published in part: a step holds at most
-- relay-batch events, and the events written before 0004 share one txid, so one transaction
-- can take several steps (or a failed XADD can stop in the middle of one). The next step goes
-- on after it.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS published_through bigint NOT NULL DEFAULT 0;
