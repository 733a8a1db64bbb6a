#include "persistence/blob_store_fs.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "persistence/errc.hpp"
#include "persistence/sha256.hpp"
#include "persistence/unique_fd.hpp"

namespace chorus::persistence {

namespace {

caf::error fs_error(const std::string& what, const std::string& path, int err) {
  // std::error_code's message is thread-safe, unlike strerror.
  return make_error(errc::blob_error, what + " " + path + ": " +
                                          std::error_code{err, std::generic_category()}.message());
}

int lock_file(int fd, int operation) {
  int rc = -1;
  do {
    rc = ::flock(fd, operation);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

caf::error write_all(int fd, const char* data, size_t n, const std::string& path) {
  while (n > 0) {
    auto written = ::write(fd, data, n);
    if (written < 0) {
      if (errno == EINTR) continue;
      return fs_error("cannot write", path, errno);
    }
    data += written;
    n -= static_cast<size_t>(written);
  }
  return {};
}

caf::error fsync_dir(const std::string& dir) {
  unique_fd fd{open_file(dir, O_RDONLY | O_DIRECTORY)};
  if (!fd) return fs_error("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return fs_error("cannot fsync directory", dir, errno);
  return {};
}

caf::error make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return {};
  return fs_error("cannot create directory", dir, errno);
}

std::string random_name() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char name[17];
  std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(rng()));
  return name;
}

// A temp file under <root>/tmp, locked for as long as the put that writes it lives: open() removes
// only the temp files it can lock, so a put running in another process or store is left alone.
// Removed on destruction unless it was renamed into place.
class temp_file {
 public:
  temp_file(std::string path, unique_fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  temp_file(temp_file&& other) noexcept
      : path_(std::exchange(other.path_, {})), fd_(std::move(other.fd_)) {}
  temp_file& operator=(temp_file&&) = delete;
  ~temp_file() {
    // Unlinked before the descriptor closes, so the lock covers the file until it is gone.
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] int fd() const { return fd_.get(); }
  void renamed() { path_.clear(); }

 private:
  std::string path_;
  unique_fd fd_;
};

caf::expected<temp_file> create_temp(const std::string& dir) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto path = dir + "/" + random_name() + ".part";
    unique_fd fd{open_file(path, O_WRONLY | O_CREAT | O_EXCL, 0644)};
    if (!fd) {
      if (errno == EEXIST) continue;
      return fs_error("cannot create temp file", path, errno);
    }
    temp_file tmp{path, std::move(fd)};
    if (lock_file(tmp.fd(), LOCK_EX) != 0) return fs_error("cannot lock", path, errno);
    // A store opening at this moment may have removed the file between its creation and the
    // lock; then take another name.
    struct stat st {};
    if (::fstat(tmp.fd(), &st) != 0) return fs_error("cannot stat", path, errno);
    if (st.st_nlink == 0) {
      tmp.renamed();  // already gone
      continue;
    }
    return tmp;
  }
  return make_error(errc::blob_error, "cannot create a temp file in " + dir);
}

caf::error not_found(const blob_id& id, const std::string& root) {
  return make_error(errc::blob_not_found, "blob " + id.hex() + " is not in " + root);
}

}  // namespace

std::string blob_store_fs::default_root(const std::string& data_dir) {
  return data_dir + "/blobs";
}

caf::expected<std::unique_ptr<blob_store_fs>> blob_store_fs::open(const std::string& root) {
  if (root.empty()) return make_error(errc::blob_error, "the blob store's root directory is empty");
  auto tmp_dir = root + "/tmp";
  std::error_code ec;
  std::filesystem::create_directories(tmp_dir, ec);
  if (ec) return make_error(errc::blob_error, "cannot create " + tmp_dir + ": " + ec.message());
  std::unique_ptr<blob_store_fs> store{new blob_store_fs{root}};
  DIR* dir = ::opendir(tmp_dir.c_str());
  if (dir == nullptr) return fs_error("cannot list", tmp_dir, errno);
  while (auto* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    auto path = tmp_dir;
    path.append("/").append(name);
    unique_fd fd{open_file(path, O_RDONLY | O_NOFOLLOW)};
    if (!fd) continue;
    // Locked by a put that is still running: not a leftover.
    if (lock_file(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;
    if (::unlink(path.c_str()) == 0) ++store->removed_at_open_;
  }
  ::closedir(dir);
  return store;
}

std::string blob_store_fs::path_of(const blob_id& id) const {
  const auto& hex = id.hex();
  return root_ + "/" + hex.substr(0, 2) + "/" + hex.substr(2, 2) + "/" + hex;
}

caf::expected<blob_ref> blob_store_fs::put_file(const std::string& path) {
  unique_fd fd{open_file(path, O_RDONLY)};
  if (!fd) return fs_error("cannot open", path, errno);
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return put([&](char* buffer, size_t capacity) -> caf::expected<size_t> {
    for (;;) {
      auto n = ::read(fd.get(), buffer, capacity);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return fs_error("cannot read", path, errno);
    }
  });
}

caf::expected<blob_ref> blob_store_fs::put(const blob_source& source) {
  auto tmp = create_temp(root_ + "/tmp");
  if (!tmp) return tmp.error();
  sha256_stream hash;
  std::vector<char> buffer(blob_chunk_size);
  uint64_t total = 0;
  for (;;) {
    auto n = source(buffer.data(), buffer.size());
    if (!n) return n.error();
    if (*n == 0) break;
    if (*n > buffer.size())
      return make_error(errc::blob_error, "a blob source gave more bytes than it was asked for");
    hash.update({buffer.data(), *n});
    if (auto err = write_all(tmp->fd(), buffer.data(), *n, tmp->path())) return err;
    total += *n;
  }
  if (::fsync(tmp->fd()) != 0) return fs_error("cannot fsync", tmp->path(), errno);
  auto id = blob_id::parse(hash.hex_digest());
  if (!id) return make_error(errc::blob_error, "SHA-256 failed (OpenSSL)");
  blob_ref ref{*id, total};
  auto final_path = path_of(*id);
  struct stat st {};
  if (::stat(final_path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_size) == total)
    return ref;  // already stored; the temp file goes with `tmp`
  const auto& hex = id->hex();
  auto outer = root_ + "/" + hex.substr(0, 2);
  auto inner = outer + "/" + hex.substr(2, 2);
  if (auto err = make_dir(outer)) return err;
  if (auto err = make_dir(inner)) return err;
  // Atomic: readers see the whole blob or none. A concurrent put of the same bytes may replace
  // the file with identical bytes, which is harmless.
  if (::rename(tmp->path().c_str(), final_path.c_str()) != 0)
    return fs_error("cannot rename into", final_path, errno);
  tmp->renamed();
  // The new entry is durable once its directory is, and a new directory once its parent is.
  // Always all three: another put may have created the directories and not synced them yet.
  for (const auto* dir : {&inner, &outer, &root_})
    if (auto err = fsync_dir(*dir)) return err;
  return ref;
}

caf::expected<bool> blob_store_fs::exists(const blob_id& id) {
  struct stat st {};
  if (::stat(path_of(id).c_str(), &st) == 0) return S_ISREG(st.st_mode);
  if (errno == ENOENT || errno == ENOTDIR) return false;
  return fs_error("cannot stat", path_of(id), errno);
}

caf::expected<uint64_t> blob_store_fs::size(const blob_id& id) {
  struct stat st {};
  if (::stat(path_of(id).c_str(), &st) == 0) return static_cast<uint64_t>(st.st_size);
  if (errno == ENOENT || errno == ENOTDIR) return not_found(id, root_);
  return fs_error("cannot stat", path_of(id), errno);
}

caf::expected<uint64_t> blob_store_fs::read(const blob_id& id, uint64_t offset, uint64_t length,
                                            const blob_sink& sink) {
  auto path = path_of(id);
  unique_fd fd{open_file(path, O_RDONLY)};
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR) return not_found(id, root_);
    return fs_error("cannot open", path, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fs_error("cannot stat", path, errno);
  auto size = static_cast<uint64_t>(st.st_size);
  if (offset > size)
    return make_error(errc::blob_bad_range, "offset " + std::to_string(offset) +
                                                " is past the end of blob " + id.hex() + " (" +
                                                std::to_string(size) + " bytes)");
  auto end = length >= size - offset ? size : offset + length;
  if (end == offset) return uint64_t{0};
  ::posix_fadvise(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(end - offset),
                  POSIX_FADV_SEQUENTIAL);
  std::vector<char> buffer(std::min<uint64_t>(blob_chunk_size, end - offset));
  uint64_t pos = offset;
  while (pos < end) {
    auto want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), end - pos));
    auto n = ::pread(fd.get(), buffer.data(), want, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fs_error("cannot read", path, errno);
    }
    if (n == 0) return make_error(errc::blob_error, path + " shrank while it was read");
    pos += static_cast<uint64_t>(n);
    if (!sink({buffer.data(), static_cast<size_t>(n)})) break;
  }
  return pos - offset;
}

std::optional<std::string> blob_store_fs::local_path(const blob_id& id) const {
  return path_of(id);
}

caf::error blob_store_fs::remove(const blob_id& id) {
  auto path = path_of(id);
  if (::unlink(path.c_str()) == 0 || errno == ENOENT || errno == ENOTDIR) return {};
  return fs_error("cannot remove", path, errno);
}

}  // namespace chorus::persistence
