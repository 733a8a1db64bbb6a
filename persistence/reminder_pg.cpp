#include "persistence/reminder_pg.hpp"

#include <exception>
#include <utility>

#include <pqxx/pqxx>

#include "persistence/errc.hpp"
#include "persistence/journal_pg.hpp"

namespace chorus::persistence {

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The same mapping as journal_pg's: connection (08) and operator intervention (57) SQLSTATEs
// mean "retry later"; anything else is a bug or bad data.
template <class F>
auto guarded_pg(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const pqxx::broken_connection& e) {
    return make_error(errc::postgres_unavailable, trimmed(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    return make_error(errc::postgres_unavailable, trimmed(e.what()));
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    if (state.rfind("08", 0) == 0 || state.rfind("57", 0) == 0)
      return make_error(errc::postgres_unavailable, trimmed(e.what()));
    return make_error(errc::storage_error, trimmed(e.what()));
  } catch (const std::exception& e) {
    return make_error(errc::postgres_unavailable, trimmed(e.what()));
  }
}

bool is_unavailable(const caf::error& err) {
  // CAF 0.17: category() of an empty error dereferences null.
  return err && err.category() == errc_category &&
         err.code() == static_cast<uint8_t>(errc::postgres_unavailable);
}

template <class T>
bool is_unavailable(const caf::expected<T>& x) {
  return !x && is_unavailable(x.error());
}

// Due times travel as exact Unix microseconds (timestamptz's resolution; extract() is numeric
// since PostgreSQL 14, so nothing is rounded).
constexpr const char* due_us = "(extract(epoch FROM due_at) * 1000000)::bigint";

// One statement, hence one transaction: lock the due rows nobody else holds, push them a lease
// into the future, return them.
constexpr const char* claim_sql = R"sql(
  WITH due AS (
    SELECT kind, id, name FROM reminders
    WHERE due_at <= now()
    ORDER BY due_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
  )
  UPDATE reminders r
  SET due_at = now() + $2 * interval '1 millisecond', attempts = r.attempts + 1
  FROM due
  WHERE r.kind = due.kind AND r.id = due.id AND r.name = due.name
  RETURNING r.kind, r.id, r.name, (extract(epoch FROM r.due_at) * 1000000)::bigint,
            r.payload_type, r.payload, r.attempts
)sql";

stored_reminder reminder_of(const pqxx::row& row) {
  return stored_reminder{row[0].as<std::string>(), row[1].as<std::string>(),
                         row[2].as<std::string>(), row[3].as<int64_t>(),
                         row[4].as<std::string>(), pqxx::binarystring{row[5]}.str(),
                         row[6].as<int32_t>()};
}

}  // namespace

struct reminder_pg::connection {
  explicit connection(const std::string& dsn) : pg(dsn) {}
  pqxx::connection pg;
};

reminder_pg::reminder_pg(std::string dsn) : dsn_(with_connect_timeout(dsn, 2)) {}

reminder_pg::~reminder_pg() = default;

caf::error reminder_pg::connect() {
  if (conn_ && conn_->pg.is_open()) return {};
  conn_.reset();
  if (!migrated_) {
    // The journal applies migrations on its first connection too; whichever comes first does
    // the work under the advisory lock, the other finds nothing left.
    auto applied = apply_migrations(dsn_);
    if (!applied) return applied.error();
    migrated_ = true;
  }
  return guarded_pg([&]() -> caf::error {
    auto conn = std::make_unique<connection>(dsn_);
    {
      pqxx::nontransaction tx{conn->pg};
      tx.exec("SET statement_timeout = 10000");
    }
    conn->pg.prepare("chorus_claim_reminders", claim_sql);
    conn_ = std::move(conn);
    return {};
  });
}

template <class T>
T reminder_pg::checked(T result) {
  if (is_unavailable(result)) conn_.reset();
  return result;
}

caf::error reminder_pg::schedule(const std::string& kind, const std::string& id,
                                 const std::string& name, int64_t due_unix_ms,
                                 const std::string& payload_type, const std::string& payload) {
  if (auto err = connect()) return err;
  return checked(guarded_pg([&]() -> caf::error {
    pqxx::work tx{conn_->pg};
    pqxx::binarystring bytes{payload};
    tx.exec_params(
        "INSERT INTO reminders (kind, id, name, due_at, payload_type, payload, attempts) "
        "VALUES ($1, $2, $3, 'epoch'::timestamptz + $4 * interval '1 millisecond', $5, $6, 0) "
        "ON CONFLICT (kind, id, name) DO UPDATE SET due_at = EXCLUDED.due_at, "
        "payload_type = EXCLUDED.payload_type, payload = EXCLUDED.payload, attempts = 0",
        kind, id, name, due_unix_ms, payload_type, bytes);
    tx.commit();
    return {};
  }));
}

caf::expected<bool> reminder_pg::cancel(const std::string& kind, const std::string& id,
                                        const std::string& name) {
  if (auto err = connect()) return err;
  return checked(guarded_pg([&]() -> caf::expected<bool> {
    pqxx::work tx{conn_->pg};
    auto rows = tx.exec_params("DELETE FROM reminders WHERE kind = $1 AND id = $2 AND name = $3",
                               kind, id, name);
    tx.commit();
    return rows.affected_rows() > 0;
  }));
}

caf::expected<std::vector<stored_reminder>> reminder_pg::claim_due(
    size_t limit, std::chrono::milliseconds lease) {
  if (auto err = connect()) return err;
  return checked(guarded_pg([&]() -> caf::expected<std::vector<stored_reminder>> {
    pqxx::work tx{conn_->pg};
    auto rows = tx.exec_prepared("chorus_claim_reminders", static_cast<int64_t>(limit),
                                 static_cast<int64_t>(lease.count()));
    tx.commit();
    std::vector<stored_reminder> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.push_back(reminder_of(row));
    return out;
  }));
}

caf::expected<bool> reminder_pg::complete(const std::string& kind, const std::string& id,
                                          const std::string& name, int64_t claimed_due_at_us) {
  if (auto err = connect()) return err;
  return checked(guarded_pg([&]() -> caf::expected<bool> {
    pqxx::work tx{conn_->pg};
    auto rows = tx.exec_params(std::string{"DELETE FROM reminders "
                                           "WHERE kind = $1 AND id = $2 AND name = $3 AND "} +
                                   due_us + " = $4",
                               kind, id, name, claimed_due_at_us);
    tx.commit();
    return rows.affected_rows() > 0;
  }));
}

caf::expected<std::optional<stored_reminder>> reminder_pg::find(const std::string& kind,
                                                                const std::string& id,
                                                                const std::string& name) {
  if (auto err = connect()) return err;
  return checked(guarded_pg([&]() -> caf::expected<std::optional<stored_reminder>> {
    pqxx::read_transaction tx{conn_->pg};
    auto rows = tx.exec_params(std::string{"SELECT kind, id, name, "} + due_us +
                                   ", payload_type, payload, attempts FROM reminders "
                                   "WHERE kind = $1 AND id = $2 AND name = $3",
                               kind, id, name);
    if (rows.empty()) return std::optional<stored_reminder>{};
    return std::optional<stored_reminder>{reminder_of(rows[0])};
  }));
}

}  // namespace chorus::persistence
