#pragma once

#include <memory>
#include <string>

#include "persistence/journal.hpp"

namespace chorus::persistence {

/// The journal on PostgreSQL (tables `events`, `snapshots`, and the `outbox` row of each
/// transaction that appends, written by the same statement as its events). One connection; not
/// thread-safe: owned by one thread (a worker of the journal actor, or a test). Connects lazily,
/// applies pending migrations on its first connection, and reconnects after a failure, so a
/// PostgreSQL restart needs no restart here. libpqxx exceptions never leave this class: every
/// failure is an error value.
class journal_pg : public journal {
 public:
  explicit journal_pg(std::string dsn);
  ~journal_pg() override;

  caf::expected<int64_t> append(const std::string& stream, int64_t expected_version,
                                const std::vector<new_event>& events) override;
  caf::expected<std::vector<bool>> append_batch(const std::vector<append_request>& batch) override;
  caf::expected<std::vector<stored_event>> read(const std::string& stream, int64_t after_version,
                                                size_t limit) override;
  caf::expected<loaded_stream> load(const std::string& stream, int64_t after_version) override;
  caf::error save_snapshot(const std::string& stream, int64_t version, const std::string& type,
                           const std::string& payload) override;

 private:
  caf::error connect();
  template <class T>
  T checked(T result);

  struct connection;  // wraps pqxx::connection, so no header above persistence/ sees libpqxx
  std::string dsn_;
  std::unique_ptr<connection> conn_;
  bool migrated_ = false;
};

/// Applies the migrations (persistence/migrations/*.sql) not yet applied, under a PostgreSQL
/// advisory lock so that nodes starting together apply each exactly once. Returns how many it
/// applied.
caf::expected<int> apply_migrations(const std::string& dsn);

/// `dsn` with libpq's connect_timeout (seconds) added, for a URI or a key=value string.
std::string with_connect_timeout(const std::string& dsn, int seconds);

}  // namespace chorus::persistence
