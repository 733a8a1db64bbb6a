#pragma once

#include "persistence/projection.hpp"

namespace chorus::persistence {

/// The demo projection `counter_totals`: read model `counter_totals (id, value, position)`, the
/// sum of the `chorus.messages.CounterIncremented` events of each stream `counter/<id>` and the
/// global position of the last one applied. Other events are ignored.
projection counter_totals_projection();

}  // namespace chorus::persistence
