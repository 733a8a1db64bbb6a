#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include <prometheus/registry.h>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/debug/counter_entity.hpp"
#include "common/json_log.hpp"
#include "messages/debug.pb.h"
#include "messages/errors.hpp"
#include "messages/node.pb.h"
#include "nodes/entity_probe.hpp"
#include "nodes/entity_registry.hpp"
#include "nodes/node_system_config.hpp"
#include "nodes/router.hpp"
#include "persistence/journal_actor.hpp"
#include "tests/fakes/memory_journal.hpp"
#include "tests/support/process.hpp"

using namespace chorus;
using namespace std::chrono_literals;

namespace {

// An actor system with one registry hosting the demo counter; no network.
struct registry_fixture {
  // Everything the actors reference is declared before the actor system, so it outlives every
  // actor: the system's destructor waits for them.
  node_system_config cfg;
  prometheus::Registry metrics;
  entity_probe probe{metrics};
  json_log log{"test"};
  entity_kinds kinds{{debug::counter_kind, debug::counter_factory()}};
  test::memory_journal_store store;
  deadline_wheel deadlines;
  caf::actor_system sys{cfg};
  persistence::journal_actor journal;
  std::shared_ptr<entity_directory> directory = std::make_shared<entity_directory>("t1");
  entity_registry_actor registry;

  explicit registry_fixture(registry_limits limits) {
    journal = persistence::spawn_journal(sys, store.factory(), {}, nullptr);
    entity_context ctx{"t1", {{debug::counter_domain, journal}}};
    registry = spawn_entity_registry(sys, kinds, ctx, limits, probe, log, directory, deadlines);
  }
  ~registry_fixture() {
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
  }

  caf::expected<messages::CounterValue> send(const std::string& kind, const std::string& id,
                                             const google::protobuf::Message& cmd) {
    entity_envelope env{kind, id, cmd.GetDescriptor()->full_name(), cmd.SerializeAsString(), "", 0};
    caf::scoped_actor self{sys};
    caf::expected<messages::CounterValue> out = caf::error{};
    self->request(registry, 5s, env)
        .receive(
            [&](std::string& bytes) {
              messages::CounterValue v;
              v.ParseFromString(bytes);
              out = v;
            },
            [&](caf::error& err) { out = err; });
    return out;
  }

  caf::expected<messages::CounterValue> increment(const std::string& id) {
    return send(debug::counter_kind, id, messages::CounterIncrement{});
  }

  double metric(const std::string& family, const std::string& label_value = "") {
    double total = 0;
    for (const auto& f : metrics.Collect())
      if (f.name == family)
        for (const auto& m : f.metric)
          for (const auto& l : m.label)
            if (label_value.empty() || l.value == label_value)
              total += f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    return total;
  }
};

}  // namespace

TEST_CASE("an entity is activated on its first message and keeps its state afterwards") {
  registry_fixture f{{60s, 100, 1s}};
  for (int i = 1; i <= 3; ++i) {
    auto v = f.increment("a");
    REQUIRE(v);
    CHECK(v->value() == i);
    CHECK(v->node() == "t1");
  }
  CHECK(f.metric("chorus_entity_activations_total") == 1);
  CHECK(f.metric("chorus_entities_active") == 1);
}

TEST_CASE("beyond the cap the least recently used entity is passivated") {
  registry_fixture f{{60s, 2, 1s}};
  REQUIRE(f.increment("a"));
  REQUIRE(f.increment("b"));
  REQUIRE(f.increment("a"));  // b is now the least recently used
  REQUIRE(f.increment("c"));  // evicts b
  CHECK(f.metric("chorus_entities_active") == 2);
  CHECK(f.metric("chorus_entity_passivations_total", "evicted") == 1);
  CHECK(f.increment("a")->value() == 3);  // a survived with its state
  // b comes back as a new activation, restored from its journal.
  CHECK(f.increment("b")->value() == 2);
  CHECK(f.metric("chorus_entity_activations_total") == 4);
}

TEST_CASE("an idle entity is passivated after the idle timeout") {
  registry_fixture f{{100ms, 100, 20ms}};
  REQUIRE(f.increment("a"));
  CHECK(test::eventually(5s, [&] { return f.metric("chorus_entities_active") == 0; }));
  CHECK(f.metric("chorus_entity_passivations_total", "idle") == 1);
}

TEST_CASE("an unknown kind and an unknown message type are error values") {
  registry_fixture f{{60s, 100, 1s}};
  auto v = f.send("nope", "a", messages::CounterGet{});
  REQUIRE_FALSE(v);
  CHECK(v.error().code() == static_cast<uint8_t>(runtime_errc::unknown_kind));
  v = f.send(debug::counter_kind, "a", messages::CounterValue{});
  REQUIRE_FALSE(v);
  CHECK(v.error().code() == static_cast<uint8_t>(runtime_errc::unknown_message_type));
  CHECK(error_detail(v.error()).find("chorus.messages.CounterValue") != std::string::npos);
}

TEST_CASE("a poison message is parked after 3 tries while the entity keeps serving others") {
  registry_fixture f{{60s, 100, 1s}};
  REQUIRE(f.increment("a"));
  messages::CounterPoison poison;
  entity_envelope env{debug::counter_kind,        "a", poison.GetDescriptor()->full_name(),
                      poison.SerializeAsString(), "",  0};
  caf::scoped_actor self{f.sys};
  auto sent = std::chrono::steady_clock::now();
  auto pending = self->request(f.registry, 10s, env);
  // While the poison message waits for its redeliveries, the same entity and others answer.
  CHECK(f.increment("a"));
  CHECK(f.increment("b"));
  caf::error outcome;
  pending.receive([](std::string&) {}, [&](caf::error& err) { outcome = err; });
  auto took = std::chrono::steady_clock::now() - sent;
  REQUIRE(outcome);
  CHECK(outcome.code() == static_cast<uint8_t>(runtime_errc::parked));
  CHECK(error_detail(outcome).find("failed 3 times") != std::string::npos);
  // Back-off between deliveries: 100 ms, then 200 ms.
  CHECK(took >= 300ms);
  CHECK(f.metric("chorus_entity_failures_total") == 3);
  CHECK(f.metric("chorus_dead_letters_total") == 1);
  CHECK(f.increment("a"));
  std::string letters;
  self->request(f.registry, 5s, dead_atom_v)
      .receive([&](std::string& bytes) { letters = bytes; }, [](caf::error&) {});
  messages::DeadLetters parsed;
  REQUIRE(parsed.ParseFromString(letters));
  REQUIRE(parsed.letters_size() == 1);
  CHECK(parsed.letters(0).id() == "a");
  CHECK(parsed.letters(0).attempts() == 3);
  CHECK(parsed.letters(0).type() == "chorus.messages.CounterPoison");
  CHECK(parsed.letters(0).node() == "t1");
}

TEST_CASE("an error the entity answers with is not retried") {
  registry_fixture f{{60s, 100, 1s}};
  auto v = f.send(debug::counter_kind, "a", messages::CounterValue{});
  REQUIRE_FALSE(v);
  CHECK(v.error().code() == static_cast<uint8_t>(runtime_errc::unknown_message_type));
  CHECK(f.metric("chorus_entity_failures_total") == 0);
  CHECK(f.metric("chorus_entity_activations_total") == 1);
}

TEST_CASE("an entity whose oldest request waits longer than the limit refuses new work") {
  registry_limits limits;
  limits.max_queue_age = 200ms;
  registry_fixture f{limits};
  messages::CounterBusy busy;
  busy.set_ms(1500);
  entity_envelope slow{debug::counter_kind,      "a", busy.GetDescriptor()->full_name(),
                       busy.SerializeAsString(), "",  0};
  caf::scoped_actor self{f.sys};
  auto sent = std::chrono::steady_clock::now();
  auto pending = self->request(f.registry, 10s, slow);
  // Poll with short requests: queued ones time out on our side, until one is refused outright.
  caf::error refused;
  CHECK(test::eventually(1400ms, [&] {
    caf::scoped_actor poller{f.sys};
    messages::CounterIncrement inc;
    entity_envelope env{debug::counter_kind,     "a", inc.GetDescriptor()->full_name(),
                        inc.SerializeAsString(), "",  0};
    bool is_refused = false;
    poller->request(f.registry, 50ms, env)
        .receive([](std::string&) {},
                 [&](caf::error& err) {
                   if (err.category() == runtime_category) {
                     refused = err;
                     is_refused = true;
                   }
                 });
    return is_refused;
  }));
  CHECK(std::chrono::steady_clock::now() - sent >= 200ms);
  REQUIRE(refused);
  CHECK(refused.code() == static_cast<uint8_t>(runtime_errc::overloaded));
  CHECK(error_detail(refused).find("counter/a is overloaded") != std::string::npos);
  CHECK(f.metric("chorus_entity_overloads_total") >= 1);
  // Other entities are not affected.
  CHECK(f.increment("b"));
  pending.receive([](std::string&) {}, [](caf::error&) {});
}

namespace {

// The registry fixture plus the node's routing: a router actor and the entity_router callers
// use, on a one-node cluster that hosts entities.
struct routed_fixture : registry_fixture {
  node_spec me{node_name{"t1"}, "127.0.0.1", 1, 2, 3, 4, {"entity"}};
  router_actor router;
  std::unique_ptr<entity_router> gateway;

  explicit routed_fixture(registry_limits limits) : registry_fixture(limits) {
    router = spawn_router(sys, me, registry, directory, deadlines);
    gateway = std::make_unique<entity_router>(directory, router, registry, &probe,
                                              limits.max_queue_age, deadlines);
  }
  ~routed_fixture() { caf::anon_send_exit(router, caf::exit_reason::user_shutdown); }

  caf::expected<std::string> ask(const google::protobuf::Message& cmd, const std::string& id,
                                 std::chrono::milliseconds timeout = 5s) {
    entity_envelope env{debug::counter_kind,     id, cmd.GetDescriptor()->full_name(),
                        cmd.SerializeAsString(), "", 0};
    auto done = std::make_shared<std::promise<caf::expected<std::string>>>();
    auto answer = done->get_future();
    // The envelope travels as a spawn argument: CAF 0.17 dereferences a null pointer (UBSan
    // reports it) when a function-based actor is spawned with no argument at all.
    sys.spawn(
        [this, timeout, done](caf::event_based_actor* self, entity_envelope e) {
          gateway->ask(self, std::move(e), timeout,
                       [done](caf::expected<std::string> out) { done->set_value(std::move(out)); });
        },
        env);
    return answer.get();
  }

  int32_t increment_via_gateway(const std::string& id) {
    auto bytes = ask(messages::CounterIncrement{}, id);
    if (!bytes) return -1;
    messages::CounterValue v;
    return v.ParseFromString(*bytes) ? v.value() : -1;
  }
};

}  // namespace

TEST_CASE(
    "callers reach an active local entity directly, and the first message activates it once") {
  routed_fixture f{{60s, 100, 1s}};
  CHECK(f.directory->find("counter/a") == nullptr);
  for (int i = 1; i <= 5; ++i) CHECK(f.increment_via_gateway("a") == i);
  CHECK(f.directory->find("counter/a") != nullptr);
  CHECK(f.metric("chorus_entity_activations_total") == 1);
  // Every request is measured, whichever path it took.
  double answered = 0;
  for (const auto& fam : f.metrics.Collect())
    if (fam.name == "chorus_entity_request_seconds")
      for (const auto& m : fam.metric) answered += static_cast<double>(m.histogram.sample_count);
  CHECK(answered == 5);
}

TEST_CASE("an entity used only by direct callers is neither idle-passivated nor evicted first") {
  // Idle after 1 s: long enough that a stall of a loaded machine between two of "busy"'s
  // requests does not passivate it.
  registry_limits limits{1s, 2, 20ms};
  routed_fixture f{limits};
  CHECK(f.increment_via_gateway("busy") == 1);
  CHECK(f.increment_via_gateway("other") == 1);
  // "busy" keeps being used through the fast path only, for longer than the idle timeout.
  auto until = std::chrono::steady_clock::now() + 2500ms;
  int n = 1;
  while (std::chrono::steady_clock::now() < until) {
    CHECK(f.increment_via_gateway("busy") == ++n);
    std::this_thread::sleep_for(20ms);  // pacing the traffic, not waiting for a result
  }
  // "other" was idle the whole time and went; "busy" is still the same activation.
  CHECK(f.directory->find("counter/other") == nullptr);
  CHECK(f.directory->find("counter/busy") != nullptr);
  CHECK(f.metric("chorus_entity_passivations_total", "idle") == 1);
  // At the cap the least recently used goes: "busy" was used last, so "third" evicts "x".
  CHECK(f.increment_via_gateway("x") == 1);
  CHECK(f.increment_via_gateway("busy") == n + 1);
  CHECK(f.increment_via_gateway("third") == 1);
  CHECK(f.directory->find("counter/x") == nullptr);
  CHECK(f.directory->find("counter/busy") != nullptr);
  CHECK(f.metric("chorus_entity_passivations_total", "evicted") == 1);
}

TEST_CASE(
    "a poison message sent directly is still redelivered with back-off and parked after 3 tries") {
  routed_fixture f{{60s, 100, 1s}};
  REQUIRE(f.increment_via_gateway("a") == 1);
  REQUIRE(f.directory->find("counter/a") != nullptr);  // so the poison takes the fast path
  auto sent = std::chrono::steady_clock::now();
  auto out = f.ask(messages::CounterPoison{}, "a");
  auto took = std::chrono::steady_clock::now() - sent;
  REQUIRE_FALSE(out);
  CHECK(out.error().code() == static_cast<uint8_t>(runtime_errc::parked));
  CHECK(error_detail(out.error()).find("failed 3 times") != std::string::npos);
  CHECK(took >= 300ms);
  CHECK(f.metric("chorus_entity_failures_total") == 3);
  CHECK(f.metric("chorus_dead_letters_total") == 1);
  CHECK(f.increment_via_gateway("a") == 2);
}

TEST_CASE(
    "a direct caller is refused with overloaded once the entity's oldest request is too old") {
  registry_limits limits;
  limits.max_queue_age = 200ms;
  routed_fixture f{limits};
  REQUIRE(f.increment_via_gateway("a") == 1);
  messages::CounterBusy busy;
  busy.set_ms(1500);
  auto slow = std::async(std::launch::async, [&] { return f.ask(busy, "a"); });
  caf::error refused;
  CHECK(test::eventually(1400ms, [&] {
    // Waiting at least max-queue-age keeps the poll on the direct path (shorter requests go
    // through the router): the first poll queues behind the busy one and times out, the next
    // finds the oldest waiting request too old and is refused.
    auto out = f.ask(messages::CounterIncrement{}, "a", 250ms);
    if (out || out.error().category() != runtime_category) return false;
    refused = out.error();
    return true;
  }));
  REQUIRE(refused);
  CHECK(refused.code() == static_cast<uint8_t>(runtime_errc::overloaded));
  CHECK(f.metric("chorus_entity_overloads_total") >= 1);
  CHECK(f.increment_via_gateway("b") == 1);
  CHECK(slow.get());
}

TEST_CASE("direct callers racing with constant idle passivation lose no increment") {
  // Idle after 10 ms, swept every 2 ms, and traffic in bursts with gaps longer than that: each
  // burst starts about when its activation stops, so some requests find a handle that is
  // already dead and must be answered through the router.
  registry_limits limits{10ms, 100, 2ms};
  routed_fixture f{limits};
  constexpr int threads = 3, bursts = 15, per_burst = 4;
  std::atomic<int> failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < threads; ++t)
    callers.emplace_back([&, t] {
      std::mt19937 rng{static_cast<unsigned>(t)};
      for (int b = 0; b < bursts; ++b) {
        for (int i = 0; i < per_burst; ++i)
          if (f.increment_via_gateway("raced") < 0) ++failed;
        // Pacing the bursts around the idle timeout, not waiting for a result.
        std::this_thread::sleep_for(std::chrono::milliseconds{12 + rng() % 10});
      }
    });
  for (auto& c : callers) c.join();
  CHECK(failed.load() == 0);
  CHECK(f.increment_via_gateway("raced") == threads * bursts * per_burst + 1);
  MESSAGE(f.metric("chorus_entity_passivations_total", "idle") << " idle passivations");
  CHECK(f.metric("chorus_entity_passivations_total", "idle") >= 3);
}
