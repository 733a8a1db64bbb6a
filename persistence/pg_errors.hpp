#pragma once

// Internal to persistence/: included only by .cpp files, since it includes libpqxx.

#include <exception>
#include <string>

#include <pqxx/pqxx>

#include "persistence/errc.hpp"

namespace chorus::persistence::detail {

inline std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

inline bool is_unavailable(const std::string& sqlstate) {
  // Connection exceptions (08) and operator intervention (57: shutdown, crash recovery,
  // statement timeout) mean the server is going away or overloaded: retry later.
  return sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57", 0) == 0;
}

/// Runs `f`, turning libpqxx's exceptions into error values at this boundary.
template <class F>
auto guarded_pg(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const pqxx::unique_violation& e) {
    return make_error(errc::version_conflict, trimmed(e.what()));
  } catch (const pqxx::broken_connection& e) {
    return make_error(errc::postgres_unavailable, trimmed(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    // The connection broke during COMMIT: the outcome is unknown, so nothing is acknowledged.
    // Callers retry; idempotency keys in the events make the retry safe.
    return make_error(errc::postgres_unavailable, trimmed(e.what()));
  } catch (const pqxx::sql_error& e) {
    if (is_unavailable(e.sqlstate()))
      return make_error(errc::postgres_unavailable, trimmed(e.what()));
    return make_error(errc::storage_error, trimmed(e.what()));
  } catch (const std::exception& e) {
    return make_error(errc::postgres_unavailable, trimmed(e.what()));
  }
}

inline bool is_error(const caf::error& err, errc code) {
  // CAF 0.17: category() of an empty error dereferences null.
  return err && err.category() == errc_category && err.code() == static_cast<uint8_t>(code);
}

template <class T>
bool is_error(const caf::expected<T>& x, errc code) {
  return !x && is_error(x.error(), code);
}

}  // namespace chorus::persistence::detail
