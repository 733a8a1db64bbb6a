#pragma once

#include <cstdint>
#include <memory>

#include "actors/audio/media.hpp"
#include "http_edge/edge_api.hpp"

namespace chorus::persistence {
class blob_store;
}

namespace chorus::edge {

/// What the track routes need from the node.
struct track_routes_config {
  std::shared_ptr<persistence::blob_store> blobs;
  /// Uploads larger than this are refused while they arrive (413).
  uint64_t max_upload_bytes = uint64_t{200} << 20;
  /// What an upload may be (checked before the track is created).
  audio::media_limits limits;
};

/// Registers POST /v1/tracks (upload) and GET /v1/tracks/{id}.
void add_track_routes(edge_api& api, track_routes_config cfg);

}  // namespace chorus::edge
