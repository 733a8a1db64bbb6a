#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include <prometheus/registry.h>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "messages/errors.hpp"
#include "nodes/node_system_config.hpp"
#include "persistence/errc.hpp"
#include "persistence/journal_actor.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/journal_probe.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;

namespace {

std::string run_id() {
  static std::string id = std::to_string(std::mt19937_64{std::random_device{}()}());
  return id;
}

journal_factory pg_factory() {
  auto url = test::real_storage().postgres_dsn;
  return [url] { return std::make_unique<journal_pg>(url); };
}

}  // namespace

TEST_CASE("concurrent appends from 64 entities are committed in fewer transactions, each acked") {
  node_system_config cfg;
  prometheus::Registry metrics;
  journal_probe probe{metrics, "chorus"};
  caf::actor_system sys{cfg};
  journal_options options;
  options.connections = 2;
  auto journal = spawn_journal(sys, pg_factory(), options, &probe);
  constexpr int streams = 64, rounds = 5;
  int acked = 0, failed = 0;
  {
    caf::scoped_actor self{sys};
    // Every stream has one append outstanding at a time, like an entity awaiting its commit.
    std::vector<int64_t> version(streams, 0);
    for (int r = 0; r < rounds; ++r) {
      for (int s = 0; s < streams; ++s)
        self->send(journal, append_atom_v, "test-group-" + run_id() + "-" + std::to_string(s),
                   version[s], std::vector<new_event>{{"t.A", std::to_string(r), "{}"}});
      for (int s = 0; s < streams; ++s)
        self->receive([&](int64_t v) { ++acked, (void)v; },
                      [&](caf::error& err) {
                        ++failed;
                        MESSAGE("append failed: " << error_detail(err));
                      });
      for (auto& v : version) ++v;
    }
    // Read back: every acknowledged append is there.
    for (int s = 0; s < streams; ++s)
      self->request(journal, 10s, load_atom_v, "test-group-" + run_id() + "-" + std::to_string(s),
                    int64_t{0})
          .receive([&](loaded_stream& l) { CHECK(l.version == rounds); },
                   [&](caf::error& err) { FAIL("load failed: " << error_detail(err)); });
  }
  CHECK(failed == 0);
  CHECK(acked == streams * rounds);
  auto families = metrics.Collect();
  double batches = -1;
  for (const auto& f : families)
    if (f.name == "chorus_journal_batches_total") batches = f.metric.at(0).counter.value;
  MESSAGE(acked << " appends in " << batches << " transactions");
  CHECK(batches > 0);
  CHECK(batches < acked);
  caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
}

TEST_CASE("an append to a stale version through the journal actor is a conflict") {
  node_system_config cfg;
  caf::actor_system sys{cfg};
  auto journal = spawn_journal(sys, pg_factory(), {}, nullptr);
  auto stream = "test-stale-" + run_id();
  caf::scoped_actor self{sys};
  self->request(journal, 10s, append_atom_v, stream, int64_t{0},
                std::vector<new_event>{{"t.A", "1", "{}"}})
      .receive([](int64_t v) { CHECK(v == 1); }, [](caf::error& err) { FAIL(error_detail(err)); });
  self->request(journal, 10s, append_atom_v, stream, int64_t{0},
                std::vector<new_event>{{"t.A", "again", "{}"}})
      .receive([](int64_t) { FAIL("a stale append was accepted"); },
               [](caf::error& err) {
                 CHECK(err.category() == errc_category);
                 CHECK(err.code() == static_cast<uint8_t>(errc::version_conflict));
               });
  caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
}

TEST_CASE(
    "through the journal actor an append leaves no gap: past the end is a conflict, and a stale "
    "version after the actor's own commits too") {
  node_system_config cfg;
  caf::actor_system sys{cfg};
  auto journal = spawn_journal(sys, pg_factory(), {}, nullptr);
  auto stream = "test-gap-" + run_id();
  caf::scoped_actor self{sys};
  auto append = [&](int64_t expected) {
    caf::expected<int64_t> out{caf::error{}};
    self->request(journal, 10s, append_atom_v, stream, expected,
                  std::vector<new_event>{{"t.A", std::to_string(expected), "{}"}})
        .receive([&](int64_t v) { out = v; }, [&](caf::error& err) { out = std::move(err); });
    return out;
  };
  auto is_conflict = [](const caf::expected<int64_t>& r) {
    return !r && r.error().category() == errc_category &&
           r.error().code() == static_cast<uint8_t>(errc::version_conflict);
  };
  // The actor committed versions 1 and 2 itself: it knows they exist.
  REQUIRE(append(0) == caf::expected<int64_t>{1});
  REQUIRE(append(1) == caf::expected<int64_t>{2});
  CHECK(is_conflict(append(5)));  // past the end: would leave a gap at 3 and 4
  CHECK(is_conflict(append(1)));  // stale: version 2 is taken
  CHECK(is_conflict(append(0)));  // a new stream that is not new
  CHECK(append(2) == caf::expected<int64_t>{3});
  self->request(journal, 10s, load_atom_v, stream, int64_t{0})
      .receive(
          [](loaded_stream& l) {
            CHECK(l.version == 3);
            REQUIRE(l.events.size() == 3);
            for (size_t i = 0; i < 3; ++i)
              CHECK(l.events[i].version == static_cast<int64_t>(i) + 1);
          },
          [](caf::error& err) { FAIL(error_detail(err)); });
  caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
}
