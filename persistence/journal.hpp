#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "messages/journal_types.hpp"

namespace chorus::persistence {

/// One stream's part of a batched append.
struct append_request {
  std::string stream;
  int64_t expected_version = 0;  ///< the stream's version the writer saw (0: new stream)
  std::vector<new_event> events;
  /// The event at expected_version is known to exist (the caller saw it committed or read it,
  /// and events are never deleted), so checking it may be skipped. The rest of the check (no
  /// later version taken) holds either way.
  bool expected_exists = false;
};

/// The event journal: append-only streams with an expected-version check. The one boundary
/// between entities and their stored history. Entities never call it directly: they talk to the
/// journal actor (journal_actor.hpp), which runs implementations of this on its own threads.
/// One object is used by one thread at a time.
class journal {
 public:
  virtual ~journal() = default;

  /// Appends `events` to `stream` if its current version is `expected_version` (0: new stream).
  /// Returns the new version. A stream that moved on meanwhile gives `errc::version_conflict`
  /// and writes nothing: a second writer never forks a stream. Acknowledged only after commit.
  virtual caf::expected<int64_t> append(const std::string& stream, int64_t expected_version,
                                        const std::vector<new_event>& events) = 0;

  /// Group commit: appends every request in one transaction and one round trip. Each request
  /// succeeds or conflicts on its own (`true`: appended, `false`: version conflict, nothing of
  /// it written); an error fails the whole batch and nothing of it is acknowledged. At most one
  /// request per stream.
  virtual caf::expected<std::vector<bool>> append_batch(
      const std::vector<append_request>& batch) = 0;

  /// Events of `stream` with version > `after_version`, oldest first, at most `limit`.
  virtual caf::expected<std::vector<stored_event>> read(const std::string& stream,
                                                        int64_t after_version, size_t limit) = 0;

  /// Restores `stream`: with `after_version` 0 the latest snapshot and every later event;
  /// otherwise only the events after `after_version` (catching up after a conflict).
  virtual caf::expected<loaded_stream> load(const std::string& stream, int64_t after_version) = 0;

  /// Stores a snapshot of `stream` at `version`, unless a newer one exists.
  virtual caf::error save_snapshot(const std::string& stream, int64_t version,
                                   const std::string& type, const std::string& payload) = 0;
};

}  // namespace chorus::persistence
