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

presence_status parse(const redis_reply& r) {
  if (!r.is_string()) return presence_status::offline;
  if (r.str == "online") return presence_status::online;
  if (r.str == "away") return presence_status::away;
  return presence_status::offline;
}

}  // namespace

presence_store::presence_store(std::shared_ptr<redis_client> redis, std::string prefix)
    : redis_(std::move(redis)), prefix_(std::move(prefix)) {}

caf::error presence_store::set_online(const user_id& user, presence_status status,
                                      std::chrono::milliseconds ttl) {
  if (status == presence_status::offline) return set_offline(user);
  ttl = std::max(ttl, std::chrono::milliseconds{1});
  return redis_->set(key_of(user), to_string(status), ttl);
}

caf::error presence_store::set_offline(const user_id& user) {
  auto r = redis_->del({key_of(user)});
  if (!r) return std::move(r.error());
  return {};
}

caf::expected<presence_status> presence_store::get(const user_id& user) {
  auto r = redis_->call({"GET", key_of(user)});
  if (!r) return std::move(r.error());
  return parse(*r);
}

caf::expected<std::vector<presence_status>> presence_store::get_many(
    const std::vector<user_id>& users) {
  std::vector<presence_status> out;
  if (users.empty()) return out;
  std::vector<std::string> argv;
  argv.reserve(users.size() + 1);
  argv.emplace_back("MGET");
  for (const auto& u : users) argv.push_back(key_of(u));
  auto r = redis_->call(argv);
  if (!r) return std::move(r.error());
  if (!r->is_array() || r->elements.size() != users.size())
    return make_error(errc::storage_error, "redis MGET: expected " + std::to_string(users.size()) +
                                               " values, got a " + to_string(r->type) + " reply");
  out.reserve(users.size());
  for (const auto& e : r->elements) out.push_back(parse(e));
  return out;
}

}  // namespace chorus::persistence
