#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace chorus::persistence {

/// An event to append: protobuf type name, bytes, and JSON metadata (trace context, causation).
struct new_event {
  std::string type;
  std::string payload;
  std::string metadata_json = "{}";
};

/// An event as stored.
struct stored_event {
  std::string stream;
  int64_t version = 0;          ///< 1-based position within the stream
  int64_t global_position = 0;  ///< position in the whole journal (commit order not guaranteed)
  std::string type;
  std::string payload;
};

/// The event journal: append-only streams with an expected-version check. The one boundary
/// between entities and their stored history; a fake exists only where a test needs one.
class journal {
 public:
  virtual ~journal() = default;

  /// Appends `events` to `stream` if its current version is `expected_version` (0: new stream).
  /// Returns the new version. A stream that moved on meanwhile gives `errc::version_conflict`
  /// and writes nothing: a second writer never forks a stream. Acknowledged only after commit.
  virtual caf::expected<int64_t> append(const std::string& stream, int64_t expected_version,
                                        const std::vector<new_event>& events) = 0;

  /// Events of `stream` with version > `after_version`, oldest first, at most `limit`.
  virtual caf::expected<std::vector<stored_event>> read(const std::string& stream,
                                                        int64_t after_version, size_t limit) = 0;
};

}  // namespace chorus::persistence
