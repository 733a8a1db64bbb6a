#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace chorus::persistence {

/// A rate limit: `rate` requests per `period` on average, at most `burst` at once.
struct gcra_limit {
  int64_t rate = 1;
  std::chrono::microseconds period{std::chrono::seconds{1}};
  int64_t burst = 1;

  /// The time one request "costs": period / rate, at least 1 µs.
  [[nodiscard]] std::chrono::microseconds emission_interval() const noexcept;
  /// `burst` clamped to at least 1.
  [[nodiscard]] int64_t capacity() const noexcept;
};

/// What a rate-limit check answers; enough for the `RateLimit`, `Retry-After` and
/// `X-RateLimit-*` headers of the edge.
struct gcra_result {
  /// `retry_after` of a request whose cost exceeds the burst: it will never be allowed.
  static constexpr std::chrono::microseconds never{-1};

  bool allowed = false;
  /// Requests of cost 1 that would still be allowed right now, after this one.
  int64_t remaining = 0;
  /// When refused: how long until the same request would be allowed (`never` if it cannot
  /// be). Zero when allowed.
  std::chrono::microseconds retry_after{0};
  /// How long until the limiter is back to a full burst.
  std::chrono::microseconds reset_after{0};

  /// `retry_after` in whole seconds, rounded up, at least 1: what Retry-After says.
  [[nodiscard]] int64_t retry_after_seconds() const noexcept {
    auto us = retry_after.count();
    return us <= 1000000 ? 1 : (us + 999999) / 1000000;
  }
};

/// One GCRA step: the result and the theoretical arrival time (TAT) to keep for the key.
struct gcra_step {
  gcra_result result;
  /// The TAT after this request: store it (until `tat - now`) when allowed; unchanged when
  /// refused, nothing to store.
  std::chrono::microseconds tat{0};
};

/// The generic cell rate algorithm, pure: `tat` is the key's stored TAT (none for a key never
/// seen or expired), `now` the current time on the same clock (any epoch), `cost` how many
/// requests this one counts for (0 asks without taking). The Lua script of `rate_limiter`
/// implements the same arithmetic on Redis's clock; this one serves the in-process fallback and
/// the unit tests.
gcra_step gcra_decide(std::optional<std::chrono::microseconds> tat, std::chrono::microseconds now,
                      const gcra_limit& limit, int64_t cost = 1);

}  // namespace chorus::persistence
