#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "persistence/outbox_relay.hpp"
#include "tests/integration/persistence/feed_fixture.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;

namespace {

// Steps `relay` until it has published `n` events in all.
bool publish_all(outbox_relay& relay, uint64_t n) {
  return test::eventually(10s, [&] {
    relay.step();
    return relay.published() >= n;
  });
}

}  // namespace

TEST_CASE("the relay publishes every appended event once, in position order, and marks it") {
  test::feed_fixture f;
  for (int i = 0; i < 45; ++i) f.append("c" + std::to_string(i % 3), i + 1);
  outbox_relay relay{f.relay_config(), f.client};
  REQUIRE(publish_all(relay, 45));
  CHECK(relay.leader());
  auto step = relay.step();
  REQUIRE(step);
  CHECK(*step == 0);
  CHECK(f.stream_positions() == f.positions);
  CHECK(f.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0] == "0");
}

TEST_CASE(
    "a transaction with more events than a step holds is published over several steps, each "
    "event once and in order") {
  test::feed_fixture f;  // relay batch: 20 events
  std::vector<append_request> batch;
  for (int s = 0; s < 5; ++s) {
    append_request r{"counter/big" + std::to_string(s), 0, {}};
    for (int i = 0; i < 10; ++i) r.events.push_back(test::increment(i + 1));
    batch.push_back(std::move(r));
  }
  auto done = f.journal.append_batch(batch);
  if (!done) FAIL("batch failed: " << error_detail(done.error()));
  REQUIRE(f.query("SELECT count(DISTINCT txid) FROM events")[0][0] == "1");
  std::vector<int64_t> positions;
  for (const auto& row : f.query("SELECT global_position FROM events ORDER BY global_position"))
    positions.push_back(std::stoll(row[0]));
  REQUIRE(positions.size() == 50);
  outbox_relay relay{f.relay_config(), f.client};
  std::vector<size_t> steps;
  for (int i = 0; i < 4; ++i) {
    auto step = relay.step();
    REQUIRE(step);
    steps.push_back(*step);
  }
  CHECK(steps == std::vector<size_t>{20, 20, 10, 0});
  CHECK(f.stream_positions() == positions);
  CHECK(f.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0] == "0");
}

TEST_CASE(
    "an event whose transaction commits late is published after the earlier one, never "
    "skipped") {
  test::feed_fixture f;
  outbox_relay relay{f.relay_config(), f.client};
  // A writer draws a position and holds its transaction open.
  pqxx::connection held_conn{f.db.dsn()};
  pqxx::work held{held_conn};
  pqxx::binarystring payload{test::counter_incremented(7)};
  auto early = held.exec_params1(
                       "INSERT INTO events (stream, version, type, payload) "
                       "VALUES ('counter/late', 1, 'chorus.messages.CounterIncremented', $1) "
                       "RETURNING global_position",
                       payload)[0]
                   .as<int64_t>();
  held.exec("INSERT INTO outbox (txid) VALUES (pg_current_xact_id())");
  // Another writer takes a larger position and commits first.
  auto later = f.append("early", 2);
  REQUIRE(later > early);
  auto step = relay.step();
  REQUIRE(step);
  CHECK(*step == 0);  // the committed event waits below the high-water mark
  CHECK(f.stream_positions().empty());
  held.commit();
  REQUIRE(publish_all(relay, 2));
  CHECK(f.stream_positions() == std::vector<int64_t>{early, later});
}

TEST_CASE(
    "with Redis killed mid-stream the relay backs off, and when Redis returns it resumes and no "
    "event is missing from the stream") {
  test::feed_fixture f;
  outbox_relay relay{f.relay_config(), f.client};
  relay.start();
  for (int i = 0; i < 60; ++i) f.append("k" + std::to_string(i % 4), 1);
  REQUIRE(test::eventually(10s, [&] { return relay.published() >= 20; }));
  f.redis.kill();
  for (int i = 0; i < 60; ++i) f.append("k" + std::to_string(i % 4), 1);  // while Redis is down
  f.redis.start();
  for (int i = 0; i < 30; ++i) f.append("k" + std::to_string(i % 4), 1);
  REQUIRE(test::eventually(20s, [&] {
    auto in_stream = f.stream_positions();
    std::set<int64_t> seen{in_stream.begin(), in_stream.end()};
    return seen.size() == f.positions.size();
  }));
  relay.stop();
  auto in_stream = f.stream_positions();
  CHECK(std::set<int64_t>(in_stream.begin(), in_stream.end()) ==
        std::set<int64_t>(f.positions.begin(), f.positions.end()));
  // The first occurrences keep the journal's order (a duplicate can only repeat an entry).
  std::vector<int64_t> firsts;
  std::set<int64_t> seen;
  for (auto p : in_stream)
    if (seen.insert(p).second) firsts.push_back(p);
  CHECK(firsts == f.positions);
  MESSAGE((in_stream.size() - f.positions.size()) << " duplicates after the kill");
  CHECK(f.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0] == "0");
}

TEST_CASE("a relay that crashes between publishing and marking publishes the batch again") {
  test::feed_fixture f;
  for (int i = 0; i < 3; ++i) f.append("crash", 1);
  {
    outbox_relay relay{f.relay_config(), f.client};
    relay.crash_after_publish_once();
    REQUIRE(publish_all(relay, 3));
  }  // the "crash": its connection, and with it the lock, is gone; nothing was marked
  CHECK(f.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0] == "3");
  outbox_relay next{f.relay_config(), f.client};
  REQUIRE(publish_all(next, 3));
  auto twice = f.positions;
  twice.insert(twice.end(), f.positions.begin(), f.positions.end());
  CHECK(f.stream_positions() == twice);
}

TEST_CASE(
    "of two relays on one database only the lock holder publishes, and the other takes over") {
  test::feed_fixture f;
  auto a = std::make_unique<outbox_relay>(f.relay_config(), f.client);
  outbox_relay b{f.relay_config(), f.new_client()};
  a->start();
  REQUIRE(test::eventually(10s, [&] { return a->leader(); }));
  b.start();
  for (int i = 0; i < 80; ++i) f.append("two" + std::to_string(i % 5), 1);
  REQUIRE(test::eventually(10s, [&] { return f.stream_positions().size() >= 80; }));
  CHECK(f.stream_positions() == f.positions);
  CHECK(b.published() == 0);
  CHECK_FALSE(b.leader());
  a.reset();  // the leader stops: its connection closes and the lock is free
  for (int i = 0; i < 20; ++i) f.append("two" + std::to_string(i % 5), 1);
  REQUIRE(test::eventually(10s, [&] { return f.stream_positions().size() >= 100; }));
  CHECK(b.leader());
  CHECK(f.stream_positions() == f.positions);
}
