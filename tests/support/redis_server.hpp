#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tests/support/process.hpp"

namespace chorus::test {

/// A redis-server of a test's own on a free port, which the test may kill and restart without
/// disturbing the shared one. With `durable`, every write is in the append-only file (fsync
/// always) before Redis answers, so what it acknowledged survives a kill -9 and a restart.
/// Killed on destruction.
class redis_server {
 public:
  explicit redis_server(bool durable = true);
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  /// Starts (again, on the same port and directory) and waits until it answers PING.
  void start();
  /// SIGKILL, and waits until it is gone.
  void kill();

  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  temp_dir dir_;
  uint16_t port_;
  bool durable_;
  std::unique_ptr<child_process> process_;
};

}  // namespace chorus::test
