#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "messages/debug.pb.h"
#include "nodes/placement.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace std::chrono_literals;

namespace {

std::optional<messages::CounterValue> parse_counter(const test::http_reply& reply) {
  if (reply.status != 200) return std::nullopt;
  messages::CounterValue v;
  if (!google::protobuf::util::JsonStringToMessage(reply.body, &v).ok()) return std::nullopt;
  return v;
}

// Runs fn(i) for i in [0, n) on `threads` threads.
template <class F>
void parallel_for(int n, int threads, F fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) fn(i);
    });
  for (auto& th : pool) th.join();
}

std::vector<std::string> numbered(const std::string& prefix, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(prefix + std::to_string(i));
  return ids;
}

// Asks every counter in `ids` through the node on `port`, 4 requests at a time: POST
// .../increment when `increment`, else GET. The answers in order; nothing where one failed.
std::vector<std::optional<messages::CounterValue>> ask_all(uint16_t port,
                                                           const std::vector<std::string>& ids,
                                                           bool increment) {
  std::vector<std::optional<messages::CounterValue>> out(ids.size());
  parallel_for(static_cast<int>(ids.size()), 4, [&](int i) {
    auto path = "/v1/debug/counters/" + ids[i];
    out[i] = parse_counter(increment ? test::http_post(port, path + "/increment")
                                     : test::http_get(port, path));
  });
  return out;
}

std::string owner_of(const std::string& id) {
  std::vector<std::string> nodes{"n1", "n2", "n3"};
  return nodes[*rendezvous_owner("counter/" + id, nodes)];
}

}  // namespace

TEST_CASE("10,000 entities addressed through n1 land on all 3 nodes, each on exactly one") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE(c.converged(20s));
  constexpr int n = 10000;
  auto ids = numbered("e", n);
  auto first = ask_all(c.at(0).http_port, ids, true);
  std::map<std::string, int> share;
  for (const auto& v : first) {
    REQUIRE(v);
    CHECK(v->value() == 1);
    ++share[v->node()];
  }
  for (const auto& node : {"n1", "n2", "n3"}) {
    CAPTURE(node);
    CHECK(share[node] > n / 3 * 0.85);
    CHECK(share[node] < n / 3 * 1.15);
  }
  // Exactly one activation per id across the cluster.
  double activations = 0;
  for (size_t i = 0; i < c.size(); ++i)
    activations += test::metric_value(test::http_get(c.at(i).metrics_port, "/metrics").body,
                                      R"(chorus_entity_activations_total{kind="counter"})");
  CHECK(activations == n);
  // Asked through another node, every entity answers from the same owner with its state.
  auto again = ask_all(c.at(2).http_port, ids, false);
  int mismatches = 0;
  for (int i = 0; i < n; ++i)
    if (!again[i] || again[i]->value() != 1 || again[i]->node() != first[i]->node()) ++mismatches;
  CHECK(mismatches == 0);
  // chorus status shows the active entities by kind.
  auto st = c.status(1);
  REQUIRE(st);
  REQUIRE(st->entities_size() == 1);
  CHECK(st->entities(0).kind() == "counter");
  CHECK(st->entities(0).active() == static_cast<uint32_t>(share["n2"]));
}

TEST_CASE(
    "killing the owner of 1,000 entities mid-traffic: every request succeeds or gets a "
    "retryable error, and after a retry every entity answers") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE(c.converged(20s));
  std::vector<std::string> ids;
  for (int i = 0; ids.size() < 1000; ++i)
    if (owner_of("k" + std::to_string(i)) == "n3") ids.push_back("k" + std::to_string(i));

  std::atomic<int> ok{0}, retryable{0}, other{0};
  std::atomic<bool> killed{false};
  std::thread traffic{[&] {
    for (int round = 0; round < 3; ++round)
      parallel_for(static_cast<int>(ids.size()), 4, [&](int i) {
        auto reply =
            test::http_post(c.at(0).http_port, "/v1/debug/counters/" + ids[i] + "/increment");
        if (reply.status == 200)
          ++ok;
        else if (reply.status == 503 && !reply.header("Retry-After").empty())
          ++retryable;
        else
          ++other;
        if (ok == 500 && !killed.exchange(true)) c.at(2).process->signal(SIGKILL);
      });
  }};
  traffic.join();
  REQUIRE(killed);
  MESSAGE(ok.load() << " succeeded, " << retryable.load() << " answered 503 + Retry-After");
  CHECK(other == 0);
  // After the retry every entity answers, now from a surviving node.
  REQUIRE(test::eventually(5s, [&] { return c.sees(0, "n3", "down"); }));
  int unanswered = 0;
  for (const auto& v : ask_all(c.at(0).http_port, ids, true))
    if (!v || v->node() == "n3") ++unanswered;
  CHECK(unanswered == 0);
}

TEST_CASE("counter routes refuse bad ids and unknown methods in the one error shape") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(test::eventually(20s, [&] { return c.get(0, "/healthz").status == 200; }));
  auto bad = c.get(0, "/v1/debug/counters/" + std::string(129, 'x'));
  CHECK(bad.status == 400);
  CHECK(bad.body.find(R"("code":"invalid_id")") != std::string::npos);
  bad = c.get(0, "/v1/debug/counters/a%20b");
  CHECK(bad.status == 400);
  auto v = parse_counter(c.get(0, "/v1/debug/counters/fresh"));
  REQUIRE(v);
  CHECK(v->value() == 0);
  CHECK(v->id() == "fresh");
}

TEST_CASE(
    "an entity that throws on a poison message keeps serving; the message is parked after "
    "3 tries and listed on its owner") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto owner = owner_of("victim");
  size_t owner_index = owner == "n1" ? 0 : owner == "n2" ? 1 : 2;
  REQUIRE(parse_counter(test::http_post(c.at(0).http_port, "/v1/debug/counters/victim/increment")));
  auto poisoned = test::http_post(c.at(0).http_port, "/v1/debug/counters/victim/poison");
  CHECK(poisoned.status == 422);
  CHECK(poisoned.body.find(R"("code":"message_parked")") != std::string::npos);
  auto after =
      parse_counter(test::http_post(c.at(1).http_port, "/v1/debug/counters/victim/increment"));
  REQUIRE(after);
  CHECK(after->node() == owner);
  auto letters = c.get(owner_index, "/v1/debug/dead-letters");
  REQUIRE(letters.status == 200);
  CHECK(letters.body.find(R"("id":"victim")") != std::string::npos);
  CHECK(letters.body.find(R"("attempts":3)") != std::string::npos);
  auto metrics = test::http_get(c.at(owner_index).metrics_port, "/metrics").body;
  CHECK(test::metric_value(metrics, R"(chorus_dead_letters_total{kind="counter"})") == 1);
  CHECK(test::metric_value(metrics, R"(chorus_entity_failures_total{kind="counter"})") == 3);
}

TEST_CASE(
    "a fourth node added through cluster.conf and a reload takes about a quarter of the "
    "entities, at most 30%, while requests keep working") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE(c.converged(20s));
  constexpr int n = 3000;
  auto ids = numbered("r", n);
  auto before = ask_all(c.at(0).http_port, ids, true);
  for (const auto& v : before) REQUIRE(v);
  // Traffic through n2 for the whole move.
  std::atomic<bool> moving{true};
  std::atomic<int> ok{0}, retryable{0}, other{0};
  std::thread traffic{[&] {
    for (int i = 0; moving; i = (i + 1) % n) {
      auto reply = test::http_get(c.at(1).http_port, "/v1/debug/counters/r" + std::to_string(i));
      if (reply.status == 200)
        ++ok;
      else if (reply.status == 503 && !reply.header("Retry-After").empty())
        ++retryable;
      else
        ++other;
    }
  }};
  auto added = c.add_node();
  c.start(added);
  for (size_t i = 0; i < 3; ++i) c.at(i).process->signal(SIGHUP);
  auto joined = c.converged(20s);
  moving = false;
  traffic.join();
  REQUIRE_MESSAGE(joined, "the 4th node did not join every view");
  MESSAGE(ok.load() << " requests answered during the move, " << retryable.load()
                    << " got 503 + Retry-After");
  CHECK(other == 0);
  CHECK(ok > 0);

  int moved = 0;
  auto after = ask_all(c.at(0).http_port, ids, false);
  for (int i = 0; i < n; ++i) {
    REQUIRE(after[i]);
    if (after[i]->node() == before[i]->node()) continue;
    ++moved;
    CHECK(after[i]->node() == "n4");
  }
  MESSAGE(moved << " of " << n << " entities moved to n4");
  CHECK(moved > n / 10);
  CHECK(moved <= n * 3 / 10);
}
