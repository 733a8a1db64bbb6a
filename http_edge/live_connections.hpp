#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "actors/live_subscribers.hpp"

namespace chorus::edge {

/// One WebSocket connection as the subscription table sees it.
class live_client {
 public:
  virtual ~live_client() = default;
  /// The event loop the client lives on (an index into live_connections::set_loops), or any
  /// larger number for a client that takes push from any thread.
  [[nodiscard]] virtual size_t loop() const = 0;
  /// Sends `frame`, an event of `topic` as a whole WebSocket frame as it goes on the wire
  /// (ws_text_frame), or queues it; called on the client's loop, never blocks. A client that
  /// falls too far behind is disconnected by its connection, not buffered without bound.
  /// Returns whether it went out or was queued (false: the connection is closing, or no longer
  /// holds the topic).
  virtual bool push(const std::string& topic, const std::shared_ptr<const std::string>& frame) = 0;
  /// The signed-in user on the other end.
  [[nodiscard]] virtual const std::string& user() const = 0;
  /// The subscription to `topic` was ended by the server (see live_revoke); thread-safe.
  virtual void revoked(const std::string& topic) = 0;
  /// The subscription to `topic` is in place cluster-wide: events published from now on reach
  /// the client. Thread-safe; called once per subscribe.
  virtual void subscribed(const std::string& topic) = 0;
};

/// A WebSocket text frame (FIN, unmasked, as a server sends it) carrying `payload`.
std::string ws_text_frame(std::string_view payload);

/// The node's WebSocket subscriptions, topic -> connections: the node's live hub delivers here
/// and each subscribed connection gets the event. Thread-safe (one mutex; delivery holds it only
/// to collect the connections). An event is framed once, and each event loop gets it for all
/// its subscribers in one post; a loop sends the events in the order they came, at most
/// `step_sends` of them per turn, so that a room of thousands does not hold up the loop's
/// other connections (an HTTP answer, another room) for the whole fan-out.
class live_connections final : public live_subscribers {
 public:
  /// Runs a function on one event loop.
  using post_fn = std::function<void(std::function<void()>)>;
  /// Frames a loop sends per turn (about a millisecond) before its other work gets a turn.
  static constexpr size_t step_sends = 128;
  /// The edge's event loops (live_client::loop indexes them); set once, before any
  /// subscription.
  void set_loops(std::vector<post_fn> loops);
  /// Counts the frames handed to clients (a metric); set once, before set_loops.
  void set_sent_counter(std::function<void(size_t)> fn);

  /// Tells the node's hub that this node wants (`on`) or no longer wants a topic; called with
  /// the table's lock held, so the hub sees the changes in the order they happened. Set once,
  /// before any subscription; without it every subscription is confirmed at once.
  using interest_fn = std::function<void(const std::string& topic, bool on)>;
  void set_interest(interest_fn fn) { interest_ = std::move(fn); }

  /// Adds `client` to `topic`; `client->subscribed(topic)` follows, at once when the node
  /// wanted the topic already, else once every peer knows it does (interest_ready).
  void subscribe(const std::string& topic, const std::shared_ptr<live_client>& client);
  void interest_ready(const std::string& topic) override;
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
  std::unordered_map<std::string, std::vector<std::weak_ptr<live_client>>> pending_;
  interest_fn interest_;
  struct loop_queue;
  /// Sends from `q`'s events, at most step_sends, and posts itself again while anything is
  /// left. On q's loop.
  static void step(const std::shared_ptr<loop_queue>& q);

  /// Per loop, the events it still has to send (touched only on that loop).
  std::vector<std::shared_ptr<loop_queue>> queues_;
  std::function<void(size_t)> sent_;
};

}  // namespace chorus::edge
