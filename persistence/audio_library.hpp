#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "messages/audio.pb.h"
#include "persistence/projection.hpp"

namespace chorus::persistence {

class pg_reader;
class redis_cache;

/// The projection `audio_library`: the audio domain's lists, from the events of tracks
/// (`track/<id>`), libraries (`library/<user>`) and playlists (`playlist/<id>`):
///   library_tracks    one row per track (owner, title, visibility, status, created, ready)
///   library_likes     (user, track, at); library_reposts likewise
///   library_stats     likes and reposts per track, moved in the same transaction
///   library_comments  (track, id, author, text, at_s, created)
///   library_playlists one row per live playlist (owner, title, visibility, item count)
/// With `cache`, the likes/reposts counts that readers cache (`audio_library_reader::stats`)
/// are invalidated once each like or repost event's transaction committed.
projection audio_library_projection(std::shared_ptr<redis_cache> cache = nullptr);

/// The cache key of a track's counts.
std::string track_stats_key(const std::string& track);

/// Reads the `audio_library` read model. One connection used by one caller at a time (a
/// mutex); reconnects after a failure. Pages are newest first (comments oldest first), with
/// opaque cursors; `bad_cursor`-like refusals are `domain_errc::validation`.
class audio_library_reader {
 public:
  /// With `cache`, `stats` reads through it (a minute at most, invalidated by the projection).
  explicit audio_library_reader(std::string dsn, std::shared_ptr<redis_cache> cache = nullptr);
  ~audio_library_reader();
  audio_library_reader(const audio_library_reader&) = delete;
  audio_library_reader& operator=(const audio_library_reader&) = delete;

  /// An artist's tracks: every one of them for the artist itself, the public ready ones for
  /// anybody else.
  caf::expected<messages::TrackPage> artist_tracks(const std::string& owner, bool include_private,
                                                   const std::string& cursor, int limit);
  /// The public ready tracks of `owners`, newest ready first (the feed).
  caf::expected<messages::TrackPage> feed(const std::vector<std::string>& owners,
                                          const std::string& cursor, int limit);
  /// What `user` liked (`reposts`: reposted), latest first; private tracks left out.
  caf::expected<messages::TrackPage> liked(const std::string& user, bool reposts,
                                           const std::string& cursor, int limit);
  caf::expected<messages::CommentPage> comments(const std::string& track, const std::string& cursor,
                                                int limit);
  caf::expected<messages::PlaylistPage> playlists(const std::string& owner, bool include_private,
                                                  const std::string& cursor, int limit);
  caf::expected<messages::TrackStats> stats(const std::string& track);

 private:
  caf::expected<messages::TrackStats> load_stats(const std::string& track);
  std::unique_ptr<pg_reader> db_;
  std::shared_ptr<redis_cache> cache_;
};

}  // namespace chorus::persistence
