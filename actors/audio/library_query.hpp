#pragma once

#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "messages/envelope.hpp"

namespace chorus::persistence {
class redis_cache;
}

namespace chorus::audio {

/// The most followed accounts whose tracks make up one reader's feed.
inline constexpr int max_feed_sources = 1000;

/// A node-local query service over the `audio_library` read model (not an entity: the edge
/// of the same node addresses it directly). Handles envelopes carrying LibraryQuery and answers
/// TrackPage, CommentPage, PlaylistPage or TrackStats (messages/audio.proto). The feed reads
/// whom the reader follows from the `follows` read model (`user_dsn`) and their new tracks
/// from `audio_dsn`: the two may be different databases. Runs on a thread of its own (its
/// queries block on PostgreSQL), one query at a time; a track's counts read through `cache`; the
/// lists trail the commands by the outbox relay and projector delay.
envelope_handler spawn_library_query(caf::actor_system& sys, std::string audio_dsn,
                                     std::string user_dsn,
                                     std::shared_ptr<persistence::redis_cache> cache = nullptr);

}  // namespace chorus::audio
