#include "persistence/rate_limiter.hpp"

#include <algorithm>

#include "persistence/redis_client.hpp"

namespace chorus::persistence {

using std::chrono::microseconds;

const char* to_string(rate_source x) noexcept {
  switch (x) {
    case rate_source::redis:
      return "redis";
    case rate_source::local:
      return "local";
  }
  return "unknown";
}

namespace {

// gcra_decide in Lua, on Redis's clock (TIME: one clock for all nodes). Times are integral
// microseconds; they stay below 2^53, so Lua's doubles hold them exactly, and string.format
// '%d' writes them without an exponent.
// KEYS[1] the key's TAT; ARGV: emission interval (µs), burst, cost.
// Returns {allowed, remaining, retry_after µs (-1: never), reset_after µs}.
const redis_script gcra_script{R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local function fitting(x)
  return math.max(0, math.floor((tolerance - (x - now)) / interval))
end
if cost > burst then
  return {0, fitting(tat), -1, tat - now}
end
local next_tat = tat + interval * cost
local allow_at = next_tat - tolerance
if now < allow_at then
  return {0, fitting(tat), allow_at - now, tat - now}
end
local ttl = next_tat - now
if ttl > 0 then
  redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', string.format('%d', math.ceil(ttl / 1000)))
end
return {1, fitting(next_tat), 0, ttl}
)lua"};

microseconds local_now() {
  return std::chrono::duration_cast<microseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

}  // namespace

rate_limiter::rate_limiter(std::shared_ptr<redis_client> redis, rate_limiter_config cfg)
    : redis_(std::move(redis)), cfg_(std::move(cfg)) {
  cfg_.local_max_keys = std::max<size_t>(cfg_.local_max_keys, 1);
}

rate_decision rate_limiter::check(std::string_view key, const gcra_limit& limit, int64_t cost) {
  cost = std::max<int64_t>(cost, 0);
  auto r = redis_->eval_script(gcra_script, {cfg_.prefix + std::string{key}},
                               {std::to_string(limit.emission_interval().count()),
                                std::to_string(limit.capacity()), std::to_string(cost)});
  // Any failure, unavailable or not, falls back: a limiter that stops limiting is worse.
  if (!r || !r->is_array() || r->elements.size() != 4) return check_local(key, limit, cost);
  for (const auto& e : r->elements)
    if (!e.is_integer()) return check_local(key, limit, cost);
  rate_decision out;
  out.allowed = r->elements[0].integer == 1;
  out.remaining = r->elements[1].integer;
  out.retry_after = microseconds{r->elements[2].integer};
  out.reset_after = microseconds{r->elements[3].integer};
  out.source = rate_source::redis;
  return out;
}

rate_decision rate_limiter::check_local(std::string_view key, const gcra_limit& limit,
                                        int64_t cost) {
  auto now = local_now();
  std::lock_guard guard{mtx_};
  std::string k{key};
  auto it = local_tats_.find(k);
  auto step = gcra_decide(it != local_tats_.end() ? std::optional{it->second} : std::nullopt, now,
                          limit, cost);
  if (step.result.allowed && step.tat > now) {
    if (it != local_tats_.end()) {
      it->second = step.tat;
    } else {
      if (local_tats_.size() >= cfg_.local_max_keys) {
        // A TAT in the past is the same as no entry: those go first.
        std::erase_if(local_tats_, [now](const auto& kv) { return kv.second <= now; });
        // Still full: forget a quarter, so the sweep is paid for once per many inserts.
        if (local_tats_.size() >= cfg_.local_max_keys)
          while (!local_tats_.empty() && local_tats_.size() >= cfg_.local_max_keys * 3 / 4)
            local_tats_.erase(local_tats_.begin());
      }
      local_tats_.emplace(std::move(k), step.tat);
    }
  }
  rate_decision out;
  static_cast<gcra_result&>(out) = step.result;
  out.source = rate_source::local;
  return out;
}

size_t rate_limiter::local_keys() const {
  std::lock_guard guard{mtx_};
  return local_tats_.size();
}

}  // namespace chorus::persistence
