#include "persistence/presence.hpp"

#include <algorithm>

#include "persistence/errc.hpp"
#include "persistence/redis_client.hpp"

namespace chorus::persistence {

const char* to_string(presence_status x) noexcept {
  switch (x) {
    case presence_status::offline:
      return "offline";
    case presence_status::online:
      return "online";
    case presence_status::away:
      return "away";
  }
  return "unknown";
}

namespace {

// The status of every key in KEYS over its nodes' unexpired marks ("status:expiry_ms", expiry by
// Redis's clock): 1 online, 2 away, 0 offline.
const char* status_lua = R"lua(
local function status_of(key, now)
  local fields = redis.call('HGETALL', key)
  local best = 0
  for i = 2, #fields, 2 do
    local status, expiry = string.match(fields[i], '^(%a+):(%d+)$')
    if status and tonumber(expiry) > now then
      if status == 'online' then return 1 end
      if status == 'away' then best = 2 end
    end
  end
  return best
end
)lua";

std::string now_lua() {
  return "local t = redis.call('TIME')\n"
         "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";
}

// KEYS[1] the user's hash; ARGV: node, status, ttl ms. Sets the node's mark, drops expired marks
// of other nodes, keeps the hash at least as long as this mark, and answers the status now.
const redis_script mark_script{std::string{status_lua} + now_lua() + R"lua(
local ttl = tonumber(ARGV[3])
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local expiry = string.match(fields[i + 1], ':(%d+)$')
  if fields[i] ~= ARGV[1] and (not expiry or tonumber(expiry) <= now) then
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. (now + ttl))
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return status_of(KEYS[1], now)
)lua"};

// KEYS[1] the user's hash; ARGV[1] the node. Removes the node's mark; answers the status left.
const redis_script leave_script{std::string{status_lua} + now_lua() + R"lua(
redis.call('HDEL', KEYS[1], ARGV[1])
return status_of(KEYS[1], now)
)lua"};

// KEYS: the users' hashes. Answers their statuses in order.
const redis_script status_script{std::string{status_lua} + now_lua() + R"lua(
local out = {}
for i = 1, #KEYS do out[i] = status_of(KEYS[i], now) end
return out
)lua"};

caf::expected<presence_status> status_of(const redis_reply& r) {
  if (!r.is_integer())
    return make_error(
        errc::storage_error,
        std::string{"redis presence script: expected an integer, got a "} + to_string(r.type));
  switch (r.integer) {
    case 1:
      return presence_status::online;
    case 2:
      return presence_status::away;
    default:
      return presence_status::offline;
  }
}

}  // namespace

presence_store::presence_store(std::shared_ptr<redis_client> redis, std::string node,
                               std::string prefix)
    : redis_(std::move(redis)), node_(std::move(node)), prefix_(std::move(prefix)) {}

caf::expected<presence_status> presence_store::set_online(const user_id& user,
                                                          presence_status status,
                                                          std::chrono::milliseconds ttl) {
  if (status == presence_status::offline) return set_offline(user);
  ttl = std::max(ttl, std::chrono::milliseconds{1});
  auto r = redis_->eval_script(mark_script, {key_of(user)},
                               {node_, to_string(status), std::to_string(ttl.count())});
  if (!r) return std::move(r.error());
  return status_of(*r);
}

caf::expected<presence_status> presence_store::set_offline(const user_id& user) {
  auto r = redis_->eval_script(leave_script, {key_of(user)}, {node_});
  if (!r) return std::move(r.error());
  return status_of(*r);
}

caf::expected<presence_status> presence_store::get(const user_id& user) {
  auto many = get_many({user});
  if (!many) return std::move(many.error());
  return many->front();
}

caf::expected<std::vector<presence_status>> presence_store::get_many(
    const std::vector<user_id>& users) {
  std::vector<presence_status> out;
  if (users.empty()) return out;
  std::vector<std::string> keys;
  keys.reserve(users.size());
  for (const auto& u : users) keys.push_back(key_of(u));
  auto r = redis_->eval_script(status_script, keys, {});
  if (!r) return std::move(r.error());
  if (!r->is_array() || r->elements.size() != users.size())
    return make_error(errc::storage_error, "redis presence: expected " +
                                               std::to_string(users.size()) + " statuses, got a " +
                                               to_string(r->type) + " reply");
  out.reserve(users.size());
  for (const auto& e : r->elements) {
    auto s = status_of(e);
    if (!s) return std::move(s.error());
    out.push_back(*s);
  }
  return out;
}

}  // namespace chorus::persistence
