#include "persistence/projection.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include <pqxx/pqxx>

#include "persistence/journal_pg.hpp"
#include "persistence/pg_errors.hpp"
#include "persistence/redis_client.hpp"
#include "persistence/redis_streams.hpp"

namespace chorus::persistence {

namespace {

// The largest xid8: an upper bound that every event is below.
constexpr uint64_t max_txid = ~uint64_t{0};

// Events in feed order after `$1,$2` and at most `$3,$4`, below the high-water mark: the
// events whose transaction is older than every running one (see outbox_relay.cpp).
constexpr const char* select_range_sql = R"sql(
  SELECT txid::text, global_position, stream, version, type, payload FROM events
  WHERE (txid, global_position) > ($1::xid8, $2::bigint)
    AND (txid, global_position) <= ($3::xid8, $4::bigint)
    AND txid < pg_snapshot_xmin(pg_current_snapshot())
  ORDER BY txid, global_position
  LIMIT $5
)sql";

constexpr const char* count_range_sql = R"sql(
  SELECT count(*) FROM events
  WHERE (txid, global_position) > ($1::xid8, $2::bigint)
    AND (txid, global_position) <= ($3::xid8, $4::bigint)
)sql";

/// The handler's view of the projector's transaction.
class pg_sql_tx final : public sql_tx {
 public:
  explicit pg_sql_tx(pqxx::work& tx) : tx_(tx) {}

  caf::expected<sql_rows> exec(const std::string& sql,
                               const std::vector<std::string>& params) override {
    return detail::guarded_pg([&]() -> caf::expected<sql_rows> {
      auto rows = tx_.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
      sql_rows out;
      out.reserve(rows.size());
      for (const auto& row : rows) {
        std::vector<std::string> values;
        values.reserve(row.size());
        for (const auto& field : row) values.push_back(field.is_null() ? "" : field.c_str());
        out.push_back(std::move(values));
      }
      return out;
    });
  }

 private:
  pqxx::work& tx_;
};

feed_position lock_checkpoint(pqxx::work& tx, const std::string& name) {
  // FOR UPDATE: projectors of the same projection on other nodes wait here, so the read model
  // and the checkpoint move one transaction at a time.
  auto row = tx.exec_params1(
      "SELECT txid::text, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name);
  return feed_position{row[0].as<uint64_t>(), row[1].as<int64_t>()};
}

void set_checkpoint(pqxx::work& tx, const std::string& name, feed_position at) {
  tx.exec_params(
      "UPDATE projection_checkpoints SET txid = $2::text::xid8, position = $3 WHERE name = $1",
      name, std::to_string(at.txid), at.position);
}

}  // namespace

struct projector::connection {
  explicit connection(const std::string& dsn) : pg(dsn) {}
  pqxx::connection pg;
};

projector::projector(projector_config cfg, projection p, std::shared_ptr<redis_client> redis)
    : cfg_(std::move(cfg)), projection_(std::move(p)), redis_(std::move(redis)) {
  cfg_.dsn = with_connect_timeout(cfg_.dsn, 2);
}

projector::~projector() {
  stop();
}

caf::error projector::prepare() {
  if (!prepared_) {
    if (auto applied = apply_migrations(cfg_.dsn); !applied) return applied.error();
  }
  auto err = detail::guarded_pg([&]() -> caf::error {
    if (conn_ && conn_->pg.is_open()) return {};
    conn_.reset();
    auto conn = std::make_unique<connection>(cfg_.dsn);
    {
      pqxx::nontransaction tx{conn->pg};
      tx.exec("SET statement_timeout = 10000");
    }
    if (!prepared_) {
      // Under a lock: CREATE TABLE IF NOT EXISTS from two nodes at once can still collide.
      pqxx::work tx{conn->pg};
      tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))",
                     "projection:" + projection_.name);
      for (const auto& sql : projection_.schema) tx.exec(sql);
      tx.exec_params(
          "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
          projection_.name);
      tx.commit();
    }
    conn_ = std::move(conn);
    prepared_ = true;
    return {};
  });
  if (err) conn_.reset();
  return err;
}

caf::expected<feed_position> projector::checkpoint() {
  if (auto err = prepare()) return err;
  auto out = detail::guarded_pg([&]() -> caf::expected<feed_position> {
    pqxx::read_transaction tx{conn_->pg};
    auto row =
        tx.exec_params1("SELECT txid::text, position FROM projection_checkpoints WHERE name = $1",
                        projection_.name);
    return feed_position{row[0].as<uint64_t>(), row[1].as<int64_t>()};
  });
  if (detail::is_error(out, errc::postgres_unavailable)) conn_.reset();
  return out;
}

// One transaction: the events after the checkpoint and at most `upper`, up to a batch, from the
// events table. Returns how many it applied.
caf::expected<size_t> projector::apply_from_table(feed_position upper) {
  if (auto err = prepare()) return err;
  auto out = detail::guarded_pg([&]() -> caf::expected<size_t> {
    pqxx::work tx{conn_->pg};
    auto at = lock_checkpoint(tx, projection_.name);
    auto rows = tx.exec_params(select_range_sql, std::to_string(at.txid), at.position,
                               std::to_string(upper.txid), upper.position,
                               static_cast<int64_t>(cfg_.batch));
    pg_sql_tx stx{tx};
    std::vector<stored_event> done;
    for (const auto& row : rows) {
      stored_event e{row[2].as<std::string>(), row[3].as<int64_t>(), row[1].as<int64_t>(),
                     row[4].as<std::string>(), pqxx::binarystring{row[5]}.str()};
      if (auto err = projection_.apply(e, stx)) return err;
      at = feed_position{row[0].as<uint64_t>(), e.global_position};
      if (projection_.committed) done.push_back(std::move(e));
    }
    if (!rows.empty()) set_checkpoint(tx, projection_.name, at);
    tx.commit();
    for (const auto& e : done) projection_.committed(e);
    applied_ += rows.size();
    return static_cast<size_t>(rows.size());
  });
  if (detail::is_error(out, errc::postgres_unavailable)) conn_.reset();
  return out;
}

caf::expected<size_t> projector::catch_up() {
  size_t total = 0;
  for (;;) {
    auto n = apply_from_table(feed_position{max_txid, INT64_MAX});
    if (!n) return n.error();
    total += *n;
    if (*n < cfg_.batch) return total;
  }
}

caf::expected<size_t> projector::consume(std::chrono::milliseconds block) {
  if (auto err = prepare()) return err;
  // After a Redis failure: the group may be gone (a restart without persistence) and entries
  // this consumer read may be unacked; create it again if needed and re-read the pending ones.
  auto redis_failed = [this](caf::error err) {
    group_ready_ = false;
    pending_done_ = false;
    return err;
  };
  if (!group_ready_) {
    // From "0": a new group reads what the stream holds; entries already applied (by a catch-up
    // from the table) are skipped by the checkpoint.
    if (auto err = xgroup_create(*redis_, cfg_.stream, projection_.name, "0"))
      return redis_failed(err);
    group_ready_ = true;
  }
  caf::expected<std::vector<stream_entry>> entries{std::vector<stream_entry>{}};
  if (!pending_done_) {
    // Entries delivered to this consumer before a restart and never acked come first.
    entries = xreadgroup(*redis_, projection_.name, cfg_.consumer, cfg_.stream, cfg_.batch,
                         std::chrono::milliseconds{0}, "0");
    if (!entries) return redis_failed(entries.error());
    if (entries->empty()) pending_done_ = true;
  }
  if (pending_done_) {
    entries = xreadgroup(*redis_, projection_.name, cfg_.consumer, cfg_.stream, cfg_.batch, block);
    if (!entries) return redis_failed(entries.error());
  }
  if (entries->empty()) return size_t{0};
  std::vector<std::string> ids;
  std::vector<feed_event> events;
  for (auto& entry : *entries) {
    ids.push_back(entry.id);
    if (auto e = decode_feed_entry(entry.fields)) events.push_back(std::move(*e));
  }
  // Apply the entries past the checkpoint, in stream order, skipping any at or below the last
  // one applied (a duplicate from a relay that crashed before marking). Then check that the
  // journal holds no event in that range that the stream did not bring; if it does, undo and
  // apply the range from the table instead.
  std::optional<feed_position> gap_until;
  auto out = detail::guarded_pg([&]() -> caf::expected<size_t> {
    pqxx::work tx{conn_->pg};
    auto start = lock_checkpoint(tx, projection_.name);
    auto at = start;
    size_t applied = 0;
    pg_sql_tx stx{tx};
    std::vector<const stored_event*> done;
    for (const auto& e : events) {
      if (e.at <= at) continue;
      if (auto err = projection_.apply(e.event, stx)) return err;
      at = e.at;
      ++applied;
      done.push_back(&e.event);
    }
    if (applied == 0) return size_t{0};
    auto in_journal = tx.exec_params1(count_range_sql, std::to_string(start.txid), start.position,
                                      std::to_string(at.txid), at.position)[0]
                          .as<int64_t>();
    if (static_cast<size_t>(in_journal) != applied) {
      tx.abort();
      gap_until = at;
      return size_t{0};
    }
    set_checkpoint(tx, projection_.name, at);
    tx.commit();
    if (projection_.committed)
      for (const auto* e : done) projection_.committed(*e);
    applied_ += applied;
    return applied;
  });
  if (detail::is_error(out, errc::postgres_unavailable)) conn_.reset();
  if (!out) return out;
  if (gap_until) {
    for (;;) {
      auto n = apply_from_table(*gap_until);
      if (!n) return n.error();
      *out += *n;
      if (*n < cfg_.batch) break;
    }
  }
  // Acked only now that the transaction is committed: a crash before this redelivers them.
  if (auto acked = xack(*redis_, cfg_.stream, projection_.name, ids); !acked)
    return redis_failed(acked.error());
  return out;
}

caf::expected<size_t> projector::rebuild() {
  if (auto err = prepare()) return err;
  auto reset = detail::guarded_pg([&]() -> caf::error {
    pqxx::work tx{conn_->pg};
    lock_checkpoint(tx, projection_.name);
    pg_sql_tx stx{tx};
    if (projection_.reset)
      if (auto err = projection_.reset(stx)) return err;
    set_checkpoint(tx, projection_.name, feed_position{});
    tx.commit();
    return {};
  });
  if (reset) {
    if (detail::is_error(reset, errc::postgres_unavailable)) conn_.reset();
    return reset;
  }
  return catch_up();
}

void projector::start() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread{[this] { run(); }};
}

void projector::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void projector::run() {
  auto backoff = cfg_.poll;
  bool caught_up = false;
  auto stopping = [&] {
    std::lock_guard<std::mutex> guard{mtx_};
    return stopping_;
  };
  while (!stopping()) {
    if (!caught_up) caught_up = static_cast<bool>(catch_up());
    auto done = consume(cfg_.poll);
    if (done) {
      backoff = cfg_.poll;
      continue;  // consume blocked for up to `poll` already
    }
    // Redis (or PostgreSQL) is down: the table still has every event, so keep the read model
    // moving from there while waiting.
    catch_up();
    std::unique_lock<std::mutex> lock{mtx_};
    if (cv_.wait_for(lock, backoff, [&] { return stopping_; })) return;
    backoff = std::min(backoff * 2, cfg_.backoff_max);
  }
}

}  // namespace chorus::persistence
