#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "common/strong_id.hpp"

namespace chorus {

// Declared where it is first needed; an identical alias elsewhere is a valid redeclaration, so
// it can move to the user domain's types header when that exists.
struct user_id_tag;
using user_id = strong_id<user_id_tag>;

}  // namespace chorus

namespace chorus::persistence {

class redis_client;

enum class presence_status : uint8_t { offline, online, away };

const char* to_string(presence_status x) noexcept;

/// Who is online: one Redis key per user holding "online" or "away", with an expiry. A session
/// refreshes its user's key (e.g. on every heartbeat, TTL a few heartbeats long): a user whose
/// sessions all vanish without saying goodbye turns offline when the key expires.
///
/// Thread-safe: any thread may call it. Owned by whoever composes the node, sharing the
/// `redis_client`. Failures are `redis_unavailable` values; callers decide (the edge shows
/// everyone offline while Redis is down).
class presence_store {
 public:
  explicit presence_store(std::shared_ptr<redis_client> redis,
                          std::string prefix = "chorus:presence:");

  /// Marks `user` online or away for `ttl` (at least 1 ms). `offline` deletes the key, like
  /// `set_offline`.
  caf::error set_online(const user_id& user, presence_status status, std::chrono::milliseconds ttl);

  caf::error set_offline(const user_id& user);

  /// The user's status; `offline` when the key is absent or expired (or holds a value this
  /// version does not know).
  caf::expected<presence_status> get(const user_id& user);

  /// Statuses of `users`, in the same order, in one round trip (MGET).
  caf::expected<std::vector<presence_status>> get_many(const std::vector<user_id>& users);

 private:
  [[nodiscard]] std::string key_of(const user_id& user) const { return prefix_ + user.str(); }

  std::shared_ptr<redis_client> redis_;
  std::string prefix_;
};

}  // namespace chorus::persistence
