#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace chorus::persistence {

/// The name of a blob: the SHA-256 of its bytes, as 64 lowercase hex characters. Only `parse` and
/// the stores make one, so a blob_id in hand is always well-formed and safe to put in a path or an
/// object key.
class blob_id {
 public:
  /// The id written as `hex`, or nothing when it is not 64 lowercase hex characters.
  static std::optional<blob_id> parse(std::string_view hex);

  [[nodiscard]] const std::string& hex() const { return hex_; }

  friend bool operator==(const blob_id&, const blob_id&) = default;

 private:
  explicit blob_id(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

/// What a put returns and what a record keeps to find its bytes again.
struct blob_ref {
  blob_id id;
  uint64_t size = 0;

  friend bool operator==(const blob_ref&, const blob_ref&) = default;
};

/// Gives the bytes of a blob being put, in pieces: fills `buffer` with at most `capacity` bytes
/// and returns how many; 0 means the end. An error stops the put and nothing is stored.
using blob_source = std::function<caf::expected<size_t>(char* buffer, size_t capacity)>;

/// Receives the bytes of a blob being read, in order, a chunk at a time (at most
/// `blob_chunk_size` bytes each). Returns false to stop early, e.g. when the client went away.
using blob_sink = std::function<bool(std::string_view chunk)>;

/// The largest chunk a sink receives and the most a store reads at once.
constexpr size_t blob_chunk_size = size_t{256} * 1024;

/// As a read's length: everything from the offset to the end.
constexpr uint64_t blob_to_end = UINT64_MAX;

/// Content-addressed storage of immutable blobs (uploads, audio renditions, artwork): a blob is
/// named by the SHA-256 of its bytes, so putting the same bytes twice stores them once and a name
/// always means the same bytes. Bytes stream in and out in chunks; no operation holds a whole blob
/// in memory. Removing is the caller's decision: two records may share a blob.
///
/// One store per node, created at start-up and owned by the node; implementations are safe to call
/// from any thread at once (actors, HTTP workers). Every failure is an error value of
/// `persistence::errc`; nothing throws.
class blob_store {
 public:
  virtual ~blob_store() = default;

  /// Stores the bytes of the file at `path` (read twice at most, never loaded whole).
  virtual caf::expected<blob_ref> put_file(const std::string& path) = 0;

  /// Stores the bytes that `source` gives until it returns 0.
  virtual caf::expected<blob_ref> put(const blob_source& source) = 0;

  /// Whether the blob is stored. An unreachable store is an error, not `false`.
  virtual caf::expected<bool> exists(const blob_id& id) = 0;

  /// The blob's size in bytes; `blob_not_found` when it is not stored.
  virtual caf::expected<uint64_t> size(const blob_id& id) = 0;

  /// Streams bytes [offset, offset + length) of the blob to `sink`, cut at the blob's end, and
  /// returns how many it delivered (fewer when the sink stopped early). An offset equal to the
  /// size delivers nothing; a larger one is `blob_bad_range`.
  virtual caf::expected<uint64_t> read(const blob_id& id, uint64_t offset, uint64_t length,
                                       const blob_sink& sink) = 0;

  /// Where the blob is as a local file, for stores that keep files (so the edge can send the file
  /// itself); nothing for remote stores. The file may be gone by the time it is opened.
  [[nodiscard]] virtual std::optional<std::string> local_path(const blob_id& /*id*/) const {
    return std::nullopt;
  }

  /// Deletes the blob. Removing a blob that is not stored succeeds (as S3's DELETE does).
  virtual caf::error remove(const blob_id& id) = 0;
};

}  // namespace chorus::persistence
