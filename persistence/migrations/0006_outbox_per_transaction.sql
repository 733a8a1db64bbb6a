-- The outbox keeps one row per appending transaction instead of one per event. Group commit
-- writes dozens of events per transaction, and a row each cost a heap tuple and two index
-- entries per event, about a fifth of an append (bench/README.md, persistence). The relay
-- finds a transaction's events by the events_txid_position index, in feed order as before.
-- Nodes still on the old schema must not append while the rows move: they wait, then fail.
LOCK TABLE outbox IN EXCLUSIVE MODE;
CREATE TABLE outbox_by_transaction (
  txid         xid8 PRIMARY KEY,
  published_at timestamptz
);
INSERT INTO outbox_by_transaction (txid, published_at)
  SELECT e.txid, CASE WHEN bool_and(o.published_at IS NOT NULL) THEN max(o.published_at) END
  FROM outbox o JOIN events e ON e.global_position = o.global_position
  GROUP BY e.txid;
DROP TABLE outbox;
ALTER TABLE outbox_by_transaction RENAME TO outbox;
ALTER INDEX outbox_by_transaction_pkey RENAME TO outbox_pkey;
CREATE INDEX outbox_unpublished ON outbox (txid) WHERE published_at IS NULL;
