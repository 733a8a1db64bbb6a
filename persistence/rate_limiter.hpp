#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "persistence/gcra.hpp"

namespace chorus::persistence {

class redis_client;

/// Where a rate-limit decision was taken.
enum class rate_source : uint8_t {
  /// In Redis, atomically, on Redis's clock: the limit holds across every node.
  redis,
  /// In this process, because Redis was unavailable: the limit holds per node.
  local,
};

const char* to_string(rate_source x) noexcept;

/// A rate-limit decision and where it was taken.
struct rate_decision : gcra_result {
  rate_source source = rate_source::redis;
};

/// Settings of a `rate_limiter`.
struct rate_limiter_config {
  /// Prepended to every key in Redis.
  std::string prefix = "chorus:rl:";
  /// Keys the in-process fallback remembers at most; past that it forgets expired keys first,
  /// then arbitrary ones (which lets those keys through again: failing open for a few beats
  /// unbounded memory under a flood of distinct keys).
  size_t local_max_keys = 100'000;
};

/// Cluster-wide rate limits with GCRA: one Lua script reads and updates the key's TAT atomically
/// on Redis's clock, so all nodes share one limit per key. When Redis is unavailable the same
/// algorithm runs in process (per-key TATs in a bounded map), so the platform keeps limiting,
/// per node instead of per cluster, until Redis answers again. Never fails.
///
/// Thread-safe: any thread may call `check`. Owned by whoever composes the node (the HTTP edge
/// holds one), sharing the `redis_client`.
class rate_limiter {
 public:
  explicit rate_limiter(std::shared_ptr<redis_client> redis, rate_limiter_config cfg = {});

  /// Counts a request of `cost` against `key` (e.g. "login:ip:10.0.0.1") under `limit`.
  rate_decision check(std::string_view key, const gcra_limit& limit, int64_t cost = 1);

  /// Keys the in-process fallback currently tracks.
  [[nodiscard]] size_t local_keys() const;

 private:
  rate_decision check_local(std::string_view key, const gcra_limit& limit, int64_t cost);

  std::shared_ptr<redis_client> redis_;
  rate_limiter_config cfg_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::chrono::microseconds> local_tats_;
};

}  // namespace chorus::persistence
