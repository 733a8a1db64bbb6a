#pragma once

#include <cstdint>
#include <string>

#include "tests/support/process.hpp"

namespace chorus::test {

/// A fresh database on a running PostgreSQL, dropped on destruction: each test cluster gets
/// its own, so streams never collide with other tests or runs.
class scratch_database {
 public:
  explicit scratch_database(uint16_t postgres_port);
  ~scratch_database();
  scratch_database(const scratch_database&) = delete;
  scratch_database& operator=(const scratch_database&) = delete;

  [[nodiscard]] const std::string& dsn() const { return dsn_; }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  uint16_t port_;
  std::string name_;
  std::string dsn_;
};

/// A PostgreSQL server of a test's own (initdb in a temp dir, a free port), for fault tests
/// that stop and restart it without disturbing the shared one. As root it runs as `postgres`.
/// Stopped on destruction.
class postgres_server {
 public:
  postgres_server();
  ~postgres_server();
  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;

  [[nodiscard]] uint16_t port() const { return port_; }
  /// DSN of the database `chorus` on it.
  [[nodiscard]] std::string dsn() const;

  /// Starts the server and waits until it accepts connections; false on failure (see log()).
  bool start();
  /// `pg_ctl stop -m immediate`: the crash-like stop, no shutdown checkpoint.
  bool stop_immediate();
  [[nodiscard]] std::string log() const;

 private:
  run_result pg(const std::vector<std::string>& argv) const;

  temp_dir dir_;
  std::string bin_;
  uint16_t port_;
  bool running_ = false;
};

}  // namespace chorus::test
