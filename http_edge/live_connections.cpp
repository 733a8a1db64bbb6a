#include "http_edge/live_connections.hpp"

#include <vector>

namespace chorus::edge {

void live_connections::subscribe(const std::string& topic,
                                 const std::shared_ptr<live_client>& client) {
  std::lock_guard<std::mutex> guard{mutex_};
  topics_[topic][client.get()] = client;
}

void live_connections::unsubscribe(const std::string& topic, const live_client* client) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = topics_.find(topic);
  if (i == topics_.end()) return;
  i->second.erase(client);
  if (i->second.empty()) topics_.erase(i);
}

void live_connections::deliver(const std::string& topic, const std::string& json) {
  std::vector<std::shared_ptr<live_client>> targets;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto i = topics_.find(topic);
    if (i == topics_.end()) return;
    for (auto j = i->second.begin(); j != i->second.end();) {
      if (auto c = j->second.lock()) {
        targets.push_back(std::move(c));
        ++j;
      } else {
        j = i->second.erase(j);
      }
    }
    if (i->second.empty()) topics_.erase(i);
  }
  if (targets.empty()) return;
  // Topics are made by the edge and the entities from ids: nothing in them needs escaping.
  auto frame = std::make_shared<const std::string>(R"({"type":"event","topic":")" + topic +
                                                   R"(","data":)" + json + "}");
  for (const auto& c : targets) c->push(frame);
}

void live_connections::revoke(const std::string& topic, const std::string& user) {
  std::vector<std::shared_ptr<live_client>> targets;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto i = topics_.find(topic);
    if (i == topics_.end()) return;
    for (auto j = i->second.begin(); j != i->second.end();) {
      auto c = j->second.lock();
      if (!c || c->user() == user) {
        if (c) targets.push_back(std::move(c));
        j = i->second.erase(j);
      } else {
        ++j;
      }
    }
    if (i->second.empty()) topics_.erase(i);
  }
  for (const auto& c : targets) c->revoked(topic);
}

int live_connections::count_user(const std::string& user, int delta) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& n = users_[user];
  n += delta;
  int out = n;
  if (n <= 0) users_.erase(user);
  return out;
}

size_t live_connections::size() const {
  std::lock_guard<std::mutex> guard{mutex_};
  size_t n = 0;
  for (const auto& [topic, clients] : topics_) n += clients.size();
  return n;
}

}  // namespace chorus::edge
