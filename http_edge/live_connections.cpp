#include "http_edge/live_connections.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
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

std::string ws_text_frame(std::string_view payload) {
  // RFC 6455 5.2: FIN + text opcode, then the length in 7 bits, or 126 and 16 bits, or 127 and
  // 64 bits (network order); a server's frames are not masked.
  std::string out;
  auto n = static_cast<uint64_t>(payload.size());
  out.reserve(payload.size() + 10);
  out.push_back(static_cast<char>(0x81));
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(126));
    for (int shift = 8; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((n >> shift) & 0xff));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  out.append(payload);
  return out;
}

/// One event on its way to the subscribers of one loop.
struct live_batch {
  std::shared_ptr<const std::string> topic;
  std::shared_ptr<const std::string> frame;
  std::vector<std::shared_ptr<live_client>> to;
  size_t next = 0;
};

struct live_connections::loop_queue {
  live_connections::post_fn post;
  std::function<void(size_t)> sent;
  std::deque<live_batch> batches;
  bool scheduled = false;  // a step is posted or running
};

void live_connections::set_loops(std::vector<post_fn> loops) {
  std::lock_guard<std::mutex> guard{mutex_};
  queues_.clear();
  for (auto& post : loops) {
    auto q = std::make_shared<loop_queue>();
    q->post = std::move(post);
    q->sent = sent_;
    queues_.push_back(std::move(q));
  }
}

void live_connections::set_sent_counter(std::function<void(size_t)> fn) {
  std::lock_guard<std::mutex> guard{mutex_};
  sent_ = std::move(fn);
}

void live_connections::step(const std::shared_ptr<loop_queue>& q) {
  size_t budget = step_sends;
  size_t n = 0;
  while (budget > 0 && !q->batches.empty()) {
    auto& b = q->batches.front();
    while (budget > 0 && b.next < b.to.size()) {
      n += b.to[b.next++]->push(*b.topic, b.frame) ? 1 : 0;
      --budget;
    }
    if (b.next == b.to.size()) q->batches.pop_front();
  }
  if (q->sent && n > 0) q->sent(n);
  if (q->batches.empty()) {
    q->scheduled = false;
    return;
  }
  q->post([q] { step(q); });
}

void live_connections::deliver(const std::string& topic, const std::string& json) {
  // Per loop the connections on it; the last slot takes those that push from any thread.
  std::vector<std::vector<std::shared_ptr<live_client>>> targets;
  std::vector<std::shared_ptr<loop_queue>> queues;
  std::function<void(size_t)> sent;
  bool any = false;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    // The edge may set its loops while a hub that started first already delivers.
    queues = queues_;
    sent = sent_;
    targets.resize(queues.size() + 1);
    auto i = topics_.find(topic);
    if (i == topics_.end()) return;
    for (auto j = i->second.begin(); j != i->second.end();) {
      if (auto c = j->second.lock()) {
        targets[std::min(c->loop(), queues.size())].push_back(std::move(c));
        any = true;
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
  if (!any) return;
  // Topics are made by the edge and the entities from ids: nothing in them needs escaping.
  auto frame = std::make_shared<const std::string>(
      ws_text_frame(R"({"type":"event","topic":")" + topic + R"(","data":)" + json + "}"));
  auto t = std::make_shared<const std::string>(topic);
  for (size_t l = 0; l < queues.size(); ++l) {
    if (targets[l].empty()) continue;
    // Queued on the loop itself: events leave each loop in the order they came.
    const auto& q = queues[l];
    q->post([q, b = live_batch{t, frame, std::move(targets[l])}]() mutable {
      q->batches.push_back(std::move(b));
      if (q->scheduled) return;
      q->scheduled = true;
      step(q);
    });
  }
  size_t n = 0;
  for (const auto& c : targets.back()) n += c->push(topic, frame) ? 1 : 0;
  if (sent && n > 0) sent(n);
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
