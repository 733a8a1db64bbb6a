#include "persistence/journal_pg.hpp"

#include <exception>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include <pqxx/pqxx>

#include "persistence/errc.hpp"
#include "persistence/migrations.hpp"
#include "persistence/pg_arrays.hpp"
#include "persistence/pg_errors.hpp"

namespace chorus::persistence {

using detail::guarded_pg;
using detail::int_array;
using detail::is_error;
using detail::text_array;

namespace {

// Any key; it only has to be the same on every node.
constexpr long long migration_lock_key = 0x63686f727573;  // "chorus"

// Pages of events read at a time while restoring a stream.
constexpr int64_t load_page = 10000;

std::string hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

// Returns how many migrations this call applied.
int migrate(pqxx::connection& conn) {
  // Nothing pending (the usual case): no lock. A node that hangs while holding the lock (SIGSTOP
  // mid-migration) must not stall every other node's new connections.
  {
    pqxx::nontransaction probe{conn};
    if (probe.exec("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0].as<bool>()) {
      auto applied = probe.exec("SELECT version FROM schema_migrations");
      std::set<int> have;
      for (const auto& row : applied) have.insert(row[0].as<int>());
      bool pending = false;
      for (const auto& m : migrations()) pending = pending || have.count(m.version) == 0;
      if (!pending) return 0;
    }
  }
  // Session-level: held until unlocked or the connection closes (also on an exception), across
  // the transactions below. libpqxx allows one transaction object at a time, hence the scopes.
  {
    // A holder that hangs keeps the lock as long as its connection lives: give up after a while
    // with an error (the caller retries) instead of waiting for ever.
    pqxx::nontransaction lock{conn};
    lock.exec("SET lock_timeout = 10000");
    lock.exec_params("SELECT pg_advisory_lock($1)", migration_lock_key);
    lock.exec("RESET lock_timeout");
  }
  {
    pqxx::work tx{conn};
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    tx.commit();
  }
  int applied = 0;
  for (const auto& m : migrations()) {
    pqxx::work tx{conn};
    if (tx.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", m.version).size() != 0)
      continue;
    tx.exec(m.sql);
    tx.exec_params("INSERT INTO schema_migrations (version) VALUES ($1)", m.version);
    tx.commit();
    ++applied;
  }
  pqxx::nontransaction unlock{conn};
  unlock.exec_params("SELECT pg_advisory_unlock($1)", migration_lock_key);
  return applied;
}

// One statement appends a whole batch, in one of two forms (see append_statement). The outbox
// gets one row per transaction (the relay finds its events by txid).
//
// - Fast, in an autocommit statement (no BEGIN and COMMIT round trips): an append's rows are
//   inserted when the event at its expected version exists (or it starts the stream), and the
//   primary key refuses any version already taken. So every append of the batch is all or
//   nothing, and a batch with a stale or racing writer in it fails as a whole (unique
//   violation) and runs again in the settling form.
// - Settling, in a transaction: an append is taken only when the event at its expected version
//   exists and the next one does not; ON CONFLICT waits for writers that commit meanwhile and
//   skips their versions, and the caller undoes an append that landed only in part.
//
// Rows go in (stream, version) order in every batch, so two batches lock rows in the same order.
std::string append_statement(bool settling) {
  std::string sql = R"sql(
  WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                         $6::text[], $7::boolean[])
      AS t(stream, expected, version, type, payload_hex, metadata, known)
  ), accepted AS (
    SELECT i.* FROM input i
    WHERE (i.expected = 0
)sql";
  // The fast form trusts `known` (append_request::expected_exists): most appends come from an
  // entity whose last append or load went through this journal, and the probe was a fifth of
  // the statement's cost. The settling form checks every append.
  if (!settling) sql += "           OR i.known\n";
  sql += R"sql(
           OR EXISTS (SELECT 1 FROM events e WHERE e.stream = i.stream AND e.version = i.expected))
)sql";
  if (settling)
    sql += R"sql(
      AND NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.stream = i.stream AND e.version = i.expected + 1)
)sql";
  sql += R"sql(
  ), inserted AS (
    INSERT INTO events (stream, version, type, payload, metadata)
    SELECT stream, version, type, decode(payload_hex, 'hex'), metadata::jsonb FROM accepted
    ORDER BY stream, version
)sql";
  if (settling) sql += "    ON CONFLICT (stream, version) DO NOTHING\n";
  sql += R"sql(
    RETURNING global_position, stream, version
  ), queued AS (
    INSERT INTO outbox (txid) SELECT pg_current_xact_id() WHERE EXISTS (SELECT 1 FROM inserted)
  )
  SELECT global_position, stream FROM inserted
)sql";
  return sql;
}

}  // namespace

std::string with_connect_timeout(const std::string& dsn, int seconds) {
  auto opt = "connect_timeout=" + std::to_string(seconds);
  if (dsn.find("connect_timeout") != std::string::npos) return dsn;
  if (dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0)
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + opt;
  return dsn + " " + opt;
}

struct journal_pg::connection {
  explicit connection(const std::string& dsn) : pg(dsn) {}
  pqxx::connection pg;
};

journal_pg::journal_pg(std::string dsn) : dsn_(with_connect_timeout(dsn, 2)) {}

journal_pg::~journal_pg() = default;

caf::error journal_pg::connect() {
  if (conn_ && conn_->pg.is_open()) return {};
  conn_.reset();
  return guarded_pg([&]() -> caf::error {
    auto conn = std::make_unique<connection>(dsn_);
    {
      // A hung server must not hold a worker forever: every statement has a deadline.
      pqxx::nontransaction tx{conn->pg};
      tx.exec("SET statement_timeout = 10000");
      // The batch statements are planned once, at their first run: PostgreSQL otherwise plans
      // a prepared statement with array parameters again at every run (a custom plan), which
      // was half of a one-append commit's time in the server (0.38 of 0.6 ms); the generic
      // plan is the same (the arrays are unnested, the checks use the primary key).
      tx.exec("SET plan_cache_mode = force_generic_plan");
    }
    if (!migrated_) {
      migrate(conn->pg);
      migrated_ = true;
    }
    // Prepared once per connection.
    conn->pg.prepare("chorus_append_fast", append_statement(false));
    conn->pg.prepare("chorus_append_settling", append_statement(true));
    conn_ = std::move(conn);
    return {};
  });
}

template <class T>
T journal_pg::checked(T result) {
  // A broken connection is dropped; the next call reconnects.
  if (is_error(result, errc::postgres_unavailable)) conn_.reset();
  return result;
}

caf::expected<int64_t> journal_pg::append(const std::string& stream, int64_t expected_version,
                                          const std::vector<new_event>& events) {
  auto done = append_batch({append_request{stream, expected_version, events}});
  if (!done) return done.error();
  if (!(*done)[0])
    return make_error(errc::version_conflict, stream + ": expected version " +
                                                  std::to_string(expected_version) +
                                                  " is not the stream's version");
  return expected_version + static_cast<int64_t>(events.size());
}

caf::expected<std::vector<bool>> journal_pg::append_batch(
    const std::vector<append_request>& batch) {
  if (auto err = connect()) return err;
  std::vector<std::string> streams, types, payloads, metadata;
  std::vector<int64_t> expected, versions;
  std::vector<bool> known;
  std::map<std::string, size_t> index;  // stream -> request
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& req = batch[i];
    if (!index.emplace(req.stream, i).second)
      return make_error(errc::storage_error, "append_batch: two requests for " + req.stream);
    auto version = req.expected_version;
    for (const auto& e : req.events) {
      streams.push_back(req.stream);
      expected.push_back(req.expected_version);
      versions.push_back(++version);
      types.push_back(e.type);
      payloads.push_back(hex(e.payload));
      metadata.push_back(e.metadata_json.empty() ? "{}" : e.metadata_json);
      known.push_back(req.expected_exists);
    }
  }
  // The batch as array parameters, encoded once for either form of the statement.
  const auto streams_p = text_array(streams), expected_p = int_array(expected),
             versions_p = int_array(versions), types_p = text_array(types),
             payloads_p = text_array(payloads), metadata_p = text_array(metadata),
             known_p = int_array(known);
  auto run = [&](auto& tx, const char* statement) {
    return tx.exec_prepared(statement, streams_p, expected_p, versions_p, types_p, payloads_p,
                            metadata_p, known_p);
  };
  // Nothing when the batch must settle a race (append_statement).
  auto fast = [&]() -> std::optional<std::vector<bool>> {
    pqxx::nontransaction tx{conn_->pg};
    pqxx::result rows;
    try {
      rows = run(tx, "chorus_append_fast");
    } catch (const pqxx::unique_violation&) {
      return std::nullopt;
    } catch (const pqxx::transaction_rollback&) {
      return std::nullopt;
    }
    std::vector<size_t> written(batch.size(), 0);
    for (const auto& row : rows) ++written[index.at(row[1].as<std::string>())];
    std::vector<bool> out(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) out[i] = written[i] == batch[i].events.size();
    return out;
  };
  auto settle = [&]() -> caf::expected<std::vector<bool>> {
    pqxx::work tx{conn_->pg};
    auto rows = run(tx, "chorus_append_settling");
    std::vector<size_t> written(batch.size(), 0);
    std::vector<std::vector<int64_t>> positions(batch.size());
    for (const auto& row : rows) {
      auto i = index.at(row[1].as<std::string>());
      ++written[i];
      positions[i].push_back(row[0].as<int64_t>());
    }
    // An append is all or nothing. Part of one can land only when another writer committed
    // some of the same versions after this statement's snapshot (it then lost anyway): undo it.
    std::vector<int64_t> undo;
    std::vector<bool> out(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      out[i] = written[i] == batch[i].events.size();
      if (!out[i]) undo.insert(undo.end(), positions[i].begin(), positions[i].end());
    }
    if (!undo.empty()) {
      tx.exec_params("DELETE FROM events WHERE global_position = ANY($1::bigint[])",
                     int_array(undo));
      // The transaction's outbox row goes too when none of its events is left.
      tx.exec(
          "DELETE FROM outbox WHERE txid = pg_current_xact_id() "
          "AND NOT EXISTS (SELECT 1 FROM events WHERE txid = pg_current_xact_id())");
    }
    tx.commit();
    return out;
  };
  return checked(guarded_pg([&]() -> caf::expected<std::vector<bool>> {
    try {
      if (auto out = fast()) return std::move(*out);
      return settle();
    } catch (const pqxx::transaction_rollback&) {
      // Two batches that waited on each other's rows: PostgreSQL aborted this one (deadlock or
      // serialization failure). Nothing of it was written, so it runs once more.
      return settle();
    }
  }));
}

caf::expected<std::vector<stored_event>> journal_pg::read(const std::string& stream,
                                                          int64_t after_version, size_t limit) {
  if (auto err = connect()) return err;
  return checked(guarded_pg([&]() -> caf::expected<std::vector<stored_event>> {
    pqxx::read_transaction tx{conn_->pg};
    auto rows = tx.exec_params(
        "SELECT version, global_position, type, payload FROM events "
        "WHERE stream = $1 AND version > $2 ORDER BY version LIMIT $3",
        stream, after_version, static_cast<int64_t>(limit));
    std::vector<stored_event> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
      pqxx::binarystring payload{row[3]};
      out.push_back(stored_event{stream, row[0].as<int64_t>(), row[1].as<int64_t>(),
                                 row[2].as<std::string>(), payload.str()});
    }
    return out;
  }));
}

caf::expected<loaded_stream> journal_pg::load(const std::string& stream, int64_t after_version) {
  if (auto err = connect()) return err;
  return checked(guarded_pg([&]() -> caf::expected<loaded_stream> {
    loaded_stream out;
    // One snapshot of the database for the snapshot row and every page of events.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx{conn_->pg};
    auto from = after_version;
    if (after_version == 0) {
      auto snap =
          tx.exec_params("SELECT version, type, payload FROM snapshots WHERE stream = $1", stream);
      if (!snap.empty()) {
        out.snapshot_version = snap[0][0].as<int64_t>();
        out.snapshot_type = snap[0][1].as<std::string>();
        out.snapshot_payload = pqxx::binarystring{snap[0][2]}.str();
        from = out.snapshot_version;
      }
    }
    out.version = from;
    for (;;) {
      auto rows = tx.exec_params(
          "SELECT version, global_position, type, payload FROM events "
          "WHERE stream = $1 AND version > $2 ORDER BY version LIMIT $3",
          stream, out.version, load_page);
      for (const auto& row : rows) {
        pqxx::binarystring payload{row[3]};
        out.events.push_back(stored_event{stream, row[0].as<int64_t>(), row[1].as<int64_t>(),
                                          row[2].as<std::string>(), payload.str()});
        out.version = out.events.back().version;
      }
      if (static_cast<int64_t>(rows.size()) < load_page) break;
    }
    tx.commit();
    return out;
  }));
}

caf::error journal_pg::save_snapshot(const std::string& stream, int64_t version,
                                     const std::string& type, const std::string& payload) {
  if (auto err = connect()) return err;
  return checked(guarded_pg([&]() -> caf::error {
    pqxx::work tx{conn_->pg};
    pqxx::binarystring bytes{payload};
    tx.exec_params(
        "INSERT INTO snapshots (stream, version, type, payload) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, type = EXCLUDED.type, "
        "payload = EXCLUDED.payload, taken_at = now() WHERE snapshots.version < EXCLUDED.version",
        stream, version, type, bytes);
    tx.commit();
    return {};
  }));
}

caf::expected<int> apply_migrations(const std::string& dsn) {
  return guarded_pg([&]() -> caf::expected<int> {
    pqxx::connection conn{with_connect_timeout(dsn, 2)};
    return migrate(conn);
  });
}

}  // namespace chorus::persistence
