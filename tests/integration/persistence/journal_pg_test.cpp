#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "messages/errors.hpp"
#include "persistence/errc.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/migrations.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;

namespace {

// Streams are named per test run: the database is shared with the dev cluster and other runs.
std::string fresh_stream(const std::string& what) {
  static std::mt19937_64 rng{std::random_device{}()};
  return "test-" + what + "-" + std::to_string(rng());
}

std::string dsn() {
  auto storage = test::real_storage();
  auto migrated = apply_migrations(storage.postgres_dsn);
  if (!migrated) FAIL("migrations failed: " << error_detail(migrated.error()));
  return storage.postgres_dsn;
}

bool is(const caf::error& err, errc code) {
  return err.category() == errc_category && err.code() == static_cast<uint8_t>(code);
}

// A database of the test's own, for tests that count every row of `events` and `outbox`: in the
// shared one other runs write, and the dev cluster's relay marks outbox rows published.
struct own_database {
  own_database() {
    auto migrated = apply_migrations(db.dsn());
    if (!migrated) FAIL("migrations failed: " << error_detail(migrated.error()));
  }

  /// The single integer a query answers (a count).
  int64_t number(const std::string& query, const std::string& stream = "") {
    pqxx::nontransaction tx{sql};
    auto rows = stream.empty() ? tx.exec(query) : tx.exec_params(query, stream);
    return rows[0][0].as<int64_t>();
  }

  /// The versions stored for `stream`, in order.
  std::vector<int64_t> versions(const std::string& stream) {
    pqxx::nontransaction tx{sql};
    std::vector<int64_t> out;
    for (const auto& row :
         tx.exec_params("SELECT version FROM events WHERE stream = $1 ORDER BY version", stream))
      out.push_back(row[0].as<int64_t>());
    return out;
  }

  test::scratch_database db{test::real_storage().postgres_port};
  journal_pg journal{db.dsn()};
  pqxx::connection sql{db.dsn()};
};

}  // namespace

TEST_CASE("appended events read back in order with their bytes intact") {
  journal_pg j{dsn()};
  auto stream = fresh_stream("roundtrip");
  std::string binary{"\0\x01\xff payload", 11};
  auto v = j.append(stream, 0, {{"t.A", binary, "{}"}, {"t.B", "second", R"({"trace":"x"})"}});
  if (!v) FAIL("append failed: " << error_detail(v.error()));
  CHECK(*v == 2);
  v = j.append(stream, 2, {{"t.C", "third", "{}"}});
  REQUIRE(v);
  CHECK(*v == 3);
  auto events = j.read(stream, 0, 100);
  REQUIRE(events);
  REQUIRE(events->size() == 3);
  CHECK((*events)[0].payload == binary);
  CHECK((*events)[0].type == "t.A");
  CHECK((*events)[2].version == 3);
  CHECK((*events)[0].global_position < (*events)[2].global_position);
  auto tail = j.read(stream, 1, 1);
  REQUIRE(tail);
  REQUIRE(tail->size() == 1);
  CHECK((*tail)[0].type == "t.B");
}

TEST_CASE("an append with a stale or future expected version is a conflict and writes nothing") {
  journal_pg j{dsn()};
  auto stream = fresh_stream("conflict");
  REQUIRE(j.append(stream, 0, {{"t.A", "1", "{}"}}));
  auto stale = j.append(stream, 0, {{"t.A", "again", "{}"}});
  REQUIRE_FALSE(stale);
  CHECK(is(stale.error(), errc::version_conflict));
  auto gap = j.append(stream, 5, {{"t.A", "gap", "{}"}});
  REQUIRE_FALSE(gap);
  CHECK(is(gap.error(), errc::version_conflict));
  CHECK(j.read(stream, 0, 10)->size() == 1);
}

TEST_CASE("two writers racing at the same version: exactly one append per version succeeds") {
  auto url = dsn();
  auto stream = fresh_stream("race");
  constexpr int writers = 4, rounds = 25;
  std::atomic<int> won{0}, conflicts{0}, other{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      journal_pg j{url};
      for (int r = 0; r < rounds; ++r) {
        auto events = j.read(stream, 0, 1000);
        if (!events) {
          ++other;
          continue;
        }
        auto v = j.append(stream, static_cast<int64_t>(events->size()),
                          {{"t.W", std::to_string(w), "{}"}});
        if (v)
          ++won;
        else if (is(v.error(), errc::version_conflict))
          ++conflicts;
        else
          ++other;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(other == 0);
  journal_pg j{url};
  auto all = j.read(stream, 0, 1000);
  REQUIRE(all);
  // Every acknowledged append is there, once, and versions have no gap or fork.
  CHECK(static_cast<int>(all->size()) == won);
  for (size_t i = 0; i < all->size(); ++i) CHECK((*all)[i].version == static_cast<int64_t>(i + 1));
  MESSAGE(won.load() << " appends won, " << conflicts.load() << " lost the race");
}

TEST_CASE("migrations applied by three nodes at once to a new database run exactly once") {
  auto storage = test::real_storage();
  auto db = "chorus_migrations_" + std::to_string(std::random_device{}());
  auto psql = [&](const std::string& sql) {
    return test::run({"psql", "-h", "127.0.0.1", "-p", std::to_string(storage.postgres_port), "-U",
                      "chorus", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAtc", sql});
  };
  auto created = psql("CREATE DATABASE " + db);
  REQUIRE_MESSAGE(created.exit_code == 0, created.output);
  auto url = "postgresql://chorus@127.0.0.1:" + std::to_string(storage.postgres_port) + "/" + db;
  std::atomic<int> applied{0}, failed{0};
  std::vector<std::thread> nodes;
  for (int n = 0; n < 3; ++n)
    nodes.emplace_back([&] {
      auto r = apply_migrations(url);
      if (r)
        applied += *r;
      else
        ++failed;
    });
  for (auto& t : nodes) t.join();
  CHECK(failed == 0);
  CHECK(applied == static_cast<int>(migrations().size()));
  // The schema works: a journal on the new database appends.
  {
    journal_pg j{url};
    CHECK(j.append("s", 0, {{"t.A", "x", "{}"}}));
  }
  auto again = apply_migrations(url);
  REQUIRE(again);
  CHECK(*again == 0);
  auto dropped = psql("DROP DATABASE " + db + " WITH (FORCE)");
  CHECK_MESSAGE(dropped.exit_code == 0, dropped.output);
}

TEST_CASE("a batch appends many streams in one transaction and refuses only the stale ones") {
  journal_pg j{dsn()};
  auto a = fresh_stream("batch-a"), b = fresh_stream("batch-b"), c = fresh_stream("batch-c");
  REQUIRE(j.append(b, 0, {{"t.A", "b1", "{}"}}));
  auto done = j.append_batch({{a, 0, {{"t.A", "a1", "{}"}, {"t.A", "a2", "{}"}}},
                              {b, 0, {{"t.A", "stale", "{}"}}},
                              {c, 7, {{"t.A", "future", "{}"}}}});
  if (!done) FAIL("batch failed: " << error_detail(done.error()));
  REQUIRE(done->size() == 3);
  CHECK((*done)[0]);
  CHECK_FALSE((*done)[1]);
  CHECK_FALSE((*done)[2]);
  CHECK(j.read(a, 0, 10)->size() == 2);
  auto bs = j.read(b, 0, 10);
  REQUIRE(bs->size() == 1);
  CHECK((*bs)[0].payload == "b1");
  CHECK(j.read(c, 0, 10)->empty());
}

TEST_CASE("a stream restores from its latest snapshot and the events after it") {
  journal_pg j{dsn()};
  auto s = fresh_stream("snapshot");
  for (int i = 1; i <= 5; ++i) REQUIRE(j.append(s, i - 1, {{"t.A", std::to_string(i), "{}"}}));
  REQUIRE_FALSE(j.save_snapshot(s, 3, "t.Snap", std::string{"at\0three", 9}));
  REQUIRE_FALSE(j.save_snapshot(s, 2, "t.Snap", "older, ignored"));
  auto loaded = j.load(s, 0);
  REQUIRE(loaded);
  CHECK(loaded->snapshot_version == 3);
  CHECK(loaded->snapshot_payload == std::string{"at\0three", 9});
  REQUIRE(loaded->events.size() == 2);
  CHECK(loaded->events[0].version == 4);
  CHECK(loaded->version == 5);
  // After a conflict an entity only catches up: no snapshot, the events after its version.
  auto tail = j.load(s, 4);
  REQUIRE(tail);
  CHECK(tail->snapshot_version == 0);
  REQUIRE(tail->events.size() == 1);
  CHECK(tail->events[0].payload == "5");
  auto none = j.load(fresh_stream("never-written"), 0);
  REQUIRE(none);
  CHECK(none->version == 0);
  CHECK(none->events.empty());
}

TEST_CASE("a PostgreSQL that is not there is an unavailable error from the journal") {
  journal_pg j{"postgresql://chorus@127.0.0.1:" + std::to_string(test::free_port()) +
               "/chorus?connect_timeout=2"};
  auto v = j.append("s", 0, {{"t", "x", "{}"}});
  REQUIRE_FALSE(v);
  CHECK(is(v.error(), errc::postgres_unavailable));
  auto r = j.read("s", 0, 1);
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::postgres_unavailable));
}

TEST_CASE("an append refused for a version conflict leaves no event and no outbox row") {
  own_database d;
  auto s = fresh_stream("refused");
  REQUIRE(d.journal.append(s, 0, {{"t.A", "1", "{}"}, {"t.A", "2", "{}"}}));
  auto events = [&] { return d.number("SELECT count(*) FROM events"); };
  auto outbox = [&] { return d.number("SELECT count(*) FROM outbox"); };
  REQUIRE(events() == 2);
  REQUIRE(outbox() == 1);
  // Stale (its second event's version is free), from scratch again, and past the end.
  for (int64_t expected : {1, 0, 5}) {
    CAPTURE(expected);
    auto refused = d.journal.append(s, expected, {{"t.A", "x", "{}"}, {"t.A", "y", "{}"}});
    REQUIRE_FALSE(refused);
    CHECK(is(refused.error(), errc::version_conflict));
    CHECK(events() == 2);
    CHECK(outbox() == 1);
  }
  // In a batch next to an append that is written, only that one's rows appear.
  auto other = fresh_stream("written");
  auto done =
      d.journal.append_batch({{s, 1, {{"t.A", "z", "{}"}}}, {other, 0, {{"t.B", "o", "{}"}}}});
  if (!done) FAIL("batch failed: " << error_detail(done.error()));
  CHECK_FALSE((*done)[0]);
  CHECK((*done)[1]);
  CHECK(d.versions(s) == std::vector<int64_t>{1, 2});
  CHECK(events() == 3);
  CHECK(outbox() == 2);
  CHECK(d.number("SELECT count(*) FROM outbox o JOIN events e USING (txid) WHERE e.stream = $1",
                 other) == 1);
}

TEST_CASE("an append that half-lands in a race with another writer is undone with its outbox row") {
  own_database d;
  auto s = fresh_stream("half");
  REQUIRE(d.journal.append(s, 0, {{"t.A", "1", "{}"}}));
  // Another writer inserts version 3 and keeps its transaction open: the journal's check sees
  // versions 2 and 3 free, writes 2, and waits for the other writer on 3.
  pqxx::connection other{d.db.dsn()};
  pqxx::work racing{other};
  racing.exec_params(
      "INSERT INTO events (stream, version, type, payload) VALUES ($1, 3, 't.Other', '\\x00')", s);
  caf::expected<int64_t> result{int64_t{0}};
  std::thread writer{[&] {
    result = d.journal.append(s, 1, {{"t.A", "2", "{}"}, {"t.A", "3", "{}"}});
  }};
  CHECK(test::eventually(10s, [&] {
    return d.number(
               "SELECT count(*) FROM pg_stat_activity "
               "WHERE datname = current_database() AND wait_event_type = 'Lock'") == 1;
  }));
  racing.commit();
  writer.join();
  // The other writer got 3, so the append lost: its version 2 is gone, and its transaction's
  // outbox row too.
  REQUIRE_FALSE(result);
  CHECK(is(result.error(), errc::version_conflict));
  CHECK(d.versions(s) == std::vector<int64_t>{1, 3});
  CHECK(d.number("SELECT count(*) FROM outbox") == 1);
  CHECK(d.number("SELECT count(*) FROM events WHERE type = 't.A'") == 1);
}

TEST_CASE("a successful append writes one unpublished outbox row for its transaction") {
  own_database d;
  auto a = fresh_stream("outbox-a"), b = fresh_stream("outbox-b");
  REQUIRE(d.journal.append(a, 0, {{"t.A", "a1", "{}"}}));
  auto done = d.journal.append_batch(
      {{a, 1, {{"t.A", "a2", "{}"}, {"t.A", "a3", "{}"}}}, {b, 0, {{"t.B", "b1", "{}"}}}});
  if (!done) FAIL("batch failed: " << error_detail(done.error()));
  CHECK((*done)[0]);
  CHECK((*done)[1]);
  // Read on another connection: committed. The batch is one transaction: two in all, and one
  // outbox row each (the primary key allows no more).
  CHECK(d.number("SELECT count(*) FROM events") == 4);
  CHECK(d.number("SELECT count(DISTINCT txid) FROM events") == 2);
  CHECK(d.number("SELECT count(*) FROM outbox") == 2);
  // Every event is behind an unpublished outbox row that its own transaction inserted.
  CHECK(d.number("SELECT count(*) FROM events e JOIN outbox o USING (txid) "
                 "WHERE o.published_at IS NULL AND o.xmin = e.xmin") == 4);
}

TEST_CASE(
    "migration 0006 turns the outbox's rows per event into one per transaction, keeping what "
    "was published and what was not") {
  test::scratch_database db{test::real_storage().postgres_port};
  pqxx::connection c{db.dsn()};
  {
    // The schema as it was before 0006.
    pqxx::work tx{c};
    tx.exec(
        "CREATE TABLE schema_migrations ("
        "version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    for (const auto& m : migrations()) {
      if (m.version >= 6) break;
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO schema_migrations (version) VALUES ($1)", m.version);
    }
    tx.commit();
  }
  // Two transactions of the old journal, two events each: one published, one not.
  auto old_append = [&](const std::string& stream, bool published) {
    pqxx::work tx{c};
    for (int v = 1; v <= 2; ++v) {
      auto position = tx.exec_params1(
                            "INSERT INTO events (stream, version, type, payload) "
                            "VALUES ($1, $2, 't.A', '\\x00') RETURNING global_position",
                            stream, v)[0]
                          .as<int64_t>();
      tx.exec_params(
          "INSERT INTO outbox (global_position, published_at) "
          "VALUES ($1, CASE WHEN $2::boolean THEN now() END)",
          position, published);
    }
    tx.commit();
  };
  old_append("old-published", true);
  old_append("old-pending", false);
  auto applied = apply_migrations(db.dsn());
  if (!applied) FAIL("migration failed: " << error_detail(applied.error()));
  CHECK(*applied >= 1);
  auto number = [&](const std::string& query) {
    pqxx::nontransaction tx{c};
    return tx.exec(query)[0][0].as<int64_t>();
  };
  CHECK(number("SELECT count(*) FROM outbox") == 2);
  CHECK(number("SELECT count(*) FROM outbox o JOIN events e USING (txid) "
               "WHERE o.published_at IS NULL AND e.stream = 'old-pending'") == 2);
  CHECK(number("SELECT count(*) FROM outbox o JOIN events e USING (txid) "
               "WHERE o.published_at IS NOT NULL AND e.stream = 'old-published'") == 2);
  CHECK(number("SELECT count(*) FROM outbox WHERE published_through <> 0") == 0);
}
