#pragma once

#include <string>
#include <utility>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace chorus {

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
