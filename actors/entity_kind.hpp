#pragma once

#include <functional>
#include <map>
#include <string>

#include <caf/actor_system.hpp>

#include "messages/envelope.hpp"

namespace chorus {

/// What an entity learns about where it runs when it is activated.
struct entity_context {
  std::string node;  ///< the node hosting this activation
};

/// Spawns one activation of an entity: `id` is the entity's id within its kind. The entity
/// handles envelopes one at a time and answers with protobuf bytes or a caf::error.
using entity_factory = std::function<envelope_handler(caf::actor_system&, const std::string& id,
                                                      const entity_context&)>;

/// The entity kinds a node hosts, by name. Built by nodes/ at start-up, read-only afterwards.
using entity_kinds = std::map<std::string, entity_factory>;

}  // namespace chorus
