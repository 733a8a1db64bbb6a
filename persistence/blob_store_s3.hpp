#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "persistence/blob_store.hpp"

namespace chorus::persistence {

/// Where and how the S3 blob store talks to its bucket.
struct blob_store_s3_config {
  /// scheme://host[:port] of the S3 API, e.g. `https://s3.eu-west-1.amazonaws.com` or
  /// `http://127.0.0.1:9000`; requests are path-style (`/<bucket>/<key>`).
  std::string endpoint;
  std::string region = "us-east-1";
  std::string bucket;
  std::string access_key;
  std::string secret_key;
  /// Put before the hex name in every object key, e.g. "blobs/".
  std::string key_prefix;
  /// Blobs larger than this go up as a multipart upload, one part in memory at a time.
  uint64_t multipart_threshold = 64ull << 20;
  /// Size of each part but the last; S3 wants at least 5 MiB. Grown when a blob would need more
  /// than S3's 10,000 parts.
  uint64_t part_size = 16ull << 20;
  std::chrono::milliseconds connect_timeout{2000};
  /// For each read or write on the socket, not for a whole transfer.
  std::chrono::milliseconds io_timeout{30000};
  /// Where `put(source)` spools the bytes before uploading (the name is only known at the end);
  /// empty: the system's temp directory.
  std::string spool_dir;
};

/// The blob store on S3 (or any server that speaks its API), signed with AWS Signature Version 4.
/// A blob is the object `<key_prefix><sha256 hex>`. A put first hashes the file, skips the upload
/// when an object of that name and size is there, else sends one PUT (streamed from the file) or a
/// multipart upload (aborted on failure). Reads are GETs with a Range header, streamed to the sink.
///
/// Owned by the node; any thread may call any member at once: requests go through a small pool of
/// keep-alive connections, one request per connection at a time. Unreachable servers, timeouts
/// and 5xx answers are `blob_unavailable`; refusals (credentials, missing bucket) `blob_error`.
/// cpp-httplib stays behind a pimpl.
class blob_store_s3 final : public blob_store {
 public:
  /// Checks the configuration (it does not contact the server: the first request does).
  static caf::expected<std::unique_ptr<blob_store_s3>> open(blob_store_s3_config config);

  ~blob_store_s3() override;

  caf::expected<blob_ref> put_file(const std::string& path) override;
  caf::expected<blob_ref> put(const blob_source& source) override;
  caf::expected<bool> exists(const blob_id& id) override;
  caf::expected<uint64_t> size(const blob_id& id) override;
  caf::expected<uint64_t> read(const blob_id& id, uint64_t offset, uint64_t length,
                               const blob_sink& sink) override;
  caf::error remove(const blob_id& id) override;

  /// The object key of a blob.
  [[nodiscard]] std::string key_of(const blob_id& id) const;

 private:
  struct impl;
  explicit blob_store_s3(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

}  // namespace chorus::persistence
