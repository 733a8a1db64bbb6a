#include "tests/support/accounts.hpp"

#include <random>

#include <doctest/doctest.h>
#include <google/protobuf/util/json_util.h>

#include "tests/support/test_cluster.hpp"

namespace chorus::test {

std::string unique_name(const std::string& base) {
  static std::mt19937_64 rng{std::random_device{}()};
  return base + std::to_string(rng() % 1000000000);
}

std::vector<std::pair<std::string, std::string>> bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

std::pair<messages::Me, std::string> member(uint16_t port, const std::string& name, bool artist) {
  auto reg = http_call(port, "POST", "/v1/auth/register",
                       R"({"username":")" + name + R"(","email":")" + name +
                           R"(@example.org","password":"correct horse battery"})");
  REQUIRE_MESSAGE(reg.status == 201, reg.body);
  auto login = http_call(port, "POST", "/v1/auth/login",
                         R"({"username":")" + name + R"(","password":"correct horse battery"})");
  REQUIRE_MESSAGE(login.status == 200, login.body);
  messages::LoginResult out;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  REQUIRE(google::protobuf::util::JsonStringToMessage(login.body, &out, opts).ok());
  if (artist)
    REQUIRE(http_call(port, "POST", "/v1/me/artist", "", bearer(out.token())).status == 200);
  return {out.user(), out.token()};
}

signed_in_user new_user(uint16_t port, const std::string& base, bool artist) {
  auto [me, token] = member(port, unique_name(base), artist);
  return {me.id(), token, me.email()};
}

http_reply call_as(uint16_t port, const std::string& method, const std::string& path,
                   const signed_in_user& u, const std::string& body) {
  return http_call(port, method, path, body, bearer(u.token),
                   body.empty() ? "" : "application/json");
}

}  // namespace chorus::test
