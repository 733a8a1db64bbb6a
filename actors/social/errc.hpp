#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <caf/atom.hpp>
#include <caf/error.hpp>

#include "messages/errors.hpp"

namespace chorus::social {

/// Why the social domain refused or failed. Delivery errors say whether trying again later can
/// help, because the delivery worker retries the one and gives up on the other.
enum class social_errc : uint8_t {
  none = 0,
  /// Not delivered this time, may be next time: the server was unreachable or timed out, or it
  /// answered "not now" (SMTP 4xx, HTTP 408/429/5xx).
  delivery_failed_retryable,
  /// Not delivered and trying again will not help: the server refused for good (SMTP 5xx, HTTP
  /// 4xx) or the configuration or notification is unusable.
  delivery_failed_permanent,
  /// An email address that is malformed or could inject headers; refused before connecting.
  invalid_address,
};

/// CAF's error category of social_errc.
constexpr caf::atom_value social_category = caf::atom("social");

inline caf::error make_error(social_errc code, std::string detail) {
  return make_detailed_error(code, social_category, std::move(detail));
}

/// Whether `err` is `code` of social_errc.
inline bool is(const caf::error& err, social_errc code) {
  return err && err.category() == social_category && err.code() == static_cast<uint8_t>(code);
}

}  // namespace chorus::social
