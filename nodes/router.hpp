#pragma once

#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "messages/caf_types.hpp"
#include "messages/envelope.hpp"
#include "nodes/cluster_config.hpp"

namespace chorus {

/// A node's router: the one address callers send envelopes to. It picks the owner of
/// (kind, id) by rendezvous hashing over the live nodes with the `entity` role and hands the
/// envelope to that node's registry — local or remote, the caller cannot tell. The membership
/// actor keeps it told which peers are live.
///
/// Hand-off: an envelope marked `redeliverable` is not dropped while ownership moves. When its
/// owner is lost mid-request (peer_down) it is sent again to the new owner at once; when no node
/// hosts entities it waits (retrying every 100 ms) — both until the envelope's deadline, after
/// which the caller gets `runtime_errc::no_owner` (503 + Retry-After). Other envelopes are
/// delegated once: the caller decides whether a retry is safe.
using router_actor = envelope_handler::extend<
    /// A peer is live; `registry` is its entity registry; the flag says whether it hosts
    /// entities (has the `entity` role).
    caf::reacts_to<peer_up_atom, std::string, envelope_handler, bool>,
    /// A peer is gone.
    caf::reacts_to<peer_down_atom, std::string>,
    /// Internal timer: try to route the held envelope with this ticket again.
    caf::reacts_to<retry_atom, uint64_t>>;

/// `self` must outlive the actor system.
router_actor spawn_router(caf::actor_system& sys, const node_spec& self,
                          envelope_handler local_registry);

}  // namespace chorus
