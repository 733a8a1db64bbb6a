#include "persistence/gcra.hpp"

#include <algorithm>

namespace chorus::persistence {

using std::chrono::microseconds;

microseconds gcra_limit::emission_interval() const noexcept {
  auto per = period.count() / std::max<int64_t>(rate, 1);
  return microseconds{std::max<int64_t>(per, 1)};
}

int64_t gcra_limit::capacity() const noexcept {
  return std::max<int64_t>(burst, 1);
}

gcra_step gcra_decide(std::optional<microseconds> tat, microseconds now, const gcra_limit& limit,
                      int64_t cost) {
  // With tolerance = interval * burst, a fresh key takes exactly `burst` requests at once; each
  // allowed request pushes the TAT one interval (times its cost) further into the future.
  auto interval = limit.emission_interval();
  auto burst = limit.capacity();
  cost = std::max<int64_t>(cost, 0);
  auto tolerance = interval * burst;
  auto current = std::max(tat.value_or(now), now);
  // How many cost-1 requests fit under the tolerance when the TAT is `t`.
  auto fitting = [&](microseconds t) {
    return std::max<int64_t>(0, (tolerance - (t - now)) / interval);
  };
  gcra_step out;
  out.tat = current;
  if (cost > burst) {
    out.result = {false, fitting(current), gcra_result::never, current - now};
    return out;
  }
  auto next = current + interval * cost;
  auto allow_at = next - tolerance;
  if (now < allow_at) {
    out.result = {false, fitting(current), allow_at - now, current - now};
    return out;
  }
  out.result = {true, fitting(next), microseconds{0}, next - now};
  out.tat = next;
  return out;
}

}  // namespace chorus::persistence
