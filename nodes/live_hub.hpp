#pragma once

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include "actors/live_subscribers.hpp"
#include "messages/caf_types.hpp"
#include "messages/live.hpp"

namespace chorus {

/// A node's live-event hub: entities on this node publish live events to it (`live_event`
/// with `fan_out`), it hands them to this node's subscribers (the WebSocket edge) and to the
/// hub of each live peer that has subscribers for the topic, which hands them to its own: one
/// message per interested node, however many subscribers it has. So a client connected to any
/// node hears an entity on any node. The membership actor keeps it told which peers are live.
///
/// Interest: the edge tells its hub when a topic gets its first subscriber or loses its last
/// (`live_interest`); the hub tells every peer and confirms the subscription to the edge once
/// they all acknowledged, so an event published after a client was told "subscribed" reaches
/// it. A peer's hub sends its whole interest when it comes up; until it has, it gets every
/// event (a node of an older version, which never sends one, keeps getting everything).
using live_hub_actor = live_hub::extend<
    /// A peer is live; its hub.
    caf::reacts_to<peer_up_atom, std::string, live_hub>,
    /// A peer is gone.
    caf::reacts_to<peer_down_atom, std::string>>;

/// `node` is this node's name; `local` may be null (a node without an edge) and must be
/// thread-safe and never block; `from_peers` (may be null) counts the events peers sent here.
live_hub_actor spawn_live_hub(caf::actor_system& sys, std::string node,
                              std::shared_ptr<live_subscribers> local,
                              prometheus::Counter* from_peers = nullptr);

}  // namespace chorus
