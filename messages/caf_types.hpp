#pragma once

// The one CAF type-ID block of Chorus. Every node registers it the same way (see
// `chorus::register_caf_types`), because two nodes that disagree on a type's name receive empty
// messages. Commands and events travel as protobuf bytes inside a few envelope types; this block
// stays small on purpose.

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/type_id.hpp>

#include "messages/envelope.hpp"
#include "messages/journal_types.hpp"
#include "messages/live.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(chorus, caf::first_custom_type_id)

// The envelope every command to an entity travels in, and the handle type nodes exchange so
// that routers can reach each other's registries.
CAF_ADD_TYPE_ID(chorus, (chorus::entity_envelope))
CAF_ADD_TYPE_ID(chorus, (chorus::envelope_handler))
// Live events for WebSocket clients, and the hub handle nodes exchange to fan them out.
CAF_ADD_TYPE_ID(chorus, (chorus::live_event))
CAF_ADD_TYPE_ID(chorus, (chorus::live_hub))
// Node-local traffic between entities and their journal actor.
CAF_ADD_TYPE_ID(chorus, (std::vector<chorus::new_event>))
CAF_ADD_TYPE_ID(chorus, (chorus::loaded_stream))

// Router: a peer's registry became reachable / was lost.
CAF_ADD_ATOM(chorus, chorus, peer_up_atom, "peer_up")
CAF_ADD_ATOM(chorus, chorus, peer_down_atom, "peer_down")
// Registry: redeliver a message whose entity failed on it.
CAF_ADD_ATOM(chorus, chorus, retry_atom, "retry")
// Registry: list the parked (dead) letters.
CAF_ADD_ATOM(chorus, chorus, dead_atom, "dead")
// Registry: periodic passivation sweep.
CAF_ADD_ATOM(chorus, chorus, sweep_atom, "sweep")

// Journal: append events to a stream at an expected version.
CAF_ADD_ATOM(chorus, chorus, append_atom, "append")
// Journal: restore a stream (snapshot + events).
CAF_ADD_ATOM(chorus, chorus, load_atom, "load")
// Journal: store a snapshot of a stream.
CAF_ADD_ATOM(chorus, chorus, snapshot_atom, "snapshot")
// Journal: a worker thread finished a job.
CAF_ADD_ATOM(chorus, chorus, done_atom, "done")
// Journal: a free connection stops waiting for more appends.
CAF_ADD_ATOM(chorus, chorus, flush_atom, "flush")

// Reminders: an entity schedules a durable reminder (kind, id, name, due, type, payload).
CAF_ADD_ATOM(chorus, chorus, remind_atom, "remind")
// Reminders: an entity cancels one of its reminders by name.
CAF_ADD_ATOM(chorus, chorus, cancel_atom, "cancel")
// Reminders: a reminder actor's own timer to claim due reminders.
CAF_ADD_ATOM(chorus, chorus, poll_atom, "poll")

// Membership: "who are you?" -> (cluster name, node name).
CAF_ADD_ATOM(chorus, chorus, whoami_atom, "whoami")
// Membership: start dialling the peers (sent by main() once every port is bound).
CAF_ADD_ATOM(chorus, chorus, begin_atom, "begin")
// Membership: a node's own timer to (re)dial a peer.
CAF_ADD_ATOM(chorus, chorus, dial_atom, "dial")
// Membership: apply a re-read cluster.conf.
CAF_ADD_ATOM(chorus, chorus, reload_atom, "reload")
// Local query of a node's view of the cluster -> serialized messages::NodeStatus.
CAF_ADD_ATOM(chorus, chorus, status_atom, "status")
// Registry: a message an entity failed on, handed back by a caller that reached the entity
// directly (entity_router's fast path).
CAF_ADD_ATOM(chorus, chorus, redeliver_atom, "redeliver")
// Live events: a member's subscriptions to a topic end (added last: ids above stay put).
CAF_ADD_TYPE_ID(chorus, (chorus::live_revoke))
// Live events: which topics a node's edge wants.
CAF_ADD_TYPE_ID(chorus, (chorus::live_interest))

CAF_END_TYPE_ID_BLOCK(chorus)

namespace chorus {

/// Registers Chorus' message types with `cfg`. Call before constructing the actor system.
inline void register_caf_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::chorus>();
}

}  // namespace chorus
