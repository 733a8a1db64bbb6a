#pragma once

#include <string>

#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include "messages/caf_types.hpp"
#include "messages/envelope.hpp"

namespace chorus {

/// Where a node's tracks send their transcode jobs: it hands each `TranscodeJob` envelope to the
/// transcoder of a live node with the `transcode` role, this one included, picked by rendezvous
/// hashing of the track and attempt (so a retried job may land elsewhere, and jobs spread over
/// the transcode nodes). A transcoder that refuses (queue full) or cannot be reached is skipped
/// for the next one; with none left the job is refused with `overloaded` and the track's
/// durable reminder sends it again later. The membership actor keeps it told which peers with
/// the `transcode` role are live. A peer is reached through its entity registry, which hands
/// envelopes of kind "transcoder" to its transcoder (entity_context::services): the membership
/// handshake stays as it was, so nodes of two versions still talk.
using transcode_dispatcher_actor = envelope_handler::extend<
    /// A peer with the `transcode` role is live; its entity registry.
    caf::reacts_to<peer_up_atom, std::string, envelope_handler>,
    /// A peer is gone.
    caf::reacts_to<peer_down_atom, std::string>>;

/// `local` is this node's transcoder, invalid when it has no `transcode` role.
transcode_dispatcher_actor spawn_transcode_dispatcher(caf::actor_system& sys,
                                                      const std::string& self_name,
                                                      envelope_handler local);

}  // namespace chorus
