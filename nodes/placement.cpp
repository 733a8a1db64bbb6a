#include "nodes/placement.hpp"

namespace chorus {

namespace {

uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// splitmix64's finalizer: FNV alone leaves similar keys with correlated high bits.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t placement_score(std::string_view node, std::string_view key) {
  return mix(fnv1a(key, fnv1a(node) ^ 0x9e3779b97f4a7c15ULL));
}

std::optional<size_t> rendezvous_owner(std::string_view key,
                                       const std::vector<std::string>& candidates) {
  std::optional<size_t> best;
  uint64_t best_score = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    auto score = placement_score(candidates[i], key);
    // Ties (vanishingly rare) go to the smaller name, so every node picks the same owner.
    if (!best || score > best_score || (score == best_score && candidates[i] < candidates[*best])) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

}  // namespace chorus
