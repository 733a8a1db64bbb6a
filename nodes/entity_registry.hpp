#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/error.hpp>

#include "actors/deadline_wheel.hpp"
#include "actors/entity_kind.hpp"
#include "common/json_log.hpp"
#include "messages/caf_types.hpp"
#include "messages/envelope.hpp"
#include "nodes/entity_directory.hpp"

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
///
/// Activations are published in the node's entity_directory, where entity_router's fast path
/// finds them and sends to them directly; such callers record their requests in the
/// activation's cell (bounded mailbox, last use) and hand a message the entity failed on back
/// here (`redeliver_atom`), so supervision and limits are the same whoever sent the message.
using entity_registry_actor = envelope_handler::extend<
    /// A message whose entity failed on it `attempts` times (>= 1), with the last error: parked
    /// or redelivered after back-off like a failure the registry saw itself.
    caf::replies_to<redeliver_atom, entity_envelope, uint32_t, std::string>::with<std::string>,
    /// Local query: active entities by kind as serialized messages::RegistryStatus.
    caf::replies_to<status_atom>::with<std::string>,
    /// Local query: the parked messages as serialized messages::DeadLetters, newest first.
    caf::replies_to<dead_atom>::with<std::string>,
    /// Internal timer: redeliver the message with this retry ticket.
    caf::reacts_to<retry_atom, uint64_t>,
    /// Internal timer: passivate idle entities.
    caf::reacts_to<sweep_atom>>;

/// `kinds`, `probe`, `log` and `wheel` (the deadlines of its requests to entities) must outlive
/// the actor system; `dir` is where the activations are published (its candidates are the
/// router's business).
entity_registry_actor spawn_entity_registry(caf::actor_system& sys, const entity_kinds& kinds,
                                            entity_context ctx, registry_limits limits,
                                            entity_probe& probe, json_log& log,
                                            std::shared_ptr<entity_directory> dir,
                                            deadline_wheel& wheel);

/// The entity failed while handling this very message (it threw: see `guarded`) and its
/// activation stopped.
bool failed_on_it(const caf::error& err);

/// The message never reached a live activation: it sat in the mailbox of one that stopped
/// (passivated, or the message ahead of it was poison). Not the message's fault.
bool bounced(const caf::error& err);

/// `runtime_errc::overloaded` for entity `key` whose oldest request waits `age_ns`.
caf::error overloaded_error(const std::string& key, int64_t age_ns);

}  // namespace chorus
