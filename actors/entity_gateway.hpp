#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include "messages/envelope.hpp"

namespace chorus {

/// How code outside the runtime (the edge, sagas, benchmarks) asks an entity: by (kind, id) in
/// the envelope, never by actor handle. Implemented by nodes/ (entity_router): an entity that
/// this node owns and has active is asked directly, anything else through the node's router
/// actor, with the same answers and errors either way. Thread-safe; owned by the node's main()
/// and outliving the actor system's actors.
class entity_gateway {
 public:
  /// Runs once in the asking actor's context with the entity's reply bytes or the error.
  using reply_handler = std::function<void(caf::expected<std::string>)>;

  virtual ~entity_gateway() = default;

  /// Sends `env` from `self` and calls `done` with the outcome within `timeout` (or the
  /// envelope's deadline, when earlier).
  virtual void ask(caf::event_based_actor* self, entity_envelope env,
                   std::chrono::milliseconds timeout, reply_handler done) const = 0;
};

}  // namespace chorus
