#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "nodes/placement.hpp"

using chorus::rendezvous_owner;

namespace {

std::string key(int i) {
  return "counter/" + std::to_string(i);
}

std::string owner(int i, const std::vector<std::string>& nodes) {
  return nodes[*rendezvous_owner(key(i), nodes)];
}

}  // namespace

TEST_CASE("10,000 entities spread over 3 nodes within 15% of a third each") {
  std::vector<std::string> nodes{"n1", "n2", "n3"};
  std::map<std::string, int> share;
  for (int i = 0; i < 10000; ++i) ++share[owner(i, nodes)];
  for (const auto& n : nodes) {
    CAPTURE(n);
    CHECK(share[n] > 10000 / 3 * 0.85);
    CHECK(share[n] < 10000 / 3 * 1.15);
  }
}

TEST_CASE("the owner does not depend on the order nodes are listed in") {
  std::vector<std::string> a{"n1", "n2", "n3"}, b{"n3", "n1", "n2"};
  for (int i = 0; i < 1000; ++i) CHECK(owner(i, a) == owner(i, b));
}

TEST_CASE("adding a fourth node moves about a quarter of the entities, all to the new node") {
  std::vector<std::string> three{"n1", "n2", "n3"}, four{"n1", "n2", "n3", "n4"};
  int moved = 0;
  for (int i = 0; i < 10000; ++i) {
    auto before = owner(i, three), after = owner(i, four);
    if (before != after) {
      ++moved;
      CHECK(after == "n4");
    }
  }
  CHECK(moved > 2000);
  CHECK(moved < 3000);
}

TEST_CASE("removing a node moves only the entities it owned") {
  std::vector<std::string> three{"n1", "n2", "n3"}, two{"n1", "n3"};
  for (int i = 0; i < 10000; ++i) {
    auto before = owner(i, three);
    if (before != "n2") CHECK(owner(i, two) == before);
  }
}

TEST_CASE("no candidates means no owner") {
  CHECK_FALSE(rendezvous_owner("counter/1", {}).has_value());
}
