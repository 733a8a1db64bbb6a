#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include "messages/errors.hpp"

namespace chorus::persistence {

/// Failures of the storage layer, as values. Throwing libraries (libpqxx) are caught at the
/// boundary of persistence/ and turned into one of these.
enum class errc : uint8_t {
  /// Zero is reserved by CAF for "no error".
  none = 0,
  /// PostgreSQL could not be reached or refused the connection.
  postgres_unavailable,
  /// Redis could not be reached, or answered "not now" (LOADING, BUSY, READONLY, ...).
  redis_unavailable,
  /// A DSN or URL in the configuration could not be understood.
  bad_address,
  /// An append's expected version is not the stream's current version: another writer won.
  version_conflict,
  /// PostgreSQL or Redis answered with an error that is not about availability (a bug or bad
  /// data: a failing statement or script, WRONGTYPE).
  storage_error,
  /// No blob with that id is in the blob store.
  blob_not_found,
  /// The blob store could not be reached or is overloaded (S3 down, a timeout, a 5xx): retry later.
  blob_unavailable,
  /// The blob store refused or failed in a way that retrying will not fix: bad credentials, a
  /// missing bucket, permission denied, disk full, an unreadable source file, an odd answer.
  blob_error,
  /// A read started past the end of the blob (HTTP 416 at the edge).
  blob_bad_range,
  /// An entity's stream holds an event or snapshot this version cannot read (an unknown type,
  /// bytes that do not parse, a gap in the versions). The entity stops rather than serve a
  /// state that silently misses it; the node and other entities carry on.
  corrupt_stream,
};

const char* to_string(errc x) noexcept;

/// CAF's error category of the storage layer.
constexpr caf::atom_value errc_category = caf::atom("persist");

inline caf::error make_error(errc code, std::string detail) {
  return make_detailed_error(code, errc_category, std::move(detail));
}

}  // namespace chorus::persistence
