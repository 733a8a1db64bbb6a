#include <doctest/doctest.h>

#include <chrono>

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
  caf::actor_system sys{cfg};
  persistence::journal_actor journal;
  entity_registry_actor registry;

  explicit registry_fixture(registry_limits limits) {
    journal = persistence::spawn_journal(sys, store.factory(), {}, nullptr);
    entity_context ctx{"t1", {{debug::counter_domain, journal}}};
    registry = spawn_entity_registry(sys, kinds, ctx, limits, probe, log);
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
