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

}  // namespace chorus
