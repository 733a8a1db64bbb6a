#pragma once

#include <string>

namespace chorus {

/// Where a node's live-event hub (nodes/live_hub.hpp) hands events for clients connected to
/// this node: implemented by the WebSocket edge. `deliver` is called from an actor thread; it
/// must be thread-safe and must not block (it queues the event for each subscribed connection).
class live_subscribers {
 public:
  virtual ~live_subscribers() = default;
  virtual void deliver(const std::string& topic, const std::string& json) = 0;
  /// Ends `user`'s subscriptions to `topic` on this node (same rules as `deliver`).
  virtual void revoke(const std::string& topic, const std::string& user) = 0;
  /// Every peer now knows this node wants `topic` (or did not answer in time): subscriptions
  /// waiting for that may be confirmed to their clients.
  virtual void interest_ready(const std::string& topic) = 0;
};

}  // namespace chorus
