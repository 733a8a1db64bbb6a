#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include <exception>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/result.hpp>

#include "actors/deadline_wheel.hpp"
#include "messages/envelope.hpp"
#include "messages/errors.hpp"
#include "messages/live.hpp"
#include "persistence/journal_actor.hpp"
#include "persistence/reminder_actor.hpp"

namespace chorus {

/// What an entity learns about where it runs when it is activated.
struct entity_context {
  std::string node;  ///< the node hosting this activation
  /// The journal actor of each storage domain ("user", "audio", "social", "commerce",
  /// "analytics"); node-local.
  std::map<std::string, persistence::journal_actor> journals;
  /// Event-sourced entities store a snapshot every this many events (0: never).
  int64_t snapshot_every = 100;
  /// Keeps the deadlines of entities' journal requests instead of CAF's actor clock (see
  /// deadline_wheel.hpp); outlives the actor system. Null: CAF's request timeouts.
  deadline_wheel* deadlines = nullptr;
  /// The reminder actor of each storage domain, like `journals` (one per distinct database,
  /// node-local). An entity schedules its durable reminders in its own domain's database.
  std::map<std::string, persistence::reminder_actor> reminders = {};
  /// This node's live-event hub: what an entity sends there reaches the WebSocket clients
  /// subscribed to the topic on every node. Invalid when the node runs none (tests).
  live_hub live = {};
  /// This node's transcoder (audio jobs), when it has the `transcode` role; invalid otherwise.
  envelope_handler transcoder = {};
  /// Node-local services that are not entities, reached through this node's registry by the
  /// envelope's kind (peers send "transcoder" jobs this way).
  std::map<std::string, envelope_handler> services = {};
  /// Chat: messages one member may post in one room within `room_message_window`.
  int64_t room_message_limit = 10;
  std::chrono::milliseconds room_message_window{10000};
  /// How long a transcode job may take before the track sends it again.
  std::chrono::milliseconds transcode_timeout{600000};

  /// The journal of `domain`; a default (invalid) handle when the node has none.
  [[nodiscard]] persistence::journal_actor journal(const std::string& domain) const {
    auto it = journals.find(domain);
    return it == journals.end() ? persistence::journal_actor{} : it->second;
  }

  /// The reminder actor of `domain`; a default (invalid) handle when the node has none.
  [[nodiscard]] persistence::reminder_actor reminder(const std::string& domain) const {
    auto it = reminders.find(domain);
    return it == reminders.end() ? persistence::reminder_actor{} : it->second;
  }
};

/// Spawns one activation of an entity: `id` is the entity's id within its kind. The entity
/// handles envelopes one at a time and answers with protobuf bytes or a caf::error (possibly
/// later, through a response promise, after its events are committed).
using entity_factory = std::function<envelope_handler(caf::actor_system&, const std::string& id,
                                                      const entity_context&)>;

/// The entity kinds a node hosts, by name. Built by nodes/ at start-up, read-only afterwards.
using entity_kinds = std::map<std::string, entity_factory>;

/// Wraps an entity's envelope handler so that nothing it throws crosses the actor boundary:
/// a throw becomes `runtime_errc::entity_failed` for the caller and stops the activation, whose
/// state may be half-changed; the registry restarts it and redelivers the message.
template <class Self, class Handler>
auto guarded(Self* self, Handler handler) {
  return [self, handler](entity_envelope& env) -> caf::result<std::string> {
    try {
      return handler(env);
    } catch (const std::exception& e) {
      auto err = make_error(runtime_errc::entity_failed, env.type + ": " + e.what());
      self->quit(err);
      return err;
    }
  };
}

}  // namespace chorus
