#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "tests/support/counters.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace std::chrono_literals;

TEST_CASE(
    "PostgreSQL stopped under load: requests meanwhile get 503 + Retry-After, service resumes "
    "by itself after the restart, and every acknowledged increment is there exactly once") {
  // A PostgreSQL of this test's own: stopping the shared one would break the tests beside it.
  test::postgres_server pg;
  test::test_cluster c{3, pg.dsn()};
  c.start_all();
  REQUIRE_MESSAGE(c.converged(20s), test::read_file(c.output_of(0)));

  constexpr int counters = 100, rounds = 6;
  auto ids = test::numbered("pg", counters);
  std::atomic<int> acked{0}, retried{0}, other{0}, lost{0};
  std::thread traffic{[&] {
    for (int round = 0; round < rounds; ++round)
      test::parallel_for(counters, 4, [&](int i) {
        // Through every node in turn: owners and non-owners.
        auto port = c.at(static_cast<size_t>(i) % c.size()).http_port;
        auto out =
            test::increment_until_acked(port, ids[i], ids[i] + "-" + std::to_string(round), 60s);
        if (out.acknowledged) ++acked;
        if (!out.acknowledged) ++lost;
        if (out.other > 0) {
          ++other;
          MESSAGE("not retryable: " << out.last_body);
        }
        if (out.retryable > 0) ++retried;
      });
  }};
  REQUIRE(test::eventually(30s, [&] { return acked >= counters; }));
  REQUIRE_MESSAGE(pg.stop_immediate(), pg.log());
  // Clients see the outage as retryable errors...
  CHECK(test::eventually(20s, [&] {
    auto r = test::http_post(c.at(0).http_port, "/v1/debug/counters/outage-probe/increment");
    return r.status == 503 && !r.header("Retry-After").empty() &&
           r.body.find(R"("code":"storage_unavailable")") != std::string::npos;
  }));
  // ...and the cluster is not ready while its database is gone.
  CHECK(test::eventually(10s, [&] { return c.get(0, "/readyz").status == 503; }));
  REQUIRE_MESSAGE(pg.start(), pg.log());
  traffic.join();
  MESSAGE(acked.load() << " increments acknowledged, " << retried.load()
                       << " of them after retrying 503s during the outage");
  CHECK(other == 0);
  CHECK(lost == 0);
  CHECK(acked == counters * rounds);
  CHECK(retried > 0);
  // Every counter has exactly its acknowledged increments: none lost, none applied twice.
  int wrong = 0;
  for (const auto& v : test::ask_all(c.at(1).http_port, ids, false))
    if (!v || v->value() != rounds) ++wrong;
  CHECK(wrong == 0);
  CHECK(test::eventually(10s, [&] { return c.get(0, "/readyz").status == 200; }));
}

namespace {

// How many counters of `prefix` the cluster's counter_totals read model shows at `value`.
int totals_at(const test::test_cluster& c, const std::string& prefix, int value) {
  auto out = test::run({"psql", c.postgres_dsn(), "-qAtc",
                        "SELECT count(*) FROM counter_totals WHERE id LIKE '" + prefix +
                            "%' AND value = " + std::to_string(value)});
  if (out.exit_code != 0) return -1;
  return std::atoi(out.output.c_str());
}

}  // namespace

TEST_CASE(
    "Redis killed under load: the cluster keeps answering writes, and when Redis returns the "
    "outbox relay resumes and the projection misses no event") {
  // A Redis of this test's own, killed with -9 and started again on the same port.
  test::redis_server redis;
  test::test_cluster c{3, "", redis.url()};
  c.start_all();
  REQUIRE_MESSAGE(c.converged(20s), test::read_file(c.output_of(0)));
  constexpr int counters = 40;
  auto ids = test::numbered("rk", counters);
  auto increment_all = [&](const std::string& round) {
    int ok = 0;
    test::parallel_for(counters, 4, [&](int i) {
      auto port = c.at(static_cast<size_t>(i) % c.size()).http_port;
      if (test::increment_until_acked(port, ids[i], ids[i] + "-" + round, 20s).acknowledged) ++ok;
    });
    return ok;
  };
  REQUIRE(increment_all("1") == counters);
  // The read model follows through the relay and the stream.
  CHECK(test::eventually(30s, [&] { return totals_at(c, "rk", 1) == counters; }));

  redis.kill();
  // Redis is not on the write path: every increment is acknowledged, at the first try, while
  // it is gone.
  std::atomic<int> first_try{0};
  test::parallel_for(counters, 4, [&](int i) {
    auto reply = test::http_post(c.at(static_cast<size_t>(i) % c.size()).http_port,
                                 "/v1/debug/counters/" + ids[i] + "/increment", "",
                                 {{"Idempotency-Key", ids[i] + "-2"}});
    if (reply.status == 200) ++first_try;
  });
  CHECK(first_try == counters);

  redis.start();
  // The relay publishes what it held back, and the projection applies every event once.
  CHECK(test::eventually(30s, [&] { return totals_at(c, "rk", 2) == counters; }));
  CHECK(totals_at(c, "rk", 3) == 0);
}

TEST_CASE(
    "Redis killed: rate limits keep holding per node and sign-up and login keep answering, and "
    "when Redis returns the limits are cluster-wide again") {
  test::redis_server redis;
  test::test_cluster c{2, "", redis.url()};
  c.set_section("chorus.edge", "read-limit=6\nwrite-limit=1000\nlimit-window=1min\n");
  c.start_all();
  REQUIRE_MESSAGE(c.converged(20s), test::read_file(c.output_of(0)));
  auto read = [&](size_t node) { return c.get(node, "/v1/users/" + std::string(32, 'b')); };

  redis.kill();
  // Each node falls back to its own in-process limiter: six reads each, then 429.
  for (size_t node = 0; node < 2; ++node) {
    for (int i = 0; i < 6; ++i) {
      auto r = read(node);
      CHECK_MESSAGE(r.status == 404, "node " << node << " read " << i << ": " << r.status);
      CHECK(r.header("RateLimit-Policy") == R"("read";q=6;w=60)");
    }
    auto over = read(node);
    CHECK(over.status == 429);
    CHECK(!over.header("Retry-After").empty());
  }
  // Accounts do not depend on Redis: sign-up and login (whose throttles fall back too) answer.
  auto reg = test::http_post(c.at(0).http_port, "/v1/auth/register",
                             R"({"username":"redisless","email":"redisless@example.org",)"
                             R"("password":"a long enough passphrase"})");
  CHECK_MESSAGE(reg.status == 201, reg.body);
  auto login = test::http_post(c.at(1).http_port, "/v1/auth/login",
                               R"({"username":"redisless","password":"a long enough passphrase"})");
  CHECK_MESSAGE(login.status == 200, login.body);

  redis.start();
  // Each node's Redis client comes back after its own back-off. While a node still counts
  // locally its budget is spent (429, nothing taken from Redis); its first 404 is its first
  // read counted in Redis again. Node 0, then node 1: two of the cluster's six.
  for (size_t node = 0; node < 2; ++node)
    CHECK_MESSAGE(test::eventually(10s, [&] { return read(node).status == 404; }),
                  "node " << node << " never went back to Redis");
  // One budget for the cluster: the remaining count goes down across both nodes.
  auto r0 = read(0);
  CHECK(r0.header("X-RateLimit-Remaining") == "3");
  auto r1 = read(1);
  CHECK(r1.header("X-RateLimit-Remaining") == "2");
  CHECK(read(0).header("X-RateLimit-Remaining") == "1");
  CHECK(read(1).header("X-RateLimit-Remaining") == "0");
  CHECK(read(0).status == 429);
  CHECK(read(1).status == 429);
}
