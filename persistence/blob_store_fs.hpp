#pragma once

#include <memory>
#include <string>

#include "persistence/blob_store.hpp"

namespace chorus::persistence {

/// The blob store on the local filesystem, the default. A blob lives at
/// `<root>/ab/cd/abcd...` (the first two bytes of its name as directories, so no directory grows
/// huge). A put writes a temp file in `<root>/tmp` (same filesystem), hashing as it writes, then
/// fsyncs it, renames it into place and fsyncs the directory: a blob is either whole or absent,
/// and a crash leaves only temp files, which `open` removes.
///
/// Owned by the node (one per root); holds no mutable state, so any thread may call any member at
/// once, and concurrent puts of the same bytes are safe. Several processes may share a root.
class blob_store_fs final : public blob_store {
 public:
  /// `<data_dir>/blobs`, the root unless the configuration names another.
  static std::string default_root(const std::string& data_dir);

  /// Opens the store at `root`, creating it if needed, and removes the temp files that no live
  /// put holds (each put holds a lock on its temp file, so one running elsewhere is left alone).
  static caf::expected<std::unique_ptr<blob_store_fs>> open(const std::string& root);

  caf::expected<blob_ref> put_file(const std::string& path) override;
  caf::expected<blob_ref> put(const blob_source& source) override;
  caf::expected<bool> exists(const blob_id& id) override;
  caf::expected<uint64_t> size(const blob_id& id) override;
  caf::expected<uint64_t> read(const blob_id& id, uint64_t offset, uint64_t length,
                               const blob_sink& sink) override;
  [[nodiscard]] std::optional<std::string> local_path(const blob_id& id) const override;
  caf::error remove(const blob_id& id) override;

  [[nodiscard]] const std::string& root() const { return root_; }

  /// How many leftover temp files `open` removed (for the start-up log).
  [[nodiscard]] size_t removed_at_open() const { return removed_at_open_; }

 private:
  explicit blob_store_fs(std::string root) : root_(std::move(root)) {}

  [[nodiscard]] std::string path_of(const blob_id& id) const;

  std::string root_;
  size_t removed_at_open_ = 0;
};

}  // namespace chorus::persistence
