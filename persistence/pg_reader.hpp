#pragma once

// Internal to persistence/: included only by .cpp files, since it includes libpqxx.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <pqxx/pqxx>

#include <caf/expected.hpp>

#include "messages/errors.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/pg_errors.hpp"

namespace chorus::persistence {

/// The one connection of a read-model reader: opened on first use with a statement timeout,
/// used by one caller at a time (a mutex), dropped after a connection failure so that the next
/// call reconnects. Failures come back as error values (guarded_pg).
class pg_reader {
 public:
  explicit pg_reader(const std::string& dsn) : dsn_(with_connect_timeout(dsn, 2)) {}

  /// Runs `f(connection)` and returns what it returns (an expected).
  template <class F>
  auto with(F f) -> decltype(f(std::declval<pqxx::connection&>())) {
    std::lock_guard<std::mutex> guard{mutex_};
    auto result = detail::guarded_pg([&]() -> decltype(f(std::declval<pqxx::connection&>())) {
      if (!conn_ || !conn_->is_open()) {
        conn_ = std::make_unique<pqxx::connection>(dsn_);
        pqxx::nontransaction tx{*conn_};
        tx.exec("SET statement_timeout = 5000");
      }
      return f(*conn_);
    });
    if (!result && detail::is_error(result.error(), errc::postgres_unavailable)) conn_.reset();
    return result;
  }

 private:
  std::string dsn_;
  std::mutex mutex_;
  std::unique_ptr<pqxx::connection> conn_;
};

/// A page cursor "<ms>.<id>" (the last row of the previous page); INT64_MAX and "" before the
/// first page, so every row sorts before it.
struct ms_cursor {
  int64_t ms = INT64_MAX;
  std::string id;
};

inline caf::expected<ms_cursor> parse_cursor(const std::string& cursor) {
  ms_cursor out;
  if (cursor.empty()) return out;
  auto dot = cursor.find('.');
  bool ok = dot != std::string::npos && dot > 0 && dot <= 18 && cursor.size() - dot - 1 <= 128 &&
            cursor.size() > dot + 1;
  for (size_t i = 0; ok && i < dot; ++i) ok = cursor[i] >= '0' && cursor[i] <= '9';
  if (!ok) return make_error(domain_errc::validation, "cursor is not one this server made");
  out.ms = std::stoll(cursor.substr(0, dot));
  out.id = cursor.substr(dot + 1);
  return out;
}

}  // namespace chorus::persistence
