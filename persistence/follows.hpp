#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "persistence/projection.hpp"

namespace chorus::persistence {

/// The projection `follows`: read model `follows (follower, followee, since, position)` from
/// the user entities' `UserFollowed` / `UserUnfollowed` events (streams `user/<id>`).
projection follows_projection();

/// One row of a follow list.
struct follow_row {
  std::string user_id;  ///< the other user
  int64_t since_ms = 0;
};

/// A page of a follow list, newest first, and the cursor of the next ("" at the end).
struct follow_rows {
  std::vector<follow_row> rows;
  std::string next_cursor;
};

/// Reads the `follows` read model. One connection, used by one caller at a time (a mutex);
/// reconnects after a failure. Errors are values (`postgres_unavailable`, `storage_error`, and
/// `bad_cursor` for a cursor it did not make).
class follows_reader {
 public:
  explicit follows_reader(std::string dsn);
  ~follows_reader();
  follows_reader(const follows_reader&) = delete;
  follows_reader& operator=(const follows_reader&) = delete;

  /// Who follows `user_id` (`followers`) or whom it follows, `limit` rows after `cursor`.
  caf::expected<follow_rows> list(const std::string& user_id, bool followers,
                                  const std::string& cursor, int limit);

 private:
  struct connection;
  std::string dsn_;
  std::mutex mutex_;
  std::unique_ptr<connection> conn_;
};

}  // namespace chorus::persistence
