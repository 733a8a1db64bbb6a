#pragma once

#include <memory>
#include <string>

#include "persistence/journal.hpp"

namespace chorus::persistence {

/// The journal on PostgreSQL (table `events`, with the outbox row written in the same
/// transaction). One connection; not thread-safe: owned by one actor or thread. Connects lazily
/// and reconnects after a failure, so a PostgreSQL restart needs no restart here. libpqxx
/// exceptions never leave this class: every failure is an error value.
class journal_pg : public journal {
 public:
  explicit journal_pg(std::string dsn);
  ~journal_pg() override;

  caf::expected<int64_t> append(const std::string& stream, int64_t expected_version,
                                const std::vector<new_event>& events) override;
  caf::expected<std::vector<stored_event>> read(const std::string& stream, int64_t after_version,
                                                size_t limit) override;

 private:
  caf::error connect();

  struct connection;  // wraps pqxx::connection, so no header above persistence/ sees libpqxx
  std::string dsn_;
  std::unique_ptr<connection> conn_;
};

/// Applies the versioned schema migrations not yet applied, under a PostgreSQL advisory lock so
/// that nodes starting together apply each exactly once. Returns how many it applied.
caf::expected<int> apply_migrations(const std::string& dsn);

}  // namespace chorus::persistence
