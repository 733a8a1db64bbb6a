#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include <prometheus/registry.h>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/debug/counter_entity.hpp"
#include "messages/debug.pb.h"
#include "messages/errors.hpp"
#include "nodes/node_system_config.hpp"
#include "persistence/errc.hpp"
#include "persistence/journal_actor.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/journal_probe.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace std::chrono_literals;

namespace {

std::string fresh_id(const std::string& what) {
  static std::mt19937_64 rng{std::random_device{}()};
  return what + "-" + std::to_string(rng());
}

entity_envelope envelope(const std::string& id, const google::protobuf::Message& cmd) {
  return entity_envelope{debug::counter_kind,     id, cmd.GetDescriptor()->full_name(),
                         cmd.SerializeAsString(), "", 0};
}

messages::CounterIncrement increment(const std::string& key = "") {
  messages::CounterIncrement cmd;
  cmd.set_key(key);
  return cmd;
}

// Two "nodes" in one process: each with its own journal actor (own connections) and context.
struct two_journals {
  node_system_config cfg;
  prometheus::Registry metrics;
  persistence::journal_probe probe_a{metrics, "a"}, probe_b{metrics, "b"};
  caf::actor_system sys{cfg};
  persistence::journal_actor journal_a, journal_b;

  two_journals(int64_t snapshot_every = 100) : snapshot_every(snapshot_every) {
    auto url = test::real_storage().postgres_dsn;
    auto factory = [url] { return std::make_unique<persistence::journal_pg>(url); };
    journal_a = persistence::spawn_journal(sys, factory, {}, &probe_a);
    journal_b = persistence::spawn_journal(sys, factory, {}, &probe_b);
  }
  ~two_journals() {
    caf::anon_send_exit(journal_a, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(journal_b, caf::exit_reason::user_shutdown);
  }

  envelope_handler activation(const std::string& id, const persistence::journal_actor& j,
                              const std::string& node) {
    return debug::counter_factory()(
        sys, id, entity_context{node, {{debug::counter_domain, j}}, snapshot_every});
  }

  double counter(const std::string& name) {
    double sum = 0;
    for (const auto& f : metrics.Collect())
      if (f.name == name)
        for (const auto& m : f.metric) sum += m.counter.value;
    return sum;
  }

  int64_t snapshot_every;
};

int32_t value_of(caf::scoped_actor& self, const envelope_handler& counter, const std::string& id) {
  int32_t out = -1;
  self->request(counter, 10s, envelope(id, messages::CounterGet{}))
      .receive(
          [&](std::string& bytes) {
            messages::CounterValue v;
            REQUIRE(v.ParseFromString(bytes));
            out = v.value();
          },
          [&](caf::error& err) { FAIL("get failed: " << error_detail(err)); });
  return out;
}

}  // namespace

TEST_CASE("two activations of one counter writing at once: one append per version, none lost") {
  // The test hook: the registry never runs two activations of an entity, but ownership can
  // briefly disagree between nodes. Here two activations on two journals write the same stream.
  two_journals env;
  auto id = fresh_id("twice");
  auto a = env.activation(id, env.journal_a, "a");
  auto b = env.activation(id, env.journal_b, "b");
  constexpr int per_activation = 100;
  int acked = 0, conflicts = 0, other = 0;
  int32_t final_value = -1;
  {
    caf::scoped_actor self{env.sys};
    for (int i = 0; i < per_activation; ++i) {
      self->send(a, envelope(id, increment()));
      self->send(b, envelope(id, increment()));
    }
    for (int i = 0; i < 2 * per_activation; ++i)
      self->receive([&](std::string&) { ++acked; },
                    [&](caf::error& err) {
                      // A loser reloads and decides again; only after losing every retry does
                      // its caller see the conflict (409), with nothing written.
                      if (err.category() == persistence::errc_category &&
                          err.code() == static_cast<uint8_t>(persistence::errc::version_conflict))
                        ++conflicts;
                      else
                        ++other;
                    });
    // Every answer came after its append and, for a lost race, the catch-up load: so the probes
    // are complete here. Each activation loaded once on its first command, and every lost race
    // made its loser reload the events it missed before deciding again.
    CHECK(env.counter("chorus_journal_loads_total") ==
          2 + env.counter("chorus_journal_conflicts_total"));
    // A third activation restores from the journal alone: exactly the acknowledged increments.
    auto c = env.activation(id, env.journal_a, "c");
    final_value = value_of(self, c, id);
    CHECK(final_value == acked);
    for (const auto& h : {a, b, c}) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
  CHECK(other == 0);
  CHECK(acked + conflicts == 2 * per_activation);
  CHECK(acked > per_activation);
  // The race happened (or the test proves nothing), and losers caught up and won later.
  CHECK(env.counter("chorus_journal_conflicts_total") > 0);
  CHECK(env.counter("chorus_journal_appends_total") == acked);
  // The stored stream, read behind the entities' back: versions 1..n, no gap and no fork, one
  // event per acknowledged increment.
  persistence::journal_pg journal{test::real_storage().postgres_dsn};
  auto stored = journal.read(std::string{debug::counter_kind} + "/" + id, 0, 10 * per_activation);
  if (!stored) FAIL("read failed: " << error_detail(stored.error()));
  CHECK(static_cast<int32_t>(stored->size()) == final_value);
  for (size_t i = 0; i < stored->size(); ++i)
    CHECK((*stored)[i].version == static_cast<int64_t>(i + 1));
  MESSAGE(acked << " acknowledged, " << env.counter("chorus_journal_conflicts_total")
                << " lost races resolved by reloading, " << conflicts << " answered 409");
}

TEST_CASE("a counter restores from a snapshot plus later events after passivation") {
  two_journals env{10};
  auto id = fresh_id("snap");
  caf::scoped_actor self{env.sys};
  auto first = env.activation(id, env.journal_a, "a");
  for (int i = 0; i < 25; ++i)
    self->request(first, 10s, envelope(id, increment()))
        .receive([](std::string&) {}, [](caf::error& err) { FAIL(error_detail(err)); });
  caf::anon_send_exit(first, caf::exit_reason::user_shutdown);
  // Snapshots are stored in the background: wait until the one at version 20 is there.
  REQUIRE(test::eventually(5s, [&] { return env.counter("chorus_journal_snapshots_total") >= 2; }));
  auto second = env.activation(id, env.journal_a, "a");
  CHECK(value_of(self, second, id) == 25);
  // Restored from the snapshot at 20, replaying only 5 events.
  double from_snapshot = 0;
  for (const auto& f : env.metrics.Collect())
    if (f.name == "chorus_journal_loads_total")
      for (const auto& m : f.metric)
        for (const auto& l : m.label)
          if (l.name == "from" && l.value == "snapshot") from_snapshot += m.counter.value;
  CHECK(from_snapshot == 1);
  // The first activation found a new stream (nothing to replay); the second read the snapshot
  // at 20 and only events 21..25, not the 20 the snapshot covers.
  CHECK(env.counter("chorus_journal_replayed_events_total") == 5);
  caf::anon_send_exit(second, caf::exit_reason::user_shutdown);
}

TEST_CASE("an increment retried with the same idempotency key is applied once") {
  two_journals env;
  auto id = fresh_id("idem");
  caf::scoped_actor self{env.sys};
  auto a = env.activation(id, env.journal_a, "a");
  for (int i = 0; i < 3; ++i)
    self->request(a, 10s, envelope(id, increment("req-1")))
        .receive([](std::string&) {}, [](caf::error& err) { FAIL(error_detail(err)); });
  self->request(a, 10s, envelope(id, increment("req-2")))
      .receive([](std::string&) {}, [](caf::error& err) { FAIL(error_detail(err)); });
  CHECK(value_of(self, a, id) == 2);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  // Another activation (after a failover) still knows the keys.
  auto b = env.activation(id, env.journal_b, "b");
  self->request(b, 10s, envelope(id, increment("req-1")))
      .receive([](std::string&) {}, [](caf::error& err) { FAIL(error_detail(err)); });
  CHECK(value_of(self, b, id) == 2);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}
