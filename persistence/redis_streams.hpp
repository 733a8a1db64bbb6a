#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace chorus::persistence {

class redis_client;

/// Field/value pairs of one stream entry, in order.
using stream_fields = std::vector<std::pair<std::string, std::string>>;

/// One entry read from a stream.
struct stream_entry {
  std::string id;  ///< "<ms>-<seq>", assigned by Redis
  /// Empty for an entry that was still pending but has been trimmed away meanwhile.
  stream_fields fields;
};

// Redis Streams primitives for the outbox relay (producer) and the event-bus consumers. Free
// functions over a `redis_client`, so they are as thread-safe as the client is. Errors are
// values: `redis_unavailable` when Redis cannot be reached, `storage_error` for error replies.

/// XADD with an id chosen by Redis; trims to about `maxlen_approx` entries (MAXLEN ~) when it is
/// not zero. Returns the new entry's id.
caf::expected<std::string> xadd(redis_client& redis, const std::string& stream,
                                const stream_fields& fields, size_t maxlen_approx = 0);

/// XADD of several entries, in order, in one round trip (a script with one XADD each). Returns
/// how many were added: all of them. On an error some may have been added already: whoever
/// sends them again must accept duplicates (the event feed's consumers do).
caf::expected<size_t> xadd_many(redis_client& redis, const std::string& stream,
                                const std::vector<stream_fields>& entries,
                                size_t maxlen_approx = 0);

/// XGROUP CREATE `group` on `stream`, starting after `from_id` ("$": only new entries, "0": all).
/// With `mkstream` an absent stream is created empty. A group that already exists (BUSYGROUP) is
/// no error, so every consumer can call this at start-up.
caf::error xgroup_create(redis_client& redis, const std::string& stream, const std::string& group,
                         const std::string& from_id = "$", bool mkstream = true);

/// XREADGROUP of at most `count` entries of `stream` for `consumer` in `group`. `id` ">" reads
/// entries never delivered to the group; "0" re-reads this consumer's pending (unacked) ones.
/// A positive `block` waits up to that long for new entries (the connection is held meanwhile:
/// give a blocking consumer its own client); zero does not wait. No entries: an empty vector.
caf::expected<std::vector<stream_entry>> xreadgroup(redis_client& redis, const std::string& group,
                                                    const std::string& consumer,
                                                    const std::string& stream, size_t count,
                                                    std::chrono::milliseconds block,
                                                    const std::string& id = ">");

/// XACK of `ids`: how many were pending and are now acknowledged.
caf::expected<int64_t> xack(redis_client& redis, const std::string& stream,
                            const std::string& group, const std::vector<std::string>& ids);

}  // namespace chorus::persistence
