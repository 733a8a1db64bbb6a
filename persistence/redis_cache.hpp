#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace chorus::persistence {

class redis_client;

/// Settings of a `redis_cache`.
struct redis_cache_config {
  /// Prepended to every key in Redis.
  std::string prefix = "chorus:cache:";
  /// Every entry's TTL is clamped to this. It bounds how long a value can stay stale when an
  /// invalidation is lost (this node crashed with it pending, or another node cannot reach
  /// Redis but still writes).
  std::chrono::milliseconds max_ttl{std::chrono::minutes{10}};
  /// Failed invalidations remembered at most; past that, this node bypasses the whole cache for
  /// `max_ttl` (after which every entry written before has expired).
  size_t max_pending = 10'000;
};

/// A read-through cache in Redis for values whose source of truth is elsewhere (PostgreSQL read
/// models). Readers call `get_or_load`; writers call `invalidate` after their write committed.
///
/// Correctness (see persistence/README.md): each entry is a hash {d: value, v: version};
/// `invalidate` bumps the version and drops the value, and a reader fills only if the version is
/// still the one it saw when it missed, so a slow reader cannot put back a value loaded before a
/// write. An invalidation that fails (Redis down) is remembered; this node bypasses the cache for
/// that key and replays the invalidation as soon as Redis answers again. Redis down otherwise
/// just means every read is a miss served by the loader.
///
/// Thread-safe: any thread may call it. Owned by whoever composes the node, sharing the
/// `redis_client`. The loader runs on the calling thread and must not throw.
class redis_cache {
 public:
  using loader = std::function<caf::expected<std::string>()>;

  explicit redis_cache(std::shared_ptr<redis_client> redis, redis_cache_config cfg = {});

  /// The cached value of `key`, else `load()`'s value, cached for `ttl` (clamped to 1 ms ..
  /// max_ttl). A loader error is returned and not cached. With Redis unavailable, the loader
  /// answers.
  caf::expected<std::string> get_or_load(const std::string& key, std::chrono::milliseconds ttl,
                                         const loader& load);

  /// Drops `key` everywhere. An error (Redis unavailable) needs no retry from the caller: the key
  /// is remembered, bypassed by this node and invalidated when Redis answers again.
  caf::error invalidate(const std::string& key);

  /// Failed invalidations not yet replayed.
  [[nodiscard]] size_t pending_invalidations() const;

 private:
  // Replays remembered invalidations if there are any and Redis answers.
  void replay_pending();
  void remember(const std::string& redis_key);
  [[nodiscard]] bool bypassed(const std::string& redis_key) const;
  [[nodiscard]] std::chrono::milliseconds tombstone_ttl() const;

  std::shared_ptr<redis_client> redis_;
  redis_cache_config cfg_;

  mutable std::mutex mtx_;
  // Redis key -> sequence number of its latest failed invalidation. A replay removes an entry
  // only if no newer failure replaced it meanwhile.
  std::unordered_map<std::string, uint64_t> pending_;
  uint64_t pending_seq_ = 0;
  bool replaying_ = false;
  std::chrono::steady_clock::time_point bypass_all_until_{};
  // Set while anything is pending or bypassed: the common path checks it without the mutex.
  std::atomic<bool> degraded_{false};
};

}  // namespace chorus::persistence
