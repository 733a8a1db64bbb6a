#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/deadline_wheel.hpp"
#include "actors/entity_gateway.hpp"
#include "messages/caf_types.hpp"
#include "messages/envelope.hpp"
#include "nodes/cluster_config.hpp"
#include "nodes/entity_directory.hpp"
#include "nodes/entity_registry.hpp"

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

/// `self` and `wheel` (the deadlines of its requests) must outlive the actor system. The router
/// publishes its candidates (the live nodes that host entities) and their registries in `dir`,
/// for entity_router.
router_actor spawn_router(caf::actor_system& sys, const node_spec& self,
                          envelope_handler local_registry, std::shared_ptr<entity_directory> dir,
                          deadline_wheel& wheel);

/// The calling side of a node's routing, for any actor on the node (the edge's request actors,
/// sagas, benchmarks). When this node owns the entity and has it active, the request goes
/// straight to the activation: the same two mailbox hops as a plain CAF request, where the
/// router actor adds two more (router, registry). The activation's cell records the request
/// (bounded mailbox, last use); a message the entity fails on is handed to the registry for
/// redelivery and parking; one that bounces off an activation that just stopped, every
/// entity that is not active, and a request whose timeout is shorter than max-queue-age go
/// through the router actor as before. An entity another node owns is asked at that node's
/// registry directly (what the router actor would delegate to), unless the envelope is
/// redeliverable: the router sends those again when their owner is lost. Deadlines are kept
/// by a deadline_wheel, not CAF's actor clock. Owned by main(); thread-safe; must outlive the
/// calls to ask() (answers that arrive later do not touch it).
class entity_router final : public entity_gateway {
 public:
  /// `wheel` keeps the deadlines of its requests and must outlive the actor system.
  entity_router(std::shared_ptr<entity_directory> dir, envelope_handler router,
                entity_registry_actor registry, entity_probe* probe,
                std::chrono::milliseconds max_queue_age, deadline_wheel& wheel);

  void ask(caf::event_based_actor* self, entity_envelope env, std::chrono::milliseconds timeout,
           reply_handler done) const override;

 private:
  /// What an answer to a direct request needs, shared with every request in flight: answers
  /// may arrive while main() tears down, after this object is gone (`probe` outlives the actor
  /// system, the handles are reference-counted).
  struct targets {
    envelope_handler router;
    entity_registry_actor registry;
    entity_probe* probe;
    deadline_wheel* wheel;
  };

  std::shared_ptr<entity_directory> dir_;
  std::shared_ptr<const targets> targets_;
  int64_t max_queue_age_ns_;
};

}  // namespace chorus
