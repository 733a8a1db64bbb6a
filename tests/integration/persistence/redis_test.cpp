#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "messages/errors.hpp"
#include "persistence/errc.hpp"
#include "persistence/presence.hpp"
#include "persistence/rate_limiter.hpp"
#include "persistence/redis_cache.hpp"
#include "persistence/redis_client.hpp"
#include "persistence/redis_streams.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;

namespace {

// Keys are named per test run: the Redis is shared with the dev cluster and other runs.
std::string fresh_prefix(const std::string& what) {
  static std::mt19937_64 rng{std::random_device{}()};
  return "test:" + what + ":" + std::to_string(rng()) + ":";
}

std::shared_ptr<redis_client> connect(size_t pool_size = 4) {
  redis_client_config cfg;
  cfg.url = test::real_storage().redis_url;
  cfg.pool_size = pool_size;
  auto c = redis_client::make(cfg);
  if (!c) FAIL("cannot make a redis client: " << error_detail(c.error()));
  return *c;
}

bool is(const caf::error& err, errc code) {
  return err.category() == errc_category && err.code() == static_cast<uint8_t>(code);
}

// Deletes every key under `prefix` at the end of a test.
struct cleanup {
  std::shared_ptr<redis_client> redis;
  std::string prefix;
  ~cleanup() {
    auto keys = redis->call({"KEYS", prefix + "*"});
    if (!keys || !keys->is_array()) return;
    std::vector<std::string> names;
    for (const auto& k : keys->elements) names.push_back(k.str);
    static_cast<void>(redis->del(names));
  }
};

}  // namespace

TEST_CASE("Redis commands answer with every kind of reply, and values are binary-safe") {
  auto redis = connect();
  auto p = fresh_prefix("reply");
  cleanup done{redis, p};
  std::string binary{"a\0b\r\n\xff", 6};
  REQUIRE_FALSE(redis->set(p + "s", binary));
  auto got = redis->get(p + "s");
  REQUIRE(got);
  REQUIRE(got->has_value());
  CHECK(**got == binary);

  auto missing = redis->get(p + "missing");
  REQUIRE(missing);
  CHECK_FALSE(missing->has_value());

  auto n = redis->command({"INCRBY", p + "n", "41"});
  REQUIRE(n);
  CHECK(n->type == redis_reply::kind::integer);
  CHECK(n->integer == 41);

  auto pong = redis->command({"PING"});
  REQUIRE(pong);
  CHECK(pong->type == redis_reply::kind::status);
  CHECK(pong->str == "PONG");

  REQUIRE(redis->call({"RPUSH", p + "l", "x", "y"}));
  auto list = redis->command({"LRANGE", p + "l", "0", "-1"});
  REQUIRE(list);
  REQUIRE(list->type == redis_reply::kind::array);
  REQUIRE(list->elements.size() == 2);
  CHECK(list->elements[1].str == "y");

  auto nil = redis->command({"GET", p + "missing"});
  REQUIRE(nil);
  CHECK(nil->is_nil());
}

TEST_CASE(
    "a Redis error reply is a value from command() and a storage_error from everything else") {
  auto redis = connect();
  auto p = fresh_prefix("errors");
  cleanup done{redis, p};
  auto raw = redis->command({"NO_SUCH_COMMAND", "x"});
  REQUIRE(raw);
  CHECK(raw->is_error());
  CHECK(raw->str.find("unknown command") != std::string::npos);

  REQUIRE(redis->call({"RPUSH", p + "l", "x"}));
  auto wrong = redis->get(p + "l");
  REQUIRE_FALSE(wrong);
  CHECK(is(wrong.error(), errc::storage_error));
  CHECK(error_detail(wrong.error()).find("WRONGTYPE") != std::string::npos);
  // The connection is still fine after an error reply.
  CHECK_FALSE(redis->ping());
  CHECK(redis->available());
}

TEST_CASE("a redis URL that does not parse is refused when the client is made") {
  redis_client_config cfg;
  cfg.url = "http://127.0.0.1:6379";
  auto c = redis_client::make(cfg);
  REQUIRE_FALSE(c);
  CHECK(is(c.error(), errc::bad_address));
}

TEST_CASE("many threads share a Redis client with a pool of two connections") {
  auto redis = connect(2);
  auto p = fresh_prefix("pool");
  cleanup done{redis, p};
  constexpr int threads = 8, rounds = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&] {
      for (int i = 0; i < rounds; ++i)
        if (!redis->call({"INCR", p + "counter"})) ++failures;
    });
  for (auto& w : workers) w.join();
  CHECK(failures == 0);
  auto total = redis->get(p + "counter");
  REQUIRE(total);
  REQUIRE(total->has_value());
  CHECK(**total == std::to_string(threads * rounds));
}

TEST_CASE(
    "a Redis script runs by its SHA, and again after SCRIPT FLUSH emptied the server's cache") {
  auto redis = connect();
  auto p = fresh_prefix("script");
  redis_script script{"return ARGV[1] .. ':' .. KEYS[1]"};
  auto first = redis->eval_script(script, {p + "k"}, {"hello"});
  REQUIRE(first);
  CHECK(first->str == "hello:" + p + "k");
  auto sha = script.sha();
  CHECK(sha.size() == 40);

  REQUIRE(redis->call({"SCRIPT", "FLUSH"}));
  auto again = redis->eval_script(script, {p + "k"}, {"again"});
  REQUIRE(again);
  CHECK(again->str == "again:" + p + "k");
  // The fallback loaded it back: the next call runs by SHA again.
  auto exists = redis->command({"SCRIPT", "EXISTS", sha});
  REQUIRE(exists);
  REQUIRE(exists->elements.size() == 1);
  CHECK(exists->elements[0].integer == 1);
}

TEST_CASE("a Redis script that fails is a storage_error naming the failure") {
  auto redis = connect();
  redis_script broken{"return redis.call('NO_SUCH_COMMAND')"};
  auto r = redis->eval_script(broken, {}, {});
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::storage_error));
}

TEST_CASE(
    "the Redis cache loads on a miss, answers hits without the loader, and reloads after "
    "invalidate") {
  auto redis = connect();
  redis_cache_config cfg;
  cfg.prefix = fresh_prefix("cache");
  cleanup done{redis, cfg.prefix};
  redis_cache cache{redis, cfg};
  int loads = 0;
  std::string source = "v1";
  auto loader = [&]() -> caf::expected<std::string> {
    ++loads;
    return source;
  };
  auto a = cache.get_or_load("track:1", 60s, loader);
  REQUIRE(a);
  CHECK(*a == "v1");
  CHECK(loads == 1);
  auto b = cache.get_or_load("track:1", 60s, loader);
  REQUIRE(b);
  CHECK(*b == "v1");
  CHECK(loads == 1);

  source = "v2";
  REQUIRE_FALSE(cache.invalidate("track:1"));
  auto c = cache.get_or_load("track:1", 60s, loader);
  REQUIRE(c);
  CHECK(*c == "v2");
  CHECK(loads == 2);
  CHECK(cache.pending_invalidations() == 0);
}

TEST_CASE("a loader error is returned by the Redis cache and not cached") {
  auto redis = connect();
  redis_cache_config cfg;
  cfg.prefix = fresh_prefix("cache-err");
  cleanup done{redis, cfg.prefix};
  redis_cache cache{redis, cfg};
  auto failing = []() -> caf::expected<std::string> {
    return make_error(errc::postgres_unavailable, "db down");
  };
  auto r = cache.get_or_load("k", 60s, failing);
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::postgres_unavailable));
  auto ok = cache.get_or_load("k", 60s, []() -> caf::expected<std::string> { return "fresh"; });
  REQUIRE(ok);
  CHECK(*ok == "fresh");
}

TEST_CASE(
    "a value loaded before a concurrent write's invalidation is not cached in Redis after it") {
  auto redis = connect();
  redis_cache_config cfg;
  cfg.prefix = fresh_prefix("cache-race");
  cleanup done{redis, cfg.prefix};
  redis_cache reader{redis, cfg};
  redis_cache writer{redis, cfg};
  // The reader misses and loads the old row; while it loads, a writer commits and invalidates.
  auto slow_old_load = [&]() -> caf::expected<std::string> {
    REQUIRE_FALSE(writer.invalidate("user:7"));
    return std::string{"old"};
  };
  auto r = reader.get_or_load("user:7", 60s, slow_old_load);
  REQUIRE(r);
  CHECK(*r == "old");  // the reader's own answer is what it read
  int loads = 0;
  auto next = reader.get_or_load("user:7", 60s, [&]() -> caf::expected<std::string> {
    ++loads;
    return std::string{"new"};
  });
  REQUIRE(next);
  CHECK(*next == "new");
  CHECK(loads == 1);  // "old" was not cached
}

TEST_CASE("a Redis cache entry expires after its TTL") {
  auto redis = connect();
  redis_cache_config cfg;
  cfg.prefix = fresh_prefix("cache-ttl");
  cleanup done{redis, cfg.prefix};
  redis_cache cache{redis, cfg};
  int loads = 0;
  auto loader = [&]() -> caf::expected<std::string> {
    ++loads;
    return std::string{"v"};
  };
  REQUIRE(cache.get_or_load("k", 200ms, loader));
  REQUIRE(loads == 1);
  CHECK(test::eventually(3s, [&] {
    static_cast<void>(cache.get_or_load("k", 200ms, loader));
    return loads > 1;
  }));
}

TEST_CASE("two limiters on two clients share one GCRA limit per key through Redis") {
  rate_limiter_config cfg;
  cfg.prefix = fresh_prefix("rl");
  auto redis_a = connect();
  auto redis_b = connect();
  cleanup done{redis_a, cfg.prefix};
  rate_limiter node_a{redis_a, cfg};
  rate_limiter node_b{redis_b, cfg};
  gcra_limit limit{1, std::chrono::minutes{1}, 5};  // one per minute, burst of five
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    auto d = (i % 2 == 0 ? node_a : node_b).check("login:ip:10.0.0.1", limit);
    CHECK(d.allowed);
    CHECK(d.source == rate_source::redis);
    CHECK(d.remaining == 4 - i);
  }
  for (auto* node : {&node_a, &node_b}) {
    auto refused = node->check("login:ip:10.0.0.1", limit);
    CHECK_FALSE(refused.allowed);
    CHECK(refused.source == rate_source::redis);
    CHECK(refused.remaining == 0);
    // The next unit frees up one emission interval (60 s) after the first request.
    CHECK(refused.retry_after > 59s);
    CHECK(refused.retry_after <= 60s);
    CHECK(refused.reset_after > 4min);
  }
  // Another key is another limit.
  CHECK(node_a.check("login:ip:10.0.0.2", limit).allowed);
  CHECK(node_a.local_keys() == 0);
}

TEST_CASE("through Redis, a request costing more than the burst is refused for good") {
  rate_limiter_config cfg;
  cfg.prefix = fresh_prefix("rl-cost");
  auto redis = connect();
  cleanup done{redis, cfg.prefix};
  rate_limiter limiter{redis, cfg};
  gcra_limit limit{10, 1s, 3};
  auto r = limiter.check("upload:u1", limit, 4);
  CHECK_FALSE(r.allowed);
  CHECK(r.source == rate_source::redis);
  CHECK(r.retry_after == gcra_result::never);
  auto ok = limiter.check("upload:u1", limit, 3);
  CHECK(ok.allowed);
  CHECK(ok.remaining == 0);
  auto refused = limiter.check("upload:u1", limit);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after > 0s);
  CHECK(refused.retry_after <= 100ms);
}

TEST_CASE("presence in Redis tells online, away and offline, and a status expires with its TTL") {
  auto redis = connect();
  auto p = fresh_prefix("presence");
  cleanup done{redis, p};
  presence_store presence{redis, "n1", p};
  user_id ann{"ann"}, bob{"bob"}, cid{"cid"};
  REQUIRE(presence.set_online(ann, presence_status::online, 30s));
  REQUIRE(presence.set_online(bob, presence_status::away, 30s));
  auto a = presence.get(ann);
  REQUIRE(a);
  CHECK(*a == presence_status::online);
  auto many = presence.get_many({ann, bob, cid});
  REQUIRE(many);
  CHECK(*many ==
        std::vector{presence_status::online, presence_status::away, presence_status::offline});
  auto left = presence.set_offline(bob);
  REQUIRE(left);
  CHECK(*left == presence_status::offline);
  CHECK(*presence.get(bob) == presence_status::offline);
  CHECK(presence.get_many({})->empty());

  REQUIRE(presence.set_online(cid, presence_status::online, 300ms));
  CHECK(*presence.get(cid) == presence_status::online);
  CHECK(test::eventually(3s, [&] {
    auto s = presence.get(cid);
    return s && *s == presence_status::offline;
  }));
}

TEST_CASE(
    "presence over two nodes: online while either holds a connection, away only when both are "
    "away, and a node that vanished stops counting when its mark expires") {
  auto redis = connect();
  auto p = fresh_prefix("presence2");
  cleanup done{redis, p};
  presence_store n1{redis, "n1", p}, n2{redis, "n2", p};
  user_id ann{"ann"};
  REQUIRE(n1.set_online(ann, presence_status::online, 30s));
  auto both = n2.set_online(ann, presence_status::away, 30s);
  REQUIRE(both);
  CHECK(*both == presence_status::online);  // what the mark leaves: n1's is online
  CHECK(*n2.get(ann) == presence_status::online);
  // n1's last connection closes: n2 still holds one, an away one.
  auto left = n1.set_offline(ann);
  REQUIRE(left);
  CHECK(*left == presence_status::away);
  CHECK(*n1.get(ann) == presence_status::away);
  REQUIRE(n2.set_online(ann, presence_status::online, 30s));
  CHECK(*n1.get(ann) == presence_status::online);
  left = n2.set_offline(ann);
  REQUIRE(left);
  CHECK(*left == presence_status::offline);

  // n1 marks ann for a short while and is never heard of again; n2's mark stays.
  REQUIRE(n1.set_online(ann, presence_status::online, 200ms));
  REQUIRE(n2.set_online(ann, presence_status::away, 30s));
  CHECK(*n2.get(ann) == presence_status::online);
  CHECK(test::eventually(3s, [&] {
    auto s = n2.get(ann);
    return s && *s == presence_status::away;
  }));
}

TEST_CASE(
    "a Redis stream entry travels through a consumer group, is pending until acked, then not") {
  auto redis = connect();
  auto p = fresh_prefix("stream");
  cleanup done{redis, p};
  auto stream = p + "events";
  REQUIRE_FALSE(xgroup_create(*redis, stream, "relay", "0", true));
  CHECK_FALSE(xgroup_create(*redis, stream, "relay", "0", true));  // BUSYGROUP is fine

  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = xadd(*redis, stream, {{"type", "t.Played"}, {"n", std::to_string(i)}});
    REQUIRE(id);
    ids.push_back(*id);
  }
  auto got = xreadgroup(*redis, "relay", "c1", stream, 10, 100ms, ">");
  REQUIRE(got);
  REQUIRE(got->size() == 3);
  CHECK((*got)[0].id == ids[0]);
  REQUIRE((*got)[2].fields.size() == 2);
  CHECK((*got)[2].fields[0].first == "type");
  CHECK((*got)[2].fields[0].second == "t.Played");
  CHECK((*got)[2].fields[1].second == "2");

  auto acked = xack(*redis, stream, "relay", {ids[0], ids[1]});
  REQUIRE(acked);
  CHECK(*acked == 2);
  auto pending = xreadgroup(*redis, "relay", "c1", stream, 10, 0ms, "0");
  REQUIRE(pending);
  REQUIRE(pending->size() == 1);
  CHECK((*pending)[0].id == ids[2]);
  // Nothing new: a blocking read comes back empty at the end of its block time.
  auto start = std::chrono::steady_clock::now();
  auto none = xreadgroup(*redis, "relay", "c1", stream, 10, 200ms, ">");
  REQUIRE(none);
  CHECK(none->empty());
  CHECK(std::chrono::steady_clock::now() - start >= 150ms);
}

TEST_CASE("a blocking Redis stream read may outlast the command timeout without failing") {
  redis_client_config cfg;
  cfg.url = test::real_storage().redis_url;
  cfg.command_timeout = 100ms;
  auto redis = *redis_client::make(cfg);
  auto p = fresh_prefix("stream-block");
  cleanup done{redis, p};
  REQUIRE_FALSE(xgroup_create(*redis, p + "s", "g", "$", true));
  auto none = xreadgroup(*redis, "g", "c", p + "s", 1, 400ms, ">");
  REQUIRE(none);
  CHECK(none->empty());
  CHECK(redis->available());
}

TEST_CASE("XADD with an approximate MAXLEN keeps the Redis stream near that length") {
  auto redis = connect();
  auto p = fresh_prefix("stream-trim");
  cleanup done{redis, p};
  for (int i = 0; i < 1000; ++i) REQUIRE(xadd(*redis, p + "s", {{"i", std::to_string(i)}}, 10));
  auto len = redis->call({"XLEN", p + "s"});
  REQUIRE(len);
  CHECK(len->integer < 1000);
  CHECK(len->integer >= 10);
}
