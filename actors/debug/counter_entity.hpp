#pragma once

#include "actors/entity_kind.hpp"

namespace chorus::debug {

/// The entity kind name of the demo counter.
inline constexpr const char* counter_kind = "counter";

/// Factory of the demo counter entity: handles messages::CounterIncrement and
/// messages::CounterGet, answers messages::CounterValue. Its state lives in memory only until
/// the journal lands (persistence issue): a passivated or failed-over counter restarts at 0.
entity_factory counter_factory();

}  // namespace chorus::debug
