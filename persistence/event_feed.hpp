#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "messages/journal_types.hpp"
#include "persistence/redis_streams.hpp"

namespace chorus::persistence {

/// Where an event sits in the feed that the outbox relay publishes and projections apply: the
/// writing transaction's id (PostgreSQL xid8), then the global position. Only events whose
/// transaction is older than every running one are in the feed (the high-water mark), so no event
/// can later appear before a position already read; global_position alone cannot promise that
/// (a transaction may draw a smaller position and commit after a larger one). See README.md.
struct feed_position {
  uint64_t txid = 0;
  int64_t position = 0;

  auto operator<=>(const feed_position&) const = default;
};

/// One event of the feed.
struct feed_event {
  feed_position at;
  stored_event event;
};

/// The fields of the Redis stream entry for `e`: position, txid, stream, version, type, payload.
stream_fields encode_feed_entry(const feed_event& e);

/// The event of a stream entry written by `encode_feed_entry`; nothing when a field is missing
/// or malformed (a trimmed pending entry has no fields at all).
std::optional<feed_event> decode_feed_entry(const stream_fields& fields);

/// The Redis stream that the relay of database `database` writes: `chorus:events:<database>`.
std::string feed_stream_name(const std::string& database);

}  // namespace chorus::persistence
