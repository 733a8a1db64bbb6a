#pragma once

#include <string>

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "common/json_log.hpp"
#include "messages/caf_types.hpp"
#include "nodes/cluster_config.hpp"
#include "nodes/live_hub.hpp"
#include "nodes/router.hpp"
#include "nodes/transcode_dispatcher.hpp"

namespace chorus {

class node_probe;

/// A node's membership actor: one per node, published on the node's actor port. It dials every
/// other node of cluster.conf through CAF's middleman, checks that the peer answers with the
/// expected cluster and node name, monitors it, and redials with back-off when it is lost.
/// Peers find each other by dialling; there is no seed node. A reload (SIGHUP) hands it the
/// new node list: new peers are dialled, removed ones dropped, all without a restart.
using membership_actor = caf::typed_actor<
    /// Asked by a peer after connecting: answers (cluster name, node name, entity registry,
    /// live-event hub). Its shape is the handshake between versions: keep it.
    caf::replies_to<whoami_atom>::with<std::string, std::string, envelope_handler, live_hub>,
    /// Local query: answers this node's view as a serialized messages::NodeStatus.
    caf::replies_to<status_atom>::with<std::string>,
    /// Start dialling every peer. Sent once by main() after all ports are bound, so a node that
    /// fails to start leaves no connection attempt behind.
    caf::reacts_to<begin_atom>,
    /// Apply a re-read cluster.conf: the node list as serialized messages::ClusterView.
    caf::reacts_to<reload_atom, std::string>,
    /// Internal timer: (re)dial the named peer.
    caf::reacts_to<dial_atom, std::string>>;

/// The node list of `cfg` as the reload message carries it.
std::string cluster_view(const cluster_config& cfg);

/// Spawns the membership actor of `self`. It hands `registry` and `hub` to peers that ask who it
/// is, tells `router` which peers' registries are live and `hub` which peers' hubs are. `cfg`,
/// `probe` and `log` must outlive the actor system.
/// Also tells `dispatcher` which peers with the `transcode` role are live (their registries
/// hand transcode jobs to their transcoders).
membership_actor spawn_membership(caf::actor_system& sys, const cluster_config& cfg,
                                  const node_spec& self, envelope_handler registry,
                                  router_actor router, live_hub_actor hub,
                                  transcode_dispatcher_actor dispatcher, node_probe& probe,
                                  json_log& log);

}  // namespace chorus
