#include "http_edge/error_table.hpp"

#include <caf/atom.hpp>
#include <caf/sec.hpp>

#include "actors/audio/media.hpp"
#include "common/json_log.hpp"
#include "messages/errors.hpp"
#include "persistence/errc.hpp"

namespace chorus::edge {

http_error to_http(const caf::error& err) {
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
      case caf::sec::request_timeout:
        return {503, "timeout", 1};
      case caf::sec::request_receiver_down:
      case caf::sec::no_route_to_receiving_node:
        // The owner went away mid-request: retrying reaches the new owner.
        return {503, "unavailable", 1};
      default:
        break;
    }
  }
  if (err.category() == persistence::errc_category) {
    switch (static_cast<persistence::errc>(err.code())) {
      case persistence::errc::postgres_unavailable:
      case persistence::errc::redis_unavailable:
        return {503, "storage_unavailable", 2};
      case persistence::errc::blob_unavailable:
        return {503, "storage_unavailable", 2};
      case persistence::errc::blob_not_found:
        return {404, "not_found", 0};
      case persistence::errc::blob_bad_range:
        return {416, "range_not_satisfiable", 0};
      case persistence::errc::corrupt_stream:
        // Stored data this version cannot read: an operator must look; retrying will not help.
        return {500, "corrupt_stream", 0};
      case persistence::errc::version_conflict:
        // Another writer kept winning the race for the same entity; the entity retried already.
        return {409, "conflict", 0};
      default:
        break;
    }
  }
  if (err.category() == audio::audio_category) {
    switch (static_cast<audio::audio_errc>(err.code())) {
      case audio::audio_errc::unsupported_format:
        return {415, "unsupported_media_type", 0};
      case audio::audio_errc::invalid_media:
        return {422, "invalid_media", 0};
      case audio::audio_errc::too_long:
        return {422, "too_long", 0};
      case audio::audio_errc::unsupported_stream:
        return {422, "unsupported_stream", 0};
      case audio::audio_errc::timed_out:
        return {503, "timeout", 2};
      default:
        break;
    }
  }
  if (err.category() == caf::atom("exit")) {
    // The owning entity or node terminated while the request was in flight.
    return {503, "unavailable", 1};
  }
  if (err.category() == runtime_category) {
    switch (static_cast<runtime_errc>(err.code())) {
      case runtime_errc::no_owner:
      case runtime_errc::overloaded:
        return {503, "unavailable", 1};
      case runtime_errc::bad_payload:
        return {400, "bad_request", 0};
      case runtime_errc::parked:
        // The message itself makes the entity fail; sending it again will not help.
        return {422, "message_parked", 0};
      default:
        break;
    }
  }
  if (err.category() == domain_category) {
    switch (static_cast<domain_errc>(err.code())) {
      case domain_errc::validation:
        return {422, "validation", 0};
      case domain_errc::unauthenticated:
        return {401, "unauthenticated", 0};
      case domain_errc::forbidden:
        return {403, "forbidden", 0};
      case domain_errc::not_found:
        return {404, "not_found", 0};
      case domain_errc::conflict:
        return {409, "conflict", 0};
      case domain_errc::invalid_credentials:
        return {401, "invalid_credentials", 0};
      case domain_errc::username_taken:
        return {409, "username_taken", 0};
      case domain_errc::email_taken:
        return {409, "email_taken", 0};
      case domain_errc::weak_password:
        return {422, "weak_password", 0};
      case domain_errc::too_many_attempts:
        return {429, "too_many_attempts", 60};
      default:
        break;
    }
  }
  return {500, "internal", 0};
}

std::string error_body(const std::string& code, const std::string& message,
                       const std::string& request_id) {
  std::string out = "{\"error\":{\"code\":";
  append_json_string(out, code);
  out += ",\"message\":";
  append_json_string(out, message);
  out += ",\"request_id\":";
  append_json_string(out, request_id);
  out += "}}";
  return out;
}

}  // namespace chorus::edge
