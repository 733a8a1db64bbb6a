#include <doctest/doctest.h>

#include "persistence/notify_store.hpp"

using chorus::persistence::after_quiet_hours;

namespace {

// 2026-12-01T00:00:00Z in Unix ms, and a minute.
constexpr int64_t midnight = 1'796'083'200'000;
constexpr int64_t minute = 60'000;

}  // namespace

TEST_CASE("quiet hours: outside them a delivery goes at once, inside it waits for their end") {
  // 22:00-07:00 UTC.
  CHECK(after_quiet_hours(midnight + 12 * 60 * minute, 22 * 60, 7 * 60, 0) ==
        midnight + 12 * 60 * minute);
  CHECK(after_quiet_hours(midnight + 23 * 60 * minute, 22 * 60, 7 * 60, 0) ==
        midnight + (24 + 7) * 60 * minute);
  CHECK(after_quiet_hours(midnight + 3 * 60 * minute, 22 * 60, 7 * 60, 0) ==
        midnight + 7 * 60 * minute);
  CHECK(after_quiet_hours(midnight + 7 * 60 * minute, 22 * 60, 7 * 60, 0) ==
        midnight + 7 * 60 * minute);  // the end itself is not quiet
  // 13:00-14:00 within one day.
  CHECK(after_quiet_hours(midnight + 13 * 60 * minute + 5 * minute, 13 * 60, 14 * 60, 0) ==
        midnight + 14 * 60 * minute);
  // No quiet hours.
  CHECK(after_quiet_hours(midnight + 5, 0, 0, 0) == midnight + 5);
}

TEST_CASE("quiet hours are the user's local time: UTC plus its offset") {
  // 22:00-07:00 at UTC+2 is 20:00-05:00 UTC.
  CHECK(after_quiet_hours(midnight + 21 * 60 * minute, 22 * 60, 7 * 60, 120) ==
        midnight + (24 + 5) * 60 * minute);
  CHECK(after_quiet_hours(midnight + 19 * 60 * minute, 22 * 60, 7 * 60, 120) ==
        midnight + 19 * 60 * minute);
  // At UTC-5, 23:30 UTC is 18:30 local: not quiet.
  CHECK(after_quiet_hours(midnight + 23 * 60 * minute + 30 * minute, 22 * 60, 7 * 60, -300) ==
        midnight + 23 * 60 * minute + 30 * minute);
}
