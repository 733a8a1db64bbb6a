#pragma once

#include <string>
#include <utility>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace chorus {

/// Failures of the entity runtime (router, registry, entity dispatch).
enum class runtime_errc : uint8_t {
  none = 0,
  /// No live node has the role that hosts this kind of entity.
  no_owner,
  /// No entity kind of that name is registered on the owning node.
  unknown_kind,
  /// The entity does not handle this message type.
  unknown_message_type,
  /// The payload does not parse as the message type it claims to be.
  bad_payload,
  /// The entity is overloaded (its queue is older than the configured limit).
  overloaded,
  /// The entity failed (threw) while handling the message; it restarts from its stored state.
  entity_failed,
  /// The message failed on every delivery attempt and was parked as a dead letter.
  parked,
};

/// CAF's error category of runtime_errc.
constexpr caf::atom_value runtime_category = caf::atom("runtime");

/// What a domain (users, audio, social, ...) refuses, each with its HTTP meaning in the edge's
/// one table (http_edge/error_table.cpp).
enum class domain_errc : uint8_t {
  none = 0,
  /// A field is missing, of the wrong type or out of range (422).
  validation,
  /// No valid session (401).
  unauthenticated,
  /// Signed in, but not allowed to do this (403).
  forbidden,
  /// No such object (404).
  not_found,
  /// The request contradicts the current state (409).
  conflict,
  /// Wrong name or password (401); never says which.
  invalid_credentials,
  /// The username belongs to another account (409).
  username_taken,
  /// The address belongs to another account (409).
  email_taken,
  /// The password is too short, too long or too common (422).
  weak_password,
  /// Too many attempts from this client for now (429).
  too_many_attempts,
};

/// CAF's error category of domain_errc.
constexpr caf::atom_value domain_category = caf::atom("domain");

/// Makes a caf::error of `category` whose context carries a human-readable detail. Every error
/// enum of Chorus is made through this, so `error_detail` can render any of them.
template <class Enum>
caf::error make_detailed_error(Enum code, caf::atom_value category, std::string detail) {
  return caf::error{static_cast<uint8_t>(code), category, caf::make_message(std::move(detail))};
}

/// The detail an error was made with, or CAF's rendering when it carries none.
inline std::string error_detail(const caf::error& err) {
  if (!err) return {};
  if (err.context().match_elements<std::string>()) return err.context().get_as<std::string>(0);
  return caf::to_string(err);
}

}  // namespace chorus

namespace chorus {

inline caf::error make_error(runtime_errc code, std::string detail) {
  return make_detailed_error(code, runtime_category, std::move(detail));
}

inline caf::error make_error(domain_errc code, std::string detail) {
  return make_detailed_error(code, domain_category, std::move(detail));
}

/// Whether `err` is `code` of domain_errc.
inline bool is(const caf::error& err, domain_errc code) {
  return err && err.category() == domain_category && err.code() == static_cast<uint8_t>(code);
}

}  // namespace chorus
