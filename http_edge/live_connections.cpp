#include "http_edge/live_connections.hpp"

#include <vector>

namespace chorus::edge {

void live_connections::subscribe(const std::string& topic,
                                 const std::shared_ptr<live_client>& client) {
  bool wait = false;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto& clients = topics_[topic];
    bool first = clients.empty();
    clients[client.get()] = client;
    if (interest_) {
      auto pending = pending_.find(topic);
      if (pending != pending_.end()) {
        pending->second.push_back(client);  // the node's interest is on its way
        wait = true;
      } else if (first) {
        pending_[topic].push_back(client);
        wait = true;
        interest_(topic, true);
      }
    }
  }
  if (!wait) client->subscribed(topic);
}

void live_connections::interest_ready(const std::string& topic) {
  std::vector<std::weak_ptr<live_client>> waiting;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto i = pending_.find(topic);
    if (i == pending_.end()) return;
    waiting = std::move(i->second);
    pending_.erase(i);
  }
  for (const auto& w : waiting)
    if (auto c = w.lock()) c->subscribed(topic);
}

void live_connections::unsubscribe(const std::string& topic, const live_client* client) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = topics_.find(topic);
  if (i == topics_.end()) return;
  i->second.erase(client);
  if (!i->second.empty()) return;
  topics_.erase(i);
  if (interest_) interest_(topic, false);
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
    if (i->second.empty()) {
      topics_.erase(i);
      if (interest_) interest_(topic, false);
    }
  }
  if (targets.empty()) return;
  // Topics are made by the edge and the entities from ids: nothing in them needs escaping.
  auto frame = std::make_shared<const std::string>(R"({"type":"event","topic":")" + topic +
                                                   R"(","data":)" + json + "}");
  for (const auto& c : targets) c->push(frame);
}

void live_connections::revoke(const std::string& topic, const std::string& user) {
  std::vector<std::shared_ptr<live_client>> targets;
  // Every connection locked here is released after the lock: the last reference to one may be
  // dropped by then, and its destructor takes the lock.
  std::vector<std::shared_ptr<live_client>> others;
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
        others.push_back(std::move(c));
        ++j;
      }
    }
    if (i->second.empty()) {
      topics_.erase(i);
      if (interest_) interest_(topic, false);
    }
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
