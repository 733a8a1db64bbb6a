#pragma once

#include <string>

#include <caf/error.hpp>

namespace chorus::edge {

/// How an error value is answered over HTTP.
struct http_error {
  int status = 500;
  std::string code;         ///< stable machine-readable code, e.g. "unavailable"
  int retry_after_seconds;  ///< > 0: send Retry-After
};

/// The one table that maps error values of every domain to HTTP. Anything unknown is a 500
/// "internal" — the detail goes to the log, not to the client.
http_error to_http(const caf::error& err);

/// The JSON error body every failure uses:
/// {"error":{"code":"...","message":"...","request_id":"..."}}.
std::string error_body(const std::string& code, const std::string& message,
                       const std::string& request_id);

}  // namespace chorus::edge
