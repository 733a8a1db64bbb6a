#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/caf_types.hpp"
#include "messages/envelope.hpp"
#include "persistence/reminder_pg.hpp"

namespace chorus {
class json_log;
}

namespace chorus::persistence {

class reminder_probe;

/// A node's door to the durable reminders of one database. Entities ask it to schedule or cancel
/// their reminders and get the answer only after COMMIT, so an acknowledged reminder survives
/// passivation, a restart and the loss of its node. Every node runs one per distinct database
/// and each polls: due reminders are claimed with a lease (reminder_pg::claim_due) and delivered
/// as an `entity_envelope (kind, id, payload_type, payload)` through the node's router, so they
/// reach the entity's current owner wherever it runs. Delivery is at least once: a reminder whose
/// delivery failed, timed out, or whose node died meanwhile is delivered again when its lease
/// ends, so entities must handle reminders idempotently. Node-local: never sent to another node.
using reminder_actor = caf::typed_actor<
    /// Schedules (kind, id, name) at Unix time due_ms with the message (type, payload) to deliver;
    /// rescheduling a name replaces it. Answers due_ms once committed, or an `errc`.
    caf::replies_to<remind_atom, std::string, std::string, std::string, int64_t, std::string,
                    std::string>::with<int64_t>,
    /// Cancels (kind, id, name); answers whether it was pending.
    caf::replies_to<cancel_atom, std::string, std::string, std::string>::with<bool>,
    /// Starts polling; due reminders go to `router`. Sent by the node once its router exists.
    caf::reacts_to<begin_atom, envelope_handler>,
    /// Internal timer: claim due reminders.
    caf::reacts_to<poll_atom>,
    /// Internal: the worker finished the job with this number.
    caf::reacts_to<done_atom, uint64_t>>;

struct reminder_options {
  /// How often due reminders are looked for (`chorus.entities.reminder-poll`).
  std::chrono::milliseconds poll_interval{1000};
  /// How long a claimed reminder stays away from other claimers: a delivery that fails is
  /// retried after this (the lease is the back-off). Longer than delivery_timeout, so two
  /// deliveries of one reminder never overlap.
  std::chrono::milliseconds lease{20000};
  /// How long the entity may take to acknowledge a reminder.
  std::chrono::milliseconds delivery_timeout{10000};
  /// Reminders claimed per poll at most (a full batch polls again at once).
  size_t batch = 100;
  /// Claims of one reminder before it is parked (deleted and logged).
  int32_t max_attempts = 10;
};

/// Makes the reminder store the worker thread uses (one PostgreSQL connection).
using reminder_store_factory = std::function<std::unique_ptr<reminder_pg>()>;

/// Spawns a reminder actor. Blocking SQL runs on the actor's own worker thread, never on CAF's
/// scheduler. `log` and `probe` (either may be null) must outlive the actor. Polling starts with
/// `begin_atom`.
reminder_actor spawn_reminders(caf::actor_system& sys, reminder_store_factory factory,
                               reminder_options options, json_log* log, reminder_probe* probe);

}  // namespace chorus::persistence
