#include "persistence/outbox_relay.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "persistence/event_feed.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/pg_errors.hpp"
#include "persistence/redis_client.hpp"
#include "persistence/redis_streams.hpp"

namespace chorus::persistence {

namespace {

// Unpublished outbox rows below the high-water mark, in feed order. An event whose transaction
// is older than every running transaction is final (committed, or rolled back and invisible),
// and every event that becomes visible later has a txid at least that oldest running one: so
// reading in (txid, global_position) order never passes over an event that commits late.
constexpr const char* select_batch_sql = R"sql(
  SELECT e.txid::text, e.global_position, e.stream, e.version, e.type, e.payload
  FROM outbox o JOIN events e ON e.global_position = o.global_position
  WHERE o.published_at IS NULL AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
  ORDER BY e.txid, e.global_position
  LIMIT $1
)sql";

std::string int_array(const std::vector<int64_t>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(items[i]);
  }
  return out + '}';
}

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
    {
      pqxx::nontransaction tx{conn_->pg};
      auto rows = tx.exec_params(select_batch_sql, static_cast<int64_t>(cfg_.batch));
      batch.reserve(rows.size());
      for (const auto& row : rows) {
        feed_event e;
        e.at.txid = row[0].as<uint64_t>();
        e.at.position = row[1].as<int64_t>();
        e.event = stored_event{row[2].as<std::string>(), row[3].as<int64_t>(), e.at.position,
                               row[4].as<std::string>(), pqxx::binarystring{row[5]}.str()};
        batch.push_back(std::move(e));
      }
    }
    // Publish in order and stop at the first failure: what was published is marked, the rest
    // stays in the outbox for the next step, so the stream keeps feed order with no holes.
    std::vector<int64_t> done;
    caf::error failure;
    for (const auto& e : batch) {
      auto id = xadd(*redis_, cfg_.stream, encode_feed_entry(e), cfg_.maxlen_approx);
      if (!id) {
        failure = id.error();
        break;
      }
      done.push_back(e.at.position);
      ++published_;
    }
    if (!done.empty() && crash_after_publish_.exchange(false)) return done.size();
    if (!done.empty()) {
      pqxx::work tx{conn_->pg};
      tx.exec_params(
          "UPDATE outbox SET published_at = now() WHERE global_position = ANY($1::bigint[])",
          int_array(done));
      tx.commit();
    }
    if (failure) return failure;
    return done.size();
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
