#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "messages/users.pb.h"

namespace chorus::test {

/// `base` followed by a random number: a name no other test run uses (databases are per
/// cluster, Redis limits are shared).
std::string unique_name(const std::string& base);

/// The Authorization header of a session token.
std::vector<std::pair<std::string, std::string>> bearer(const std::string& token);

/// Registers `name` on the node at `port` and logs in (REQUIREs each step); with `artist`, the
/// account also becomes an artist. The user and its session token.
std::pair<messages::Me, std::string> member(uint16_t port, const std::string& name,
                                            bool artist = false);

}  // namespace chorus::test
