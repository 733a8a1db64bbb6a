#include "persistence/redis_cache.hpp"

#include <algorithm>
#include <vector>

#include "persistence/redis_client.hpp"

namespace chorus::persistence {

namespace {

using clock_type = std::chrono::steady_clock;

// Fills an entry only if its version is still the one the reader saw when it missed: an
// invalidation in between (a write) makes the loaded value suspect, so it is not cached.
// KEYS[1] entry; ARGV: version seen ('' = none), value, ttl ms.
const redis_script fill_script{R"lua(
local v = redis.call('HGET', KEYS[1], 'v') or ''
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
)lua"};

// Drops the value of every entry in KEYS and bumps its version; the version (a tombstone) lives
// ARGV[1] ms so that fills of loads that started before are refused.
const redis_script invalidate_script{R"lua(
for _, k in ipairs(KEYS) do
  redis.call('HINCRBY', k, 'v', 1)
  redis.call('HDEL', k, 'd')
  redis.call('PEXPIRE', k, ARGV[1])
end
return #KEYS
)lua"};

constexpr size_t replay_batch = 100;

}  // namespace

redis_cache::redis_cache(std::shared_ptr<redis_client> redis, redis_cache_config cfg)
    : redis_(std::move(redis)), cfg_(std::move(cfg)) {
  cfg_.max_ttl = std::max(cfg_.max_ttl, std::chrono::milliseconds{1});
  cfg_.max_pending = std::max<size_t>(cfg_.max_pending, 1);
}

std::chrono::milliseconds redis_cache::tombstone_ttl() const {
  // Longer than any entry and than any sane load.
  return std::max(cfg_.max_ttl, std::chrono::milliseconds{std::chrono::minutes{1}});
}

caf::expected<std::string> redis_cache::get_or_load(const std::string& key,
                                                    std::chrono::milliseconds ttl,
                                                    const loader& load) {
  auto k = cfg_.prefix + key;
  ttl = std::clamp(ttl, std::chrono::milliseconds{1}, cfg_.max_ttl);
  if (degraded_.load()) {
    replay_pending();
    if (bypassed(k)) return load();
  }
  auto r = redis_->call({"HMGET", k, "d", "v"});
  if (!r || !r->is_array() || r->elements.size() != 2) return load();  // Redis down: a miss
  if (r->elements[0].is_string()) return std::move(r->elements[0].str);
  auto seen = r->elements[1].is_string() ? r->elements[1].str : std::string{};
  auto value = load();
  if (!value) return value;
  // A fill that fails or is refused only costs the next reader a miss.
  static_cast<void>(
      redis_->eval_script(fill_script, {k}, {seen, *value, std::to_string(ttl.count())}));
  return value;
}

caf::error redis_cache::invalidate(const std::string& key) {
  auto k = cfg_.prefix + key;
  if (degraded_.load()) replay_pending();
  auto r = redis_->eval_script(invalidate_script, {k}, {std::to_string(tombstone_ttl().count())});
  if (r) return {};
  remember(k);
  return std::move(r.error());
}

void redis_cache::remember(const std::string& redis_key) {
  std::lock_guard guard{mtx_};
  if (pending_.size() >= cfg_.max_pending && !pending_.contains(redis_key))
    bypass_all_until_ = clock_type::now() + cfg_.max_ttl;  // this key is lost: wait it out
  else
    pending_[redis_key] = ++pending_seq_;
  degraded_ = true;
}

bool redis_cache::bypassed(const std::string& redis_key) const {
  std::lock_guard guard{mtx_};
  return clock_type::now() < bypass_all_until_ || pending_.contains(redis_key);
}

void redis_cache::replay_pending() {
  for (;;) {
    std::vector<std::pair<std::string, uint64_t>> batch;
    {
      std::lock_guard guard{mtx_};
      if (replaying_) return;  // another thread is at it; callers bypass pending keys meanwhile
      if (pending_.empty()) {
        if (clock_type::now() >= bypass_all_until_) degraded_ = false;
        return;
      }
      for (const auto& kv : pending_) {
        batch.push_back(kv);
        if (batch.size() == replay_batch) break;
      }
      replaying_ = true;
    }
    std::vector<std::string> keys;
    keys.reserve(batch.size());
    for (const auto& kv : batch) keys.push_back(kv.first);
    auto r =
        redis_->eval_script(invalidate_script, keys, {std::to_string(tombstone_ttl().count())});
    std::lock_guard guard{mtx_};
    replaying_ = false;
    if (!r) return;  // still down: the next call tries again (failing fast meanwhile)
    for (const auto& [k, seq] : batch)
      if (auto it = pending_.find(k); it != pending_.end() && it->second == seq) pending_.erase(it);
  }
}

size_t redis_cache::pending_invalidations() const {
  std::lock_guard guard{mtx_};
  return pending_.size();
}

}  // namespace chorus::persistence
