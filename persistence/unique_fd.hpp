#pragma once

#include <cerrno>
#include <string>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

// Internal to persistence/: the blob stores' file descriptors.
namespace chorus::persistence {

/// Owns a file descriptor and closes it. Moved, never copied.
class unique_fd {
 public:
  explicit unique_fd(int fd = -1) : fd_(fd) {}
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&&) = delete;
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  [[nodiscard]] int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

/// open(2) with O_CLOEXEC, retried on EINTR; -1 and errno on failure.
inline int open_file(const std::string& path, int flags, mode_t mode = 0) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

}  // namespace chorus::persistence
