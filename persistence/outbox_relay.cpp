#include "persistence/outbox_relay.hpp"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "persistence/event_feed.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/pg_arrays.hpp"
#include "persistence/pg_errors.hpp"
#include "persistence/redis_client.hpp"
#include "persistence/redis_streams.hpp"

namespace chorus::persistence {

namespace {

// Entries per XADD round trip: one script call adds them all (redis_streams.hpp, xadd_many).
constexpr size_t xadd_chunk = 100;

// The first $1 events not yet published of the oldest unpublished outbox rows (one per
// transaction) below the high-water mark, in feed order. A transaction older than every running
// transaction is final (committed, or rolled back and invisible), and every event that becomes
// visible later has a txid at least that oldest running one: so reading in (txid,
// global_position) order never passes over an event that commits late. A transaction published
// in part (a step cut it, or an XADD failed) resumes after `published_through`. A row with no
// event left comes with nulls, so that it is marked and not read again forever.
constexpr const char* select_batch_sql = R"sql(
  WITH due AS (
    SELECT txid, published_through FROM outbox
    WHERE published_at IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY txid
    LIMIT $1
  )
  SELECT due.txid::text, e.global_position, e.stream, e.version, e.type, e.payload
  FROM due LEFT JOIN events e ON e.txid = due.txid AND e.global_position > due.published_through
  ORDER BY due.txid, e.global_position
  LIMIT $1
)sql";

}  // namespace

struct outbox_relay::connection {
  explicit connection(const std::string& dsn) : pg(dsn) {}
  pqxx::connection pg;
};

outbox_relay::outbox_relay(outbox_relay_config cfg, std::shared_ptr<redis_client> redis)
    : cfg_(std::move(cfg)), redis_(std::move(redis)) {
  cfg_.dsn = with_connect_timeout(cfg_.dsn, 2);
}

outbox_relay::~outbox_relay() {
  stop();
}

caf::expected<size_t> outbox_relay::step() {
  if (!migrated_) {
    if (auto applied = apply_migrations(cfg_.dsn); !applied) return applied.error();
    migrated_ = true;
  }
  auto result = detail::guarded_pg([&]() -> caf::expected<size_t> {
    if (!conn_ || !conn_->pg.is_open()) {
      conn_.reset();
      leader_ = false;
      auto conn = std::make_unique<connection>(cfg_.dsn);
      pqxx::nontransaction tx{conn->pg};
      tx.exec("SET statement_timeout = 10000");
      conn_ = std::move(conn);
    }
    if (!leader_) {
      // Session-level: held as long as this connection lives. A standby asks again every step.
      pqxx::nontransaction tx{conn_->pg};
      auto got = tx.exec_params("SELECT pg_try_advisory_lock($1)", relay_lock_key);
      leader_ = got[0][0].as<bool>();
      if (!leader_) return size_t{0};
    }
    std::vector<feed_event> batch;
    std::vector<uint64_t> empty;  // outbox rows with no event left
    bool cut = false;             // the last transaction read may have more events
    {
      pqxx::nontransaction tx{conn_->pg};
      auto rows = tx.exec_params(select_batch_sql, static_cast<int64_t>(cfg_.batch));
      cut = rows.size() >= cfg_.batch && !rows.back()[1].is_null();
      batch.reserve(rows.size());
      for (const auto& row : rows) {
        if (row[1].is_null()) {
          empty.push_back(row[0].as<uint64_t>());
          continue;
        }
        feed_event e;
        e.at.txid = row[0].as<uint64_t>();
        e.at.position = row[1].as<int64_t>();
        e.event = stored_event{row[2].as<std::string>(), row[3].as<int64_t>(), e.at.position,
                               row[4].as<std::string>(), pqxx::binarystring{row[5]}.str()};
        batch.push_back(std::move(e));
      }
    }
    // Publish in order and stop at the first failure. The transactions whose events all went
    // out are marked published; one that went out in part records how far, and the next step
    // goes on from there. So the stream keeps feed order with no holes; a crash before the mark,
    // or a failed round trip that had added part of its entries, publishes again (consumers
    // apply an event once). Up to xadd_chunk entries go per round trip.
    size_t sent = 0;
    caf::error failure;
    while (sent < batch.size()) {
      auto n = std::min(xadd_chunk, batch.size() - sent);
      std::vector<stream_fields> entries;
      entries.reserve(n);
      for (size_t i = sent; i < sent + n; ++i) entries.push_back(encode_feed_entry(batch[i]));
      auto added = xadd_many(*redis_, cfg_.stream, entries, cfg_.maxlen_approx);
      if (!added) {
        failure = added.error();
        break;
      }
      sent += n;
      published_ += n;
    }
    std::vector<uint64_t> done = empty;
    std::optional<feed_position> partly;  // the last event out of a transaction not done
    for (size_t i = 0; i < sent; ++i) {
      const auto& e = batch[i];
      bool last_read = i + 1 == batch.size() || batch[i + 1].at.txid != e.at.txid;
      if (last_read && !(cut && i + 1 == batch.size())) {
        done.push_back(e.at.txid);
        partly.reset();
      } else {
        partly = e.at;
      }
    }
    if (sent > 0 && crash_after_publish_.exchange(false)) return sent;
    if (!done.empty() || partly) {
      pqxx::work tx{conn_->pg};
      if (!done.empty())
        tx.exec_params("UPDATE outbox SET published_at = now() WHERE txid = ANY($1::xid8[])",
                       detail::int_array(done));
      if (partly)
        tx.exec_params("UPDATE outbox SET published_through = $2 WHERE txid = $1::xid8",
                       std::to_string(partly->txid), partly->position);
      tx.commit();
    }
    if (failure) return failure;
    return sent;
  });
  if (detail::is_error(result, errc::postgres_unavailable)) {
    // The connection, and with it the lock, may be gone: start over as a standby.
    conn_.reset();
    leader_ = false;
  }
  return result;
}

void outbox_relay::start() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread{[this] { run(); }};
}

void outbox_relay::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void outbox_relay::run() {
  auto backoff = cfg_.poll;
  for (;;) {
    auto done = step();
    std::chrono::milliseconds wait{0};
    if (!done) {
      wait = backoff;
      backoff = std::min(backoff * 2, cfg_.backoff_max);
    } else {
      backoff = cfg_.poll;
      if (*done < cfg_.batch) wait = cfg_.poll;  // a full batch: more is waiting, go on at once
    }
    std::unique_lock<std::mutex> lock{mtx_};
    if (cv_.wait_for(lock, wait, [&] { return stopping_; })) return;
  }
}

}  // namespace chorus::persistence
