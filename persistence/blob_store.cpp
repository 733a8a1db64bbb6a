#include "persistence/blob_store.hpp"

#include "persistence/sha256.hpp"

namespace chorus::persistence {

std::optional<blob_id> blob_id::parse(std::string_view hex) {
  if (!is_sha256_hex(hex)) return std::nullopt;
  return blob_id{std::string{hex}};
}

}  // namespace chorus::persistence
