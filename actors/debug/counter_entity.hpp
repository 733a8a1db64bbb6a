#pragma once

#include "actors/entity_kind.hpp"

namespace chorus::debug {

/// The entity kind name of the demo counter.
inline constexpr const char* counter_kind = "counter";

/// The storage domain whose journal holds the counters' streams ("counter/<id>").
inline constexpr const char* counter_domain = "analytics";

/// Factory of the demo counter entity: handles messages::CounterIncrement and
/// messages::CounterGet, answers messages::CounterValue. Event-sourced: an increment is
/// answered only after its messages::CounterIncremented event is committed, so a passivated,
/// failed or failed-over counter comes back with every acknowledged increment. Increments that
/// carry an idempotency key are applied once per key (the last 1,000 keys are remembered).
/// messages::CounterRemind schedules a durable reminder (in the analytics domain's reminders)
/// that later delivers a keyed CounterIncrement: applied once although reminders arrive at least
/// once.
entity_factory counter_factory();

}  // namespace chorus::debug
