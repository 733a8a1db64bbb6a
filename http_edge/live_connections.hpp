#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "actors/live_subscribers.hpp"

namespace chorus::edge {

/// One WebSocket connection as the subscription table sees it.
class live_client {
 public:
  virtual ~live_client() = default;
  /// Queues a text frame for the client; thread-safe, never blocks. A client that falls too far
  /// behind is disconnected by its connection, not buffered without bound.
  virtual void push(std::shared_ptr<const std::string> frame) = 0;
  /// The signed-in user on the other end.
  [[nodiscard]] virtual const std::string& user() const = 0;
  /// The subscription to `topic` was ended by the server (see live_revoke); thread-safe.
  virtual void revoked(const std::string& topic) = 0;
};

/// The node's WebSocket subscriptions, topic -> connections: the node's live hub delivers here
/// and each subscribed connection gets the event queued. Thread-safe (one mutex; delivery holds
/// it only to collect the connections).
class live_connections final : public live_subscribers {
 public:
  void subscribe(const std::string& topic, const std::shared_ptr<live_client>& client);
  void unsubscribe(const std::string& topic, const live_client* client);

  /// Sends {"type":"event","topic":<topic>,"data":<json>} to every subscriber of `topic`.
  void deliver(const std::string& topic, const std::string& json) override;

  /// Ends `user`'s subscriptions to `topic`; each of its connections is told (`revoked`).
  void revoke(const std::string& topic, const std::string& user) override;

  /// Counts a connection of `user` opening (+1) or closing (-1); returns how many it has on
  /// this node now (presence: the last one to close makes the user offline).
  int count_user(const std::string& user, int delta);

  /// Subscriptions held now (tests, metrics).
  [[nodiscard]] size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string,
                     std::unordered_map<const live_client*, std::weak_ptr<live_client>>>
      topics_;
  std::unordered_map<std::string, int> users_;
};

}  // namespace chorus::edge
