#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace chorus::test {

/// A raw TCP connection to 127.0.0.1:port, for requests no HTTP client library would send
/// (half requests, slow uploads, garbage). Closed on destruction.
class raw_conn {
 public:
  explicit raw_conn(uint16_t port);
  ~raw_conn();
  raw_conn(const raw_conn&) = delete;
  raw_conn& operator=(const raw_conn&) = delete;
  raw_conn(raw_conn&& o) noexcept : fd_(o.fd_), connected_(o.connected_) { o.fd_ = -1; }

  [[nodiscard]] bool connected() const { return connected_; }

  /// Sends all of `bytes`; false when the server closed meanwhile.
  bool send(const std::string& bytes);

  /// Whether the server sent something (or closed) within `timeout`.
  bool readable(std::chrono::milliseconds timeout);

  /// Reads until the server closes the connection or `timeout` passes without data; what came.
  std::string read_all(std::chrono::milliseconds timeout);

  /// Whether the last read_all ended because the server closed the connection.
  [[nodiscard]] bool closed_by_server() const { return closed_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
};

}  // namespace chorus::test
