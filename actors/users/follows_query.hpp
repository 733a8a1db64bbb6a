#pragma once

#include <string>

#include <caf/actor_system.hpp>

#include "messages/envelope.hpp"

namespace chorus::users {

/// A node-local query service over the `follows` read model (not an entity: it is addressed
/// directly, by the edge of the same node). Handles envelopes carrying FollowListQuery and
/// answers FollowPage. Runs on a thread of its own (its queries block on PostgreSQL), one query
/// at a time. The list is eventually consistent: it trails the follow commands by the outbox
/// relay and projector delay.
envelope_handler spawn_follows_query(caf::actor_system& sys, std::string dsn);

}  // namespace chorus::users
