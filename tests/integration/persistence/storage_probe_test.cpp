#include <doctest/doctest.h>

#include <chrono>

#include "messages/errors.hpp"
#include "persistence/errc.hpp"
#include "persistence/storage_probe.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace std::chrono_literals;

TEST_CASE("the PostgreSQL that ./chorus started answers on the configured DSN") {
  auto storage = test::real_storage();
  auto err = persistence::probe_postgres(storage.postgres_dsn, 2s);
  CHECK_MESSAGE(!err, error_detail(err));
}

TEST_CASE("the Redis that ./chorus started answers PING on the configured URL") {
  auto storage = test::real_storage();
  auto err = persistence::probe_redis(storage.redis_url, 1s);
  CHECK_MESSAGE(!err, error_detail(err));
}

TEST_CASE(
    "a PostgreSQL that is not there is an error value, not an exception, within the timeout") {
  auto port = test::free_port();
  auto start = std::chrono::steady_clock::now();
  auto err = persistence::probe_postgres(
      "postgresql://chorus@127.0.0.1:" + std::to_string(port) + "/chorus", 1s);
  REQUIRE(err);
  CHECK(err.code() == static_cast<uint8_t>(persistence::errc::postgres_unavailable));
  CHECK(error_detail(err).find(std::to_string(port)) != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < 3s);
}

TEST_CASE("a Redis that is not there is an error value within the timeout") {
  auto port = test::free_port();
  auto start = std::chrono::steady_clock::now();
  auto err = persistence::probe_redis("redis://127.0.0.1:" + std::to_string(port), 500ms);
  REQUIRE(err);
  CHECK(err.code() == static_cast<uint8_t>(persistence::errc::redis_unavailable));
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE("a wrong database name is reported by PostgreSQL's own message") {
  auto storage = test::real_storage();
  auto dsn = storage.postgres_dsn.substr(0, storage.postgres_dsn.rfind('/')) + "/no_such_db";
  auto err = persistence::probe_postgres(dsn, 2s);
  REQUIRE(err);
  CHECK(error_detail(err).find("no_such_db") != std::string::npos);
}
