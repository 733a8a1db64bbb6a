// How the journal actor forms its group commits (persistence/journal_actor.cpp, dispatch), on a
// journal that records each batch and commits at once.

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "messages/errors.hpp"
#include "nodes/node_system_config.hpp"
#include "persistence/errc.hpp"
#include "persistence/journal_actor.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;

namespace {

/// Every batch's size, in the order the workers ran them.
struct batch_log {
  std::mutex mtx;
  std::vector<size_t> sizes;
  [[nodiscard]] std::vector<size_t> taken() {
    std::lock_guard<std::mutex> guard{mtx};
    return sizes;
  }
};

class recording_journal : public journal {
 public:
  explicit recording_journal(std::shared_ptr<batch_log> log) : log_(std::move(log)) {}

  caf::expected<int64_t> append(const std::string&, int64_t expected,
                                const std::vector<new_event>& events) override {
    return expected + static_cast<int64_t>(events.size());
  }
  caf::expected<std::vector<bool>> append_batch(const std::vector<append_request>& b) override {
    std::lock_guard<std::mutex> guard{log_->mtx};
    log_->sizes.push_back(b.size());
    return std::vector<bool>(b.size(), true);
  }
  caf::expected<std::vector<stored_event>> read(const std::string&, int64_t, size_t) override {
    return std::vector<stored_event>{};
  }
  caf::expected<loaded_stream> load(const std::string&, int64_t) override {
    return loaded_stream{};
  }
  caf::error save_snapshot(const std::string&, int64_t, const std::string&,
                           const std::string&) override {
    return {};
  }

 private:
  std::shared_ptr<batch_log> log_;
};

struct fixture {
  node_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<batch_log> log = std::make_shared<batch_log>();
  journal_actor journal;

  explicit fixture(std::chrono::microseconds linger) {
    journal_options options;
    options.connections = 2;
    options.linger = linger;
    journal = spawn_journal(
        sys, [l = log] { return std::make_unique<recording_journal>(l); }, options, nullptr);
  }
  ~fixture() { caf::anon_send_exit(journal, caf::exit_reason::user_shutdown); }

  /// `writers` entities, each on its own stream, append `appends` times, each awaiting its
  /// commit before the next (as the event-sourced entities do). Returns the appends that failed.
  int writers_appending(int writers, int appends) {
    caf::scoped_actor self{sys};
    auto done = self->address();
    for (int w = 0; w < writers; ++w)
      sys.spawn(
          [j = journal, done, appends](caf::event_based_actor* writer, int w) -> caf::behavior {
            // Each step is a message to itself (version, failures so far): no shared state.
            writer->send(writer, int64_t{0}, 0);
            auto stream = "w" + std::to_string(w);
            return {[=](int64_t version, int failed) {
              if (version == appends) {
                writer->send(caf::actor_cast<caf::actor>(done), failed);
                writer->quit();
                return;
              }
              writer
                  ->request(j, caf::infinite, append_atom_v, stream, version,
                            std::vector<new_event>{{"t.A", "x", "{}"}})
                  .then([=](int64_t v) { writer->send(writer, v, failed); },
                        [=](caf::error&) { writer->send(writer, version + 1, failed + 1); });
            }};
          },
          w);
    int failed = 0;
    for (int w = 0; w < writers; ++w)
      self->receive([&](int n) { failed += n; }, caf::after(20s) >> [&] { ++failed; });
    return failed;
  }
};

}  // namespace

TEST_CASE("entities that come back after their commit are batched by their share per connection") {
  // A long linger (the default is 300us), so that the test does not depend on how fast the
  // writers come back.
  fixture f{std::chrono::microseconds{std::chrono::milliseconds{20}}};
  constexpr int writers = 64, appends = 20;
  REQUIRE(f.writers_appending(writers, appends) == 0);
  auto sizes = f.log->taken();
  size_t total = 0;
  for (auto s : sizes) total += s;
  CHECK(total == writers * appends);
  MESSAGE(sizes.size() << " batches for " << total << " appends");
  // Two connections carry the 64 entities in batches of about 32 (the first appends leave
  // alone, as they should: nobody else is about yet). Leaving with whatever waits would make
  // batches of one or two: the recording journal commits at once.
  CHECK(sizes.size() <= total / 16);
}

TEST_CASE("without a linger a free connection takes whatever waits") {
  fixture f{std::chrono::microseconds{0}};
  REQUIRE(f.writers_appending(64, 3) == 0);
  size_t total = 0;
  for (auto s : f.log->taken()) total += s;
  CHECK(total == 64 * 3);
}

TEST_CASE("a writer that comes back alone is committed once the linger ends") {
  fixture f{std::chrono::microseconds{std::chrono::milliseconds{200}}};
  REQUIRE(f.writers_appending(64, 1) == 0);
  // The 64 entities just answered never return: the one that appends again waits for them only
  // up to the linger, and its next append (nobody else answered and away) goes at once.
  caf::scoped_actor self{f.sys};
  for (int i = 0; i < 2; ++i) {
    auto sent = std::chrono::steady_clock::now();
    bool answered = false;
    self->send(f.journal, append_atom_v, std::string{"w0"}, int64_t{1 + i},
               std::vector<new_event>{{"t.A", "x", "{}"}});
    self->receive([&](int64_t v) { answered = v == 2 + i; }, [](caf::error&) {},
                  caf::after(10s) >> [] {});
    CHECK(answered);
    auto waited = std::chrono::steady_clock::now() - sent;
    MESSAGE("append " << i << " answered after "
                      << std::chrono::duration_cast<std::chrono::microseconds>(waited).count()
                      << " us");
    if (i == 0) CHECK(waited >= 150ms);  // it did wait for the others, about the linger
  }
}
