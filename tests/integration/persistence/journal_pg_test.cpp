#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "messages/errors.hpp"
#include "persistence/errc.hpp"
#include "persistence/journal_pg.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace chorus::persistence;

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

TEST_CASE("migrations applied by three nodes at once run exactly once") {
  auto url = dsn();  // already migrated: a second round must apply nothing, from any number
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
  CHECK(applied == 0);
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
