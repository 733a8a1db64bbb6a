#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "messages/errors.hpp"
#include "persistence/errc.hpp"
#include "persistence/reminder_pg.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;

namespace {

// claim_due takes every due row of the database, so each test has a database of its own.
struct fresh_reminders {
  test::scratch_database db{test::real_storage().postgres_port};
  reminder_pg store{db.dsn()};
};

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

template <class T>
T value_or_fail(caf::expected<T> x, const char* what) {
  if (!x) FAIL(what << ": " << error_detail(x.error()));
  return std::move(*x);
}

void schedule(reminder_pg& store, const std::string& name, int64_t due_ms,
              const std::string& payload = "p") {
  auto err = store.schedule("counter", "c1", name, due_ms, "t.Payload", payload);
  if (err) FAIL("schedule failed: " << error_detail(err));
}

}  // namespace

TEST_CASE("a reminder store on a fresh database creates its table before any journal does") {
  fresh_reminders r;
  schedule(r.store, "first", now_ms() + 60000);
  auto found = value_or_fail(r.store.find("counter", "c1", "first"), "find");
  REQUIRE(found);
  CHECK(found->payload_type == "t.Payload");
  CHECK(found->attempts == 0);
}

TEST_CASE("a due reminder is claimed once with a lease and completed, and one not due is left") {
  fresh_reminders r;
  std::string binary{"\0\x01\xff bytes", 9};
  schedule(r.store, "due", now_ms() - 1000, binary);
  schedule(r.store, "later", now_ms() + 60000);
  auto before = now_ms();
  auto claimed = value_or_fail(r.store.claim_due(10, 30s), "claim");
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].name == "due");
  CHECK(claimed[0].payload == binary);
  CHECK(claimed[0].attempts == 1);
  // The lease moved the due time about 30 s ahead (PostgreSQL's clock, same host here).
  CHECK(claimed[0].due_at_us / 1000 > before + 25000);
  CHECK(claimed[0].due_at_us / 1000 < now_ms() + 35000);
  // While the lease runs nobody else gets it.
  CHECK(value_or_fail(r.store.claim_due(10, 30s), "second claim").empty());
  CHECK(value_or_fail(r.store.complete("counter", "c1", "due", claimed[0].due_at_us), "complete"));
  CHECK_FALSE(value_or_fail(r.store.find("counter", "c1", "due"), "find"));
  CHECK(value_or_fail(r.store.find("counter", "c1", "later"), "find later"));
}

TEST_CASE("two claimers at once never get the same reminder and together get all of them") {
  fresh_reminders r;
  constexpr int n = 300;
  for (int i = 0; i < n; ++i) schedule(r.store, "r" + std::to_string(i), now_ms() - 10);
  std::vector<std::vector<std::string>> got(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> claimers;
  for (int t = 0; t < 2; ++t)
    claimers.emplace_back([&, t] {
      reminder_pg own{r.db.dsn()};
      for (;;) {
        auto batch = own.claim_due(7, 60s);
        if (!batch) {
          errors[t] = error_detail(batch.error());
          return;
        }
        if (batch->empty()) return;
        for (auto& x : *batch) got[t].push_back(x.name);
      }
    });
  for (auto& th : claimers) th.join();
  CHECK(errors[0].empty());
  CHECK(errors[1].empty());
  std::set<std::string> all;
  size_t total = 0;
  for (const auto& names : got) {
    total += names.size();
    all.insert(names.begin(), names.end());
  }
  MESSAGE("claimer 1: " << got[0].size() << ", claimer 2: " << got[1].size());
  CHECK(total == n);
  CHECK(all.size() == n);
}

TEST_CASE(
    "a reminder whose lease ended unacknowledged is claimed again, and only the new claim "
    "completes it") {
  fresh_reminders r;
  schedule(r.store, "flaky", now_ms() - 10);
  auto first = value_or_fail(r.store.claim_due(10, 1ms), "claim");
  REQUIRE(first.size() == 1);
  std::vector<stored_reminder> second;
  REQUIRE(test::eventually(5s, [&] {
    second = value_or_fail(r.store.claim_due(10, 60s), "reclaim");
    return !second.empty();
  }));
  REQUIRE(second.size() == 1);
  CHECK(second[0].attempts == 2);
  CHECK_FALSE(value_or_fail(r.store.complete("counter", "c1", "flaky", first[0].due_at_us),
                            "stale complete"));
  CHECK(value_or_fail(r.store.complete("counter", "c1", "flaky", second[0].due_at_us), "complete"));
}

TEST_CASE("a reminder rescheduled while claimed survives the old claim's completion") {
  fresh_reminders r;
  schedule(r.store, "moved", now_ms() - 10, "old");
  auto claimed = value_or_fail(r.store.claim_due(10, 30s), "claim");
  REQUIRE(claimed.size() == 1);
  schedule(r.store, "moved", now_ms() + 60000, "new");
  CHECK_FALSE(
      value_or_fail(r.store.complete("counter", "c1", "moved", claimed[0].due_at_us), "complete"));
  auto kept = value_or_fail(r.store.find("counter", "c1", "moved"), "find");
  REQUIRE(kept);
  CHECK(kept->payload == "new");
  CHECK(kept->attempts == 0);
}

TEST_CASE("cancel deletes a pending reminder and says whether there was one") {
  fresh_reminders r;
  schedule(r.store, "gone", now_ms() + 60000);
  CHECK(value_or_fail(r.store.cancel("counter", "c1", "gone"), "cancel"));
  CHECK_FALSE(value_or_fail(r.store.cancel("counter", "c1", "gone"), "cancel again"));
  CHECK(value_or_fail(r.store.claim_due(10, 1s), "claim").empty());
}

TEST_CASE("an unreachable database is postgres_unavailable, not a throw") {
  reminder_pg store{"postgresql://chorus@127.0.0.1:" + std::to_string(test::free_port()) + "/x"};
  auto err = store.schedule("counter", "c1", "x", 0, "t", "p");
  REQUIRE(err);
  CHECK(err.category() == errc_category);
  CHECK(err.code() == static_cast<uint8_t>(errc::postgres_unavailable));
}
