#pragma once

#include <chrono>
#include <cstddef>

#include <caf/actor_system.hpp>

#include "actors/entity_kind.hpp"
#include "common/json_log.hpp"
#include "messages/caf_types.hpp"
#include "messages/envelope.hpp"

namespace chorus {

class entity_probe;

/// Limits of a node's entity registry (`chorus.entities` in cluster.conf).
struct registry_limits {
  std::chrono::milliseconds idle_timeout{60000};   ///< passivate after this long without a message
  size_t max_active = 1000000;                     ///< evict the least recently used beyond this
  std::chrono::milliseconds sweep_interval{1000};  ///< how often idle entities are looked for
};

/// A node's entity registry: one per node, reached by the routers of every node. On the first
/// envelope for (kind, id) it spawns the entity through its kind's factory; later envelopes go to
/// the same activation until it is passivated (idle timeout, or evicted as least recently used
/// when `max_active` is reached) or fails. Envelopes are delegated, so the entity answers the
/// original caller directly.
using entity_registry_actor = envelope_handler::extend<
    /// Local query: active entities by kind as serialized messages::RegistryStatus.
    caf::replies_to<status_atom>::with<std::string>,
    /// Internal timer: passivate idle entities.
    caf::reacts_to<sweep_atom>>;

/// `kinds`, `probe` and `log` must outlive the actor system.
entity_registry_actor spawn_entity_registry(caf::actor_system& sys, const entity_kinds& kinds,
                                            entity_context ctx, registry_limits limits,
                                            entity_probe& probe, json_log& log);

}  // namespace chorus
