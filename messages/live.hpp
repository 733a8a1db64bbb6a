#pragma once

#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

namespace chorus {

/// A live event for clients connected to the edge (WebSocket): a topic such as
/// "users/<id>/notifications" and the JSON the clients receive. Live events are not durable:
/// a client that is not connected when one is published never sees it.
struct live_event {
  std::string topic;
  std::string json;
  /// Set by the publisher's node: its hub hands the event to every peer's hub too. Peers
  /// deliver to their own subscribers only.
  bool fan_out = true;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, live_event& x) {
  return f(caf::meta::type_name("chorus::live_event"), x.topic, x.json, x.fan_out);
}

/// Ends `user`'s subscriptions to `topic` on every node (a member who left a chat room or was
/// banned from it stops hearing it): its connections are told, and the topic is dropped.
struct live_revoke {
  std::string topic;
  std::string user;
  /// As live_event's: set by the publisher's node.
  bool fan_out = true;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, live_revoke& x) {
  return f(caf::meta::type_name("chorus::live_revoke"), x.topic, x.user, x.fan_out);
}

/// Which topics a node's edge has subscribers for, so that events go only to the nodes that
/// want them. From the edge to its own hub (`node` empty: announce to every peer, then tell the
/// edge `interest_ready`), and from hub to hub (`snapshot`: the sender's whole interest, which
/// replaces what the receiver knew of it). Answered once applied.
struct live_interest {
  std::string node;
  std::vector<std::string> topics;
  bool on = true;
  bool snapshot = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, live_interest& x) {
  return f(caf::meta::type_name("chorus::live_interest"), x.node, x.topics, x.on, x.snapshot);
}

/// A node's live-event hub as entities and peers see it: it takes an event (or a revocation)
/// and hands it to whichever edge connections on its node subscribed to the topic and, when
/// `fan_out`, to the hub of every peer that has subscribers for it: one message per node that
/// wants it, never one per subscriber. Fire and forget.
using live_hub = caf::typed_actor<caf::reacts_to<live_event>, caf::reacts_to<live_revoke>,
                                  caf::replies_to<live_interest>::with<bool>>;

/// The topic of a user's own notifications.
inline std::string notifications_topic(const std::string& user_id) {
  return "users/" + user_id + "/notifications";
}

}  // namespace chorus
