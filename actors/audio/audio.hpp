#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/audio/media.hpp"
#include "actors/entity_kind.hpp"
#include "messages/envelope.hpp"

namespace chorus::persistence {
class blob_store;
}

namespace chorus::audio {

class audio_probe;

/// Entity kinds of the audio domain, event-sourced in the "audio" storage domain.
inline constexpr const char* track_kind = "track";        ///< id: 32 hex characters
inline constexpr const char* library_kind = "library";    ///< id: the user's id
inline constexpr const char* playlist_kind = "playlist";  ///< id: 32 hex characters
inline constexpr const char* audio_domain = "audio";

/// Limits of the library and playlists.
inline constexpr int max_library_items = 10000;  ///< likes, and reposts, per user
inline constexpr int max_playlist_items = 1000;

/// A track (messages/audio.proto): TrackCreate, TrackGet -> TrackInfo; TrackDispatch (its own
/// reminder), TrackComplete and TrackFail (from the transcoder).
entity_factory track_factory();

/// A user's likes and reposts (messages/audio.proto): LibrarySet -> LibraryChange. The lists
/// themselves are served by the library read model.
entity_factory library_factory();

/// A playlist: PlaylistCreate, PlaylistGet, PlaylistEdit, PlaylistAddItem, PlaylistRemoveItem,
/// PlaylistMoveItem, PlaylistDelete -> PlaylistInfo. Only its owner changes it.
entity_factory playlist_factory();

/// What a node's transcoder needs.
struct transcoder_config {
  std::shared_ptr<persistence::blob_store> blobs;
  /// Where the node asks entities (the transcoder reports to the track through it); filled by
  /// the node once its router exists, before any job can arrive.
  std::shared_ptr<envelope_handler> router;
  /// Jobs at once (each uses a thread per rendition while it runs).
  size_t workers = 1;
  /// Jobs waiting beyond the running ones; more are refused (the track's reminder retries).
  size_t max_queued = 64;
  /// Scratch space for the upload copy and the renditions being written.
  std::string work_dir;
  media_limits limits;
  /// Metrics (queue length, seconds per job, real-time factor); may be null (tests).
  audio_probe* probe = nullptr;
};

/// A node's transcoder: takes `TranscodeJob` envelopes (answering at once: queued or refused
/// with `overloaded`) and runs each on its own worker threads, off the actor scheduler: fetch
/// the upload from the blob store, transcode (media.hpp), store every rendition and the
/// waveform in the blob store, then tell the track TrackComplete or TrackFail (final when the
/// upload itself is unacceptable). Only on nodes with the `transcode` role.
envelope_handler spawn_transcoder(caf::actor_system& sys, transcoder_config cfg);

}  // namespace chorus::audio
