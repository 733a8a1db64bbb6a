#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "messages/errors.hpp"
#include "persistence/errc.hpp"
#include "persistence/rate_limiter.hpp"
#include "persistence/redis_cache.hpp"
#include "persistence/redis_client.hpp"
#include "persistence/storage_probe.hpp"
#include "tests/support/process.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// A redis-server of the test's own, on a free port with no persistence, which the test may kill,
// pause and restart without disturbing the shared one.
class own_redis {
 public:
  own_redis() : port_(test::free_port()) { start(); }

  void start() {
    process_.reset();
    process_ = std::make_unique<test::child_process>(
        std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind",
                                 "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                                 dir_.path()},
        dir_.path() + "/redis.log");
    auto up = test::eventually(10s, [&] { return !probe_redis(url(), 200ms); });
    if (!up) FAIL("redis-server did not start: " << test::read_file(dir_.path() + "/redis.log"));
  }

  void kill() {
    process_->signal(SIGKILL);
    REQUIRE(process_->wait_exit(5s));
  }
  void pause() { process_->signal(SIGSTOP); }
  void resume() { process_->signal(SIGCONT); }

  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  test::temp_dir dir_;
  uint16_t port_;
  std::unique_ptr<test::child_process> process_;
};

std::shared_ptr<redis_client> connect(const std::string& url) {
  redis_client_config cfg;
  cfg.url = url;
  cfg.pool_size = 2;
  cfg.connect_timeout = 200ms;
  cfg.command_timeout = 200ms;
  auto c = redis_client::make(cfg);
  if (!c) FAIL("cannot make a redis client: " << error_detail(c.error()));
  return *c;
}

bool unavailable(const caf::error& err) {
  return err.category() == errc_category &&
         err.code() == static_cast<uint8_t>(errc::redis_unavailable);
}

template <class F>
clock_type::duration timed(F f) {
  auto start = clock_type::now();
  f();
  return clock_type::now() - start;
}

}  // namespace

TEST_CASE(
    "with its Redis killed, calls fail fast, the cache serves the loader and the limiter "
    "limits locally, and restarted, everything recovers by itself") {
  own_redis server;
  auto redis = connect(server.url());
  redis_cache cache{redis};
  rate_limiter limiter{redis};
  gcra_limit limit{1, std::chrono::minutes{1}, 3};
  int loads = 0;
  std::string source = "from-db";
  auto loader = [&]() -> caf::expected<std::string> {
    ++loads;
    return source;
  };
  REQUIRE_FALSE(redis->ping());
  REQUIRE(*cache.get_or_load("track:1", 60s, loader) == "from-db");
  REQUIRE(*cache.get_or_load("track:1", 60s, loader) == "from-db");
  REQUIRE(loads == 1);
  REQUIRE(limiter.check("before", limit).source == rate_source::redis);

  server.kill();

  // The first call finds the pooled connection closed, cannot reconnect, and says so.
  caf::error first;
  auto first_took = timed([&] { first = redis->ping(); });
  REQUIRE(first);
  CHECK(unavailable(first));
  CHECK(first_took < 1s);
  CHECK_FALSE(redis->available());

  // From then on every call fails fast, including the reconnection attempts the back-off lets
  // through (the port refuses at once). Call every 20 ms for 400 ms, spanning several of them.
  auto longest = clock_type::duration::zero();
  int calls = 0, wrong = 0;
  auto until = clock_type::now() + 400ms;
  test::eventually(1s, [&] {
    caf::error err;
    caf::expected<std::optional<std::string>> got{std::nullopt};
    caf::expected<redis_reply> raw{redis_reply{}};
    longest = std::max(longest, timed([&] { err = redis->ping(); }));
    longest = std::max(longest, timed([&] { got = redis->get("k"); }));
    longest = std::max(longest, timed([&] { raw = redis->command({"SET", "k", "v"}); }));
    if (!unavailable(err) || got || raw || !unavailable(got.error()) || !unavailable(raw.error()))
      ++wrong;
    calls += 3;
    return clock_type::now() >= until;
  });
  CHECK(wrong == 0);
  CHECK(longest < 50ms);
  MESSAGE(calls << " calls while down, the slowest took "
                << std::chrono::duration_cast<std::chrono::microseconds>(longest).count() << " µs");

  // The cache answers through the loader, and an invalidation is remembered.
  source = "from-db-2";
  REQUIRE(unavailable(cache.invalidate("track:1")));
  CHECK(cache.pending_invalidations() == 1);
  auto degraded = cache.get_or_load("track:1", 60s, loader);
  REQUIRE(degraded);
  CHECK(*degraded == "from-db-2");

  // The limiter keeps limiting, in process, with the same parameters.
  for (int i = 0; i < 3; ++i) {
    auto d = limiter.check("login:ip:10.0.0.9", limit);
    CHECK(d.allowed);
    CHECK(d.source == rate_source::local);
  }
  auto refused = limiter.check("login:ip:10.0.0.9", limit);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.source == rate_source::local);
  CHECK(refused.retry_after > 59s);
  CHECK(limiter.local_keys() == 1);

  server.start();

  // Nobody tells the client: it reconnects on its own once its back-off lets a call through.
  CHECK(test::eventually(10s, [&] { return !redis->ping(); }));
  CHECK(redis->available());
  auto after = cache.get_or_load("track:1", 60s, loader);
  REQUIRE(after);
  CHECK(*after == "from-db-2");
  CHECK(cache.pending_invalidations() == 0);
  auto loads_before = loads;
  CHECK(*cache.get_or_load("track:1", 60s, loader) == "from-db-2");
  CHECK(loads == loads_before);  // cached again
  CHECK(limiter.check("login:ip:10.0.0.9", limit).source == rate_source::redis);
}

TEST_CASE(
    "an invalidation lost while Redis hangs is replayed when it answers again, so no node "
    "reads the stale value") {
  own_redis server;
  auto node_a = connect(server.url());
  auto node_b = connect(server.url());
  redis_cache cache_a{node_a};
  redis_cache cache_b{node_b};
  auto v1 = []() -> caf::expected<std::string> { return std::string{"v1"}; };
  auto v2 = []() -> caf::expected<std::string> { return std::string{"v2"}; };
  REQUIRE(*cache_b.get_or_load("playlist:9", 60s, v1) == "v1");

  server.pause();
  // A write on node A commits while Redis hangs: its invalidation times out, it does not hang.
  caf::error err;
  auto took = timed([&] { err = cache_a.invalidate("playlist:9"); });
  REQUIRE(err);
  CHECK(unavailable(err));
  CHECK(took < 1s);
  CHECK(cache_a.pending_invalidations() == 1);
  // Node A does not trust the cache for that key meanwhile.
  CHECK(*cache_a.get_or_load("playlist:9", 60s, v2) == "v2");

  server.resume();
  CHECK(test::eventually(10s, [&] {
    auto v = cache_a.get_or_load("playlist:9", 60s, v2);
    return v && *v == "v2" && cache_a.pending_invalidations() == 0;
  }));
  // The value node B cached before the write is gone for node B too.
  auto b = cache_b.get_or_load("playlist:9", 60s, v2);
  REQUIRE(b);
  CHECK(*b == "v2");
}

TEST_CASE("a client whose Redis was never there fails fast after the first attempt") {
  auto redis = connect("redis://127.0.0.1:" + std::to_string(test::free_port()));
  REQUIRE(unavailable(redis->ping()));
  auto longest = clock_type::duration::zero();
  for (int i = 0; i < 100; ++i) {
    caf::error err;
    longest = std::max(longest, timed([&] { err = redis->ping(); }));
    CHECK(unavailable(err));
  }
  CHECK(longest < 50ms);
  rate_limiter limiter{redis};
  CHECK(limiter.check("k", gcra_limit{1, 1s, 1}).source == rate_source::local);
}
