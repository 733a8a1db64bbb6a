#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

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
  /// Deliveries of one message before it is parked as a dead letter.
  uint32_t max_attempts = 3;
  /// Wait before the first redelivery after a failure; doubles with each further one.
  std::chrono::milliseconds retry_backoff{100};
  /// How long an entity may take for one message when the caller set no deadline.
  std::chrono::milliseconds default_timeout{30000};
  /// Bounded mailbox: new requests to an entity whose oldest waiting request is older than
  /// this are refused with `runtime_errc::overloaded` (503 + Retry-After at the edge).
  std::chrono::milliseconds max_queue_age{2000};
  /// Dead letters kept for listing (the oldest are dropped).
  size_t dead_letter_capacity = 1000;
  /// An entity whose stream cannot be read (persistence::errc::corrupt_stream) is stopped and
  /// answered with that error, without activating it again, for this long.
  std::chrono::milliseconds corrupt_quarantine{10000};
};

/// A node's entity registry: one per node, reached by the routers of every node. On the first
/// envelope for (kind, id) it spawns the entity through its kind's factory; later envelopes go to
/// the same activation until it is passivated (idle timeout, or evicted as least recently used
/// when `max_active` is reached) or fails.
///
/// Supervision: the registry makes each request to the entity itself and answers the caller
/// through a response promise. When the entity fails on a message (it throws: `guarded` turns
/// that into `runtime_errc::entity_failed` and stops the activation), the activation is dropped
/// and the message is redelivered to a fresh activation after `retry_backoff`, doubling; after
/// `max_attempts` failed deliveries it is parked as a dead letter and the caller gets
/// `runtime_errc::parked`. Messages that were queued behind it and bounced when the activation
/// stopped are redelivered at once and do not count as attempts. Other messages are served
/// meanwhile.
using entity_registry_actor = envelope_handler::extend<
    /// Local query: active entities by kind as serialized messages::RegistryStatus.
    caf::replies_to<status_atom>::with<std::string>,
    /// Local query: the parked messages as serialized messages::DeadLetters, newest first.
    caf::replies_to<dead_atom>::with<std::string>,
    /// Internal timer: redeliver the message with this retry ticket.
    caf::reacts_to<retry_atom, uint64_t>,
    /// Internal timer: passivate idle entities.
    caf::reacts_to<sweep_atom>>;

/// `kinds`, `probe` and `log` must outlive the actor system.
entity_registry_actor spawn_entity_registry(caf::actor_system& sys, const entity_kinds& kinds,
                                            entity_context ctx, registry_limits limits,
                                            entity_probe& probe, json_log& log);

}  // namespace chorus
