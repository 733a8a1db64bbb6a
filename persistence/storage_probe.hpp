#pragma once

#include <chrono>
#include <string>

#include <caf/error.hpp>

namespace chorus::persistence {

/// Connects to PostgreSQL at `dsn` (a libpq URI or key=value string) and runs `SELECT 1`.
/// Returns no error when it answered within `timeout` (libpq rounds the timeout up to 2 s).
caf::error probe_postgres(const std::string& dsn, std::chrono::milliseconds timeout);

/// Connects to Redis at `url` (`redis://host:port[/db]`) and sends PING.
/// Returns no error when it answered PONG within `timeout`.
caf::error probe_redis(const std::string& url, std::chrono::milliseconds timeout);

/// Host and port of a `redis://host:port[/db]` URL.
struct redis_address {
  std::string host;
  int port = 6379;
  int db = 0;
};

/// Parses a `redis://host[:port][/db]` URL; a bad_address error otherwise.
caf::error parse_redis_url(const std::string& url, redis_address& out);

}  // namespace chorus::persistence
