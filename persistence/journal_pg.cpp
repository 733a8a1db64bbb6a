#include "persistence/journal_pg.hpp"

#include <exception>
#include <utility>

#include <pqxx/pqxx>

#include "persistence/errc.hpp"

namespace chorus::persistence {

namespace {

// The schema, one entry per version. Never edit an applied entry: add the next one.
const std::vector<std::pair<int, const char*>> migrations{
    {1, R"sql(
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
    )sql"},
};

// Any key; it only has to be the same on every node.
constexpr long long migration_lock_key = 0x63686f727573;  // "chorus"

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// libpqxx's exceptions, turned into error values at this boundary.
template <class F>
auto guarded_pg(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const pqxx::unique_violation& e) {
    return make_error(errc::version_conflict, trimmed(e.what()));
  } catch (const pqxx::broken_connection& e) {
    return make_error(errc::postgres_unavailable, trimmed(e.what()));
  } catch (const pqxx::sql_error& e) {
    // Server-side errors in the connection or admin classes mean it is going away (shutdown,
    // crash recovery): unavailable, retry later. Anything else is a real error.
    auto state = e.sqlstate();
    if (state.rfind("08", 0) == 0 || state.rfind("57", 0) == 0)
      return make_error(errc::postgres_unavailable, trimmed(e.what()));
    return make_error(errc::storage_error, trimmed(e.what()));
  } catch (const std::exception& e) {
    return make_error(errc::postgres_unavailable, trimmed(e.what()));
  }
}

}  // namespace

struct journal_pg::connection {
  explicit connection(const std::string& dsn) : pg(dsn) {}
  pqxx::connection pg;
};

journal_pg::journal_pg(std::string dsn) : dsn_(std::move(dsn)) {}

journal_pg::~journal_pg() = default;

caf::error journal_pg::connect() {
  if (conn_ && conn_->pg.is_open()) return {};
  conn_.reset();
  return guarded_pg([&]() -> caf::error {
    conn_ = std::make_unique<connection>(dsn_);
    return {};
  });
}

caf::expected<int64_t> journal_pg::append(const std::string& stream, int64_t expected_version,
                                          const std::vector<new_event>& events) {
  if (auto err = connect()) return err;
  auto result = guarded_pg([&]() -> caf::expected<int64_t> {
    pqxx::work tx{conn_->pg};
    auto current =
        tx.exec_params1("SELECT coalesce(max(version), 0) FROM events WHERE stream = $1", stream)[0]
            .as<int64_t>();
    if (current != expected_version)
      return make_error(errc::version_conflict, stream + ": expected version " +
                                                    std::to_string(expected_version) +
                                                    ", stream is at " + std::to_string(current));
    auto version = expected_version;
    for (const auto& e : events) {
      ++version;
      pqxx::binarystring payload{e.payload};
      tx.exec_params(
          "WITH e AS (INSERT INTO events (stream, version, type, payload, metadata) "
          "VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING global_position) "
          "INSERT INTO outbox (global_position) SELECT global_position FROM e",
          stream, version, e.type, payload, e.metadata_json);
    }
    tx.commit();
    return version;
  });
  if (!result && result.error().code() == static_cast<uint8_t>(errc::postgres_unavailable))
    conn_.reset();  // reconnect on the next call
  return result;
}

caf::expected<std::vector<stored_event>> journal_pg::read(const std::string& stream,
                                                          int64_t after_version, size_t limit) {
  if (auto err = connect()) return err;
  auto result = guarded_pg([&]() -> caf::expected<std::vector<stored_event>> {
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
  });
  if (!result && result.error().code() == static_cast<uint8_t>(errc::postgres_unavailable))
    conn_.reset();
  return result;
}

caf::expected<int> apply_migrations(const std::string& dsn) {
  return guarded_pg([&]() -> caf::expected<int> {
    pqxx::connection conn{dsn};
    // Session-level: held until unlocked or the connection closes (also on an exception), across
    // the transactions below. libpqxx allows one transaction object at a time, hence the scopes.
    {
      pqxx::nontransaction lock{conn};
      lock.exec_params("SELECT pg_advisory_lock($1)", migration_lock_key);
    }
    int applied = 0;
    {
      pqxx::work tx{conn};
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          "version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
      tx.commit();
    }
    for (const auto& [version, sql] : migrations) {
      pqxx::work tx{conn};
      if (tx.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", version).size() != 0)
        continue;
      tx.exec(sql);
      tx.exec_params("INSERT INTO schema_migrations (version) VALUES ($1)", version);
      tx.commit();
      ++applied;
    }
    pqxx::nontransaction unlock{conn};
    unlock.exec_params("SELECT pg_advisory_unlock($1)", migration_lock_key);
    return applied;
  });
}

}  // namespace chorus::persistence
