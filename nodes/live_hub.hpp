#pragma once

#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include "actors/live_subscribers.hpp"
#include "messages/caf_types.hpp"
#include "messages/live.hpp"

namespace chorus {

/// A node's live-event hub: entities on this node publish live events to it (`live_event`
/// with `fan_out`), it hands them to this node's subscribers (the WebSocket edge) and to the
/// hub of every live peer, which hands them to its own. So a client connected to any node hears
/// an entity on any node. The membership actor keeps it told which peers are live.
///
/// Every event goes to every peer: O(nodes) messages per event, cheap for the clusters of
/// cluster.conf (a handful of nodes); a topic directory would cut it when clusters grow.
using live_hub_actor = live_hub::extend<
    /// A peer is live; its hub.
    caf::reacts_to<peer_up_atom, std::string, live_hub>,
    /// A peer is gone.
    caf::reacts_to<peer_down_atom, std::string>>;

/// `local` may be null (a node without an edge). It must be thread-safe and never block.
live_hub_actor spawn_live_hub(caf::actor_system& sys, std::shared_ptr<live_subscribers> local);

}  // namespace chorus
