#include <doctest/doctest.h>

#include "persistence/counter_totals_projection.hpp"
#include "persistence/errc.hpp"
#include "persistence/outbox_relay.hpp"
#include "persistence/projection.hpp"
#include "tests/integration/persistence/feed_fixture.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;

namespace {

projector_config projector_cfg(const test::feed_fixture& f, std::string consumer = "n1") {
  projector_config cfg;
  cfg.dsn = f.db.dsn();
  cfg.stream = f.stream;
  cfg.consumer = std::move(consumer);
  cfg.batch = 20;
  cfg.poll = 20ms;
  cfg.backoff_max = 200ms;
  return cfg;
}

using rows = std::vector<std::vector<std::string>>;

rows totals(const test::feed_fixture& f) {
  return f.query("SELECT id, value, position FROM counter_totals ORDER BY id");
}

// The last event in feed order, as the checkpoint should be after it.
feed_position last_event(const test::feed_fixture& f) {
  auto r = f.query(
      "SELECT txid::text, global_position FROM events ORDER BY txid DESC, global_position DESC "
      "LIMIT 1");
  return feed_position{std::stoull(r[0][0]), std::stoll(r[0][1])};
}

bool consumed_up_to(projector& p, feed_position until) {
  return test::eventually(10s, [&] {
    p.consume(20ms);
    auto at = p.checkpoint();
    return at && *at >= until;
  });
}

}  // namespace

TEST_CASE(
    "after a relay crash between publish and mark the stream holds the events twice and the "
    "projection applies them once") {
  test::feed_fixture f;
  f.append("a", 2);
  f.append("b", 5);
  f.append("a", 3);
  {
    outbox_relay relay{f.relay_config(), f.client};
    relay.crash_after_publish_once();
    REQUIRE(test::eventually(10s, [&] {
      relay.step();
      return relay.published() >= 3;
    }));
  }
  outbox_relay relay{f.relay_config(), f.client};
  REQUIRE(test::eventually(10s, [&] {
    relay.step();
    return relay.published() >= 3;
  }));
  REQUIRE(f.stream_positions().size() == 6);

  projector p{projector_cfg(f), counter_totals_projection(), f.new_client()};
  REQUIRE(consumed_up_to(p, last_event(f)));
  CHECK(p.applied() == 3);
  CHECK(totals(f) == rows{{"a", "5", std::to_string(f.positions[2])},
                          {"b", "5", std::to_string(f.positions[1])}});
  CHECK(*p.checkpoint() == last_event(f));
  // Every entry is acknowledged: nothing pending in the group.
  auto pending = f.client->command({"XPENDING", f.stream, "counter_totals"});
  REQUIRE(pending);
  CHECK(pending->elements.at(0).integer == 0);

  // A redelivery after a restart (a new projector on the same group) applies nothing again.
  f.client->command({"XGROUP", "SETID", f.stream, "counter_totals", "0"});
  projector again{projector_cfg(f), counter_totals_projection(), f.new_client()};
  REQUIRE(again.consume(20ms));
  CHECK(again.applied() == 0);
  CHECK(totals(f)[0][1] == "5");
}

TEST_CASE("a projection does not apply an event committed after one with a smaller position") {
  test::feed_fixture f;
  projector p{projector_cfg(f), counter_totals_projection(), f.new_client()};
  pqxx::connection held_conn{f.db.dsn()};
  pqxx::work held{held_conn};
  pqxx::binarystring payload{test::counter_incremented(7)};
  auto early = held.exec_params1(
                       "INSERT INTO events (stream, version, type, payload) "
                       "VALUES ('counter/late', 1, 'chorus.messages.CounterIncremented', $1) "
                       "RETURNING global_position",
                       payload)[0]
                   .as<int64_t>();
  auto later = f.append("soon", 2);
  REQUIRE(later > early);
  auto applied = p.catch_up();
  REQUIRE(applied);
  CHECK(*applied == 0);
  CHECK(totals(f).empty());
  held.commit();
  // Eventually: the mark is server-wide, so a write transaction of another test or database on
  // this PostgreSQL may hold it back for a moment.
  size_t total = 0;
  REQUIRE(test::eventually(10s, [&] {
    auto n = p.catch_up();
    total += n ? *n : 0;
    return total >= 2;
  }));
  CHECK(total == 2);
  CHECK(totals(f) ==
        rows{{"late", "7", std::to_string(early)}, {"soon", "2", std::to_string(later)}});
}

TEST_CASE("a projection rebuilt from position 0 gives the same read model and checkpoint") {
  test::feed_fixture f;
  for (int i = 0; i < 50; ++i) f.append("r" + std::to_string(i % 7), i % 5 + 1);
  outbox_relay relay{f.relay_config(), f.client};
  relay.start();
  projector p{projector_cfg(f), counter_totals_projection(), f.new_client()};
  REQUIRE(consumed_up_to(p, last_event(f)));
  auto before = totals(f);
  REQUIRE(before.size() == 7);
  auto rebuilt = p.rebuild();
  REQUIRE(rebuilt);
  CHECK(*rebuilt == 50);
  CHECK(totals(f) == before);
  CHECK(*p.checkpoint() == last_event(f));
}

TEST_CASE(
    "a projection whose stream lost entries applies the missing events from the table, and one "
    "running on its thread keeps up") {
  test::feed_fixture f;
  for (int i = 0; i < 10; ++i) f.append("g", 1);
  outbox_relay relay{f.relay_config(), f.client};
  REQUIRE(test::eventually(10s, [&] {
    relay.step();
    return relay.published() >= 10;
  }));
  // Redis forgets the first entries (as a restart without persistence would).
  f.client->command({"XTRIM", f.stream, "MAXLEN", "3"});
  projector p{projector_cfg(f), counter_totals_projection(), f.new_client()};
  REQUIRE(consumed_up_to(p, last_event(f)));
  CHECK(totals(f)[0][1] == "10");

  p.start();
  relay.start();
  for (int i = 0; i < 30; ++i) f.append("g", 1);
  REQUIRE(test::eventually(10s, [&] {
    auto t = totals(f);
    return !t.empty() && t[0][1] == "40";
  }));
  p.stop();
  CHECK(*p.checkpoint() == last_event(f));
}

TEST_CASE(
    "a transaction with the older id but the larger position is applied first, and the smaller "
    "position that commits later is still applied") {
  test::feed_fixture f;
  projector p{projector_cfg(f), counter_totals_projection(), f.new_client()};
  REQUIRE(p.catch_up());
  auto insert = [](pqxx::work& tx, const std::string& id, int by) {
    pqxx::binarystring payload{test::counter_incremented(by)};
    return tx
        .exec_params1(
            "INSERT INTO events (stream, version, type, payload) "
            "VALUES ($1, 1, 'chorus.messages.CounterIncremented', $2) RETURNING global_position",
            "counter/" + id, payload)[0]
        .as<int64_t>();
  };
  pqxx::connection conn_a{f.db.dsn()}, conn_b{f.db.dsn()};
  pqxx::work a{conn_a}, b{conn_b};
  a.exec("SELECT pg_current_xact_id()");  // A takes its transaction id first...
  auto smaller = insert(b, "b", 3);       // ...B draws the smaller position...
  auto larger = insert(a, "a", 4);        // ...A the larger one, and commits first.
  REQUIRE(smaller < larger);
  a.commit();
  size_t total = 0;
  REQUIRE(test::eventually(10s, [&] {
    auto n = p.catch_up();
    total += n ? *n : 0;
    return total >= 1;
  }));
  CHECK(totals(f) == rows{{"a", "4", std::to_string(larger)}});
  b.commit();
  REQUIRE(test::eventually(10s, [&] {
    auto n = p.catch_up();
    total += n ? *n : 0;
    return total >= 2;
  }));
  CHECK(total == 2);
  CHECK(totals(f) == rows{{"a", "4", std::to_string(larger)}, {"b", "3", std::to_string(smaller)}});
}

TEST_CASE(
    "a projection's committed hook sees each applied event once after its commit and never one "
    "whose transaction failed") {
  test::feed_fixture f;
  f.append("a", 2);
  f.append("b", 5);
  std::vector<int64_t> seen;
  bool fail_next = true;
  auto proj = counter_totals_projection();
  auto apply = proj.apply;
  proj.apply = [&](const stored_event& e, sql_tx& tx) -> caf::error {
    if (fail_next && e.stream == "counter/b") {
      fail_next = false;
      return make_error(errc::storage_error, "the first attempt at b fails");
    }
    return apply(e, tx);
  };
  proj.committed = [&](const stored_event& e) { seen.push_back(e.global_position); };
  projector p{projector_cfg(f), proj, f.new_client()};
  // (Each step may apply nothing while another transaction on the server is older than the
  // events: the high-water mark. Hence the loops.)
  // The batch with b rolls back whole: a is applied again with b, and announced only then.
  CHECK(test::eventually(10s, [&] { return !p.catch_up(); }));
  CHECK(seen.empty());
  CHECK(test::eventually(10s, [&] {
    REQUIRE(p.catch_up());
    return seen.size() >= 2;
  }));
  CHECK(seen == std::vector<int64_t>{f.positions[0], f.positions[1]});
  CHECK(p.catch_up());
  CHECK(seen.size() == 2);
}
