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

/// Who is online: one Redis hash per user, with a field per node that holds connections of the
/// user ("online"/"away" and when that mark expires, by Redis's clock). The user is online when
/// any node's mark is online and unexpired, away when only away marks are, else offline. So a
/// user connected on two nodes stays online when one node's last connection closes, and a node
/// that vanishes without saying goodbye stops counting once its mark expires. A session
/// refreshes its node's mark (on every session check, the TTL a few checks long).
///
/// Thread-safe: any thread may call it. Owned by whoever composes the node, sharing the
/// `redis_client`. Failures are `redis_unavailable` values; callers decide (the edge shows
/// everyone offline while Redis is down).
class presence_store {
 public:
  /// `node` names this node's marks.
  presence_store(std::shared_ptr<redis_client> redis, std::string node,
                 std::string prefix = "chorus:presence:");

  /// Marks `user` online or away on this node for `ttl` (at least 1 ms) and answers the user's
  /// status now, over every node's mark. `offline` removes this node's mark, like `set_offline`.
  caf::expected<presence_status> set_online(const user_id& user, presence_status status,
                                            std::chrono::milliseconds ttl);

  /// Removes this node's mark (its last connection of the user closed) and answers the user's
  /// status now, from the other nodes' marks.
  caf::expected<presence_status> set_offline(const user_id& user);

  /// The user's status over every node's mark (`offline` when there is none unexpired).
  caf::expected<presence_status> get(const user_id& user);

  /// Statuses of `users`, in the same order, in one round trip.
  caf::expected<std::vector<presence_status>> get_many(const std::vector<user_id>& users);

 private:
  [[nodiscard]] std::string key_of(const user_id& user) const { return prefix_ + user.str(); }

  std::shared_ptr<redis_client> redis_;
  std::string node_;
  std::string prefix_;
};

}  // namespace chorus::persistence
