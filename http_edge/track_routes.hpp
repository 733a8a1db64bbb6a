#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "actors/audio/media.hpp"
#include "http_edge/edge_api.hpp"
#include "messages/audio.pb.h"

namespace chorus::persistence {
class blob_store;
}

namespace chorus::edge {

/// What the track and library routes need from the node.
struct track_routes_config {
  std::shared_ptr<persistence::blob_store> blobs;
  /// Uploads larger than this are refused while they arrive (413).
  uint64_t max_upload_bytes = uint64_t{200} << 20;
  /// What an upload may be (checked before the track is created).
  audio::media_limits limits;
  /// The node's library query service (actors/audio/library_query.hpp): lists, feed, counts.
  envelope_handler library;
  /// HMAC-SHA256 key of signed stream URLs; empty: GET /v1/tracks/{id}/stream-url answers 404.
  std::string stream_url_key;
  std::chrono::seconds stream_url_ttl{std::chrono::hours{6}};
  /// Where play events go (the event bus); may be empty.
  std::function<void(const messages::PlayEvent&)> plays;
  /// This node's name (in play events).
  std::string node;
};

/// Registers the audio domain's routes: tracks (upload, metadata, stream, signed stream URLs,
/// waveform, cover, comments, likes, reposts) and the library (an artist's tracks, likes,
/// reposts, playlists, the feed).
void add_track_routes(edge_api& api, track_routes_config cfg);

/// The track `id` if the caller may see it: public and unlisted tracks anyone, private ones
/// their owner. Otherwise the answer (404 as for a track that does not exist, or the error)
/// is in `res` and the result is empty.
std::optional<messages::TrackInfo> visible_track(edge_api& api, const http_request& req,
                                                 http_response& res, const std::string& rid,
                                                 const std::string& id);

/// Registers the library routes (library_routes.cpp); add_track_routes calls it.
void add_library_routes(edge_api& api, std::shared_ptr<const track_routes_config> cfg);

}  // namespace chorus::edge
