#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "persistence/errc.hpp"
#include "persistence/storage_probe.hpp"

using namespace chorus::persistence;

TEST_CASE("a redis url gives host, port and database") {
  redis_address addr;
  REQUIRE_FALSE(parse_redis_url("redis://127.0.0.1:56379/3", addr));
  CHECK(addr.host == "127.0.0.1");
  CHECK(addr.port == 56379);
  CHECK(addr.db == 3);
  REQUIRE_FALSE(parse_redis_url("redis://cache", addr));
  CHECK(addr.host == "cache");
  CHECK(addr.port == 6379);
  CHECK(addr.db == 0);
}

TEST_CASE("malformed redis urls are bad_address errors that say what is wrong") {
  redis_address addr;
  for (const auto* url :
       {"http://x:1", "redis://:6379", "redis://h:99999", "redis://h:12ab", "redis://h:1/x"}) {
    CAPTURE(url);
    auto err = parse_redis_url(url, addr);
    REQUIRE(err);
    CHECK(err.category() == errc_category);
    CHECK(err.code() == static_cast<uint8_t>(errc::bad_address));
    CHECK(chorus::error_detail(err).find(url) != std::string::npos);
  }
}
