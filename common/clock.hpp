#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

namespace chorus {

/// Wall-clock time as Unix milliseconds (what events and expiries store).
inline int64_t unix_ms_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// The monotonic clock in nanoseconds (durations and ages, never stored).
inline int64_t steady_ns_now() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

/// Unix milliseconds as RFC 3339 in UTC to the second, e.g. "2026-11-25T18:04:05Z" (what API
/// bodies carry: protobuf's JSON mapping renders int64 as strings anyway).
inline std::string rfc3339(int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace chorus
