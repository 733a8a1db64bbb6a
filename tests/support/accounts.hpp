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

/// A signed-in account as the route tests use it.
struct signed_in_user {
  std::string id;
  std::string token;
  std::string email;
};

/// member() under a unique name made from `base`.
signed_in_user new_user(uint16_t port, const std::string& base, bool artist = false);

struct http_reply;

/// A call as `u` (its bearer token), with a JSON body when `body` is not empty.
http_reply call_as(uint16_t port, const std::string& method, const std::string& path,
                   const signed_in_user& u, const std::string& body = "");

}  // namespace chorus::test
