#include "persistence/follows.hpp"

#include <string_view>

#include "messages/errors.hpp"
#include "messages/users.pb.h"
#include "persistence/journal_pg.hpp"
#include "persistence/pg_errors.hpp"

namespace chorus::persistence {

namespace {

constexpr std::string_view user_prefix = "user/";

// Cursor: "<since_ms>.<user id>" of the last row of the previous page.
bool parse_cursor(const std::string& cursor, int64_t& since_ms, std::string& id) {
  auto dot = cursor.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 18 || cursor.size() - dot - 1 > 64)
    return false;
  for (size_t i = 0; i < dot; ++i)
    if (cursor[i] < '0' || cursor[i] > '9') return false;
  since_ms = std::stoll(cursor.substr(0, dot));
  id = cursor.substr(dot + 1);
  return !id.empty();
}

}  // namespace

projection follows_projection() {
  projection p;
  p.name = "follows";
  p.schema = {
      "CREATE TABLE IF NOT EXISTS follows ("
      "follower text NOT NULL, followee text NOT NULL, since_ms bigint NOT NULL, "
      "position bigint NOT NULL, PRIMARY KEY (follower, followee))",
      "CREATE INDEX IF NOT EXISTS follows_by_followee ON follows (followee, since_ms DESC, "
      "follower DESC)",
      "CREATE INDEX IF NOT EXISTS follows_by_follower ON follows (follower, since_ms DESC, "
      "followee DESC)"};
  p.reset = [](sql_tx& tx) -> caf::error {
    auto done = tx.exec("DELETE FROM follows");
    return done ? caf::error{} : done.error();
  };
  p.apply = [](const stored_event& e, sql_tx& tx) -> caf::error {
    if (e.stream.rfind(user_prefix, 0) != 0) return {};
    auto follower = e.stream.substr(user_prefix.size());
    auto unreadable = [&] {
      // Stops here rather than skipping: a read model that silently misses an event is worse
      // than one that visibly stalls.
      return make_error(errc::storage_error, "follows: unreadable event at position " +
                                                 std::to_string(e.global_position));
    };
    if (e.type == messages::UserFollowed::descriptor()->full_name()) {
      messages::UserFollowed ev;
      if (!ev.ParseFromString(e.payload)) return unreadable();
      auto done = tx.exec(
          "INSERT INTO follows (follower, followee, since_ms, position) "
          "VALUES ($1, $2, $3::bigint, $4::bigint) ON CONFLICT (follower, followee) DO NOTHING",
          {follower, ev.target(), std::to_string(ev.at_ms()), std::to_string(e.global_position)});
      return done ? caf::error{} : done.error();
    }
    if (e.type == messages::UserUnfollowed::descriptor()->full_name()) {
      messages::UserUnfollowed ev;
      if (!ev.ParseFromString(e.payload)) return unreadable();
      auto done = tx.exec("DELETE FROM follows WHERE follower = $1 AND followee = $2",
                          {follower, ev.target()});
      return done ? caf::error{} : done.error();
    }
    return {};
  };
  return p;
}

struct follows_reader::connection {
  explicit connection(const std::string& dsn) : pg(dsn) {}
  pqxx::connection pg;
};

follows_reader::follows_reader(std::string dsn) : dsn_(with_connect_timeout(dsn, 2)) {}

follows_reader::~follows_reader() = default;

caf::expected<follow_rows> follows_reader::list(const std::string& user_id, bool followers,
                                                const std::string& cursor, int limit) {
  int64_t after_ms = INT64_MAX;
  std::string after_id;  // with INT64_MAX every row comes before the first page's "cursor"
  if (!cursor.empty() && !parse_cursor(cursor, after_ms, after_id))
    return make_error(domain_errc::validation, "cursor is not one this server made");
  std::lock_guard<std::mutex> guard{mutex_};
  auto result = detail::guarded_pg([&]() -> caf::expected<follow_rows> {
    if (!conn_ || !conn_->pg.is_open()) {
      conn_ = std::make_unique<connection>(dsn_);
      pqxx::nontransaction tx{conn_->pg};
      tx.exec("SET statement_timeout = 5000");
    }
    // The table exists once the projection ran; before that every list is empty.
    pqxx::read_transaction tx{conn_->pg};
    if (!tx.exec("SELECT to_regclass('follows') IS NOT NULL")[0][0].as<bool>())
      return follow_rows{};
    const char* sql =
        followers ? "SELECT follower, since_ms FROM follows WHERE followee = $1 AND "
                    "(since_ms, follower) < ($2::bigint, $3) ORDER BY since_ms DESC, follower "
                    "DESC LIMIT $4"
                  : "SELECT followee, since_ms FROM follows WHERE follower = $1 AND "
                    "(since_ms, followee) < ($2::bigint, $3) ORDER BY since_ms DESC, followee "
                    "DESC LIMIT $4";
    auto rows = tx.exec_params(sql, user_id, after_ms, after_id, limit + 1);
    follow_rows out;
    for (const auto& row : rows) {
      if (static_cast<int>(out.rows.size()) == limit) {
        const auto& last = out.rows.back();
        out.next_cursor = std::to_string(last.since_ms) + "." + last.user_id;
        break;
      }
      out.rows.push_back(follow_row{row[0].as<std::string>(), row[1].as<int64_t>()});
    }
    return out;
  });
  if (!result && detail::is_error(result.error(), errc::postgres_unavailable)) conn_.reset();
  return result;
}

}  // namespace chorus::persistence
