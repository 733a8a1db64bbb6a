#include <doctest/doctest.h>

#include <chrono>
#include <optional>

#include "persistence/gcra.hpp"

using namespace chorus::persistence;
using namespace std::chrono_literals;
using std::chrono::microseconds;

namespace {

// A key's stored TAT and a clock the test moves by hand: time is injected, nothing sleeps.
struct limiter_under_test {
  explicit limiter_under_test(gcra_limit l) : limit(l) {}

  gcra_limit limit;
  std::optional<microseconds> tat;
  microseconds now{1'700'000'000'000'000};

  gcra_result check(int64_t cost = 1) {
    auto step = gcra_decide(tat, now, limit, cost);
    if (step.result.allowed) tat = step.tat;
    return step.result;
  }
};

}  // namespace

TEST_CASE("a fresh key takes exactly its burst at once, then is refused") {
  limiter_under_test l{{10, 1s, 5}};
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    auto r = l.check();
    CHECK(r.allowed);
    CHECK(r.remaining == 4 - i);
    CHECK(r.retry_after == 0us);
  }
  auto refused = l.check();
  CHECK_FALSE(refused.allowed);
  CHECK(refused.remaining == 0);
}

TEST_CASE("a refused request is told to retry after one emission interval, and then passes") {
  limiter_under_test l{{10, 1s, 3}};  // one request per 100 ms
  for (int i = 0; i < 3; ++i) REQUIRE(l.check().allowed);
  auto refused = l.check();
  REQUIRE_FALSE(refused.allowed);
  CHECK(refused.retry_after == 100ms);
  CHECK(refused.reset_after == 300ms);
  l.now += 99ms;
  auto early = l.check();
  CHECK_FALSE(early.allowed);
  CHECK(early.retry_after == 1ms);
  l.now += 1ms;
  auto on_time = l.check();
  CHECK(on_time.allowed);
  CHECK(on_time.remaining == 0);
}

TEST_CASE("requests arriving at exactly the rate are all allowed, forever") {
  limiter_under_test l{{4, 1s, 1}};  // 250 ms apart, no burst beyond one
  for (int i = 0; i < 1000; ++i) {
    CAPTURE(i);
    REQUIRE(l.check().allowed);
    l.now += 250ms;
  }
  // Faster than the rate is refused even though the burst of one was never "used up" at once.
  REQUIRE(l.check().allowed);
  l.now += 249ms;
  CHECK_FALSE(l.check().allowed);
}

TEST_CASE("an idle key refills to a full burst and no further") {
  limiter_under_test l{{1, 1s, 3}};
  for (int i = 0; i < 3; ++i) REQUIRE(l.check().allowed);
  CHECK_FALSE(l.check().allowed);
  l.now += 1s;
  auto one = l.check();
  CHECK(one.allowed);
  CHECK(one.remaining == 0);
  l.now += 1h;
  for (int i = 0; i < 3; ++i) CHECK(l.check().allowed);
  CHECK_FALSE(l.check().allowed);
}

TEST_CASE("remaining and reset_after describe the state left after an allowed request") {
  limiter_under_test l{{2, 1s, 4}};  // 500 ms per request
  auto first = l.check();
  CHECK(first.remaining == 3);
  CHECK(first.reset_after == 500ms);
  auto second = l.check(2);
  CHECK(second.allowed);
  CHECK(second.remaining == 1);
  CHECK(second.reset_after == 1500ms);
  l.now += 250ms;  // half an interval gives back nothing whole yet
  auto peek = l.check(0);
  CHECK(peek.allowed);
  CHECK(peek.remaining == 1);
  CHECK(peek.reset_after == 1250ms);
}

TEST_CASE("a costly request takes several units and is refused when they are not all there") {
  limiter_under_test l{{10, 1s, 5}};
  REQUIRE(l.check(3).allowed);
  auto too_much = l.check(3);
  CHECK_FALSE(too_much.allowed);
  CHECK(too_much.remaining == 2);
  CHECK(too_much.retry_after == 100ms);
  CHECK(l.check(2).allowed);
}

TEST_CASE("a request costing more than the burst is refused with no retry time, even when idle") {
  limiter_under_test l{{10, 1s, 5}};
  auto r = l.check(6);
  CHECK_FALSE(r.allowed);
  CHECK(r.retry_after == gcra_result::never);
  CHECK(r.remaining == 5);
  CHECK_FALSE(l.tat.has_value());
  CHECK(l.check(5).allowed);
}

TEST_CASE("a stored TAT in the past counts as a fresh key") {
  gcra_limit limit{10, 1s, 2};
  auto now = microseconds{5'000'000};
  auto fresh = gcra_decide(std::nullopt, now, limit);
  auto old = gcra_decide(now - 10s, now, limit);
  CHECK(fresh.result.allowed == old.result.allowed);
  CHECK(fresh.result.remaining == old.result.remaining);
  CHECK(fresh.tat == old.tat);
}

TEST_CASE("degenerate limits are clamped rather than dividing by zero") {
  gcra_limit zero{0, 0us, 0};
  CHECK(zero.emission_interval() == 1us);
  CHECK(zero.capacity() == 1);
  auto r = gcra_decide(std::nullopt, microseconds{0}, zero);
  CHECK(r.result.allowed);
}
