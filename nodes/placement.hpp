#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus {

/// Rendezvous (highest-random-weight) score of `node` for the entity `key` ("kind/id").
uint64_t placement_score(std::string_view node, std::string_view key);

/// The index in `candidates` of the owner of `key`: the candidate with the highest score.
/// Removing a node moves only the keys it owned; adding one moves only the keys it now wins,
/// about 1/N of them. Nothing when `candidates` is empty.
std::optional<size_t> rendezvous_owner(std::string_view key,
                                       const std::vector<std::string>& candidates);

}  // namespace chorus
