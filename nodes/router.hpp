#pragma once

#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "messages/caf_types.hpp"
#include "messages/envelope.hpp"
#include "nodes/cluster_config.hpp"

namespace chorus {

/// A node's router: the one address callers send envelopes to. It picks the owner of
/// (kind, id) by rendezvous hashing over the live nodes with the `entity` role and delegates
/// the envelope to that node's registry — local or remote, the caller cannot tell. The
/// membership actor keeps it told which peers are live.
using router_actor = envelope_handler::extend<
    /// A peer is live; `registry` is its entity registry; the flag says whether it hosts
    /// entities (has the `entity` role).
    caf::reacts_to<peer_up_atom, std::string, envelope_handler, bool>,
    /// A peer is gone.
    caf::reacts_to<peer_down_atom, std::string>>;

/// `self` must outlive the actor system.
router_actor spawn_router(caf::actor_system& sys, const node_spec& self,
                          envelope_handler local_registry);

}  // namespace chorus
