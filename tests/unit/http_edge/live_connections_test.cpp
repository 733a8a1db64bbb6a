#include <doctest/doctest.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "http_edge/live_connections.hpp"

using chorus::edge::live_client;
using chorus::edge::live_connections;

namespace {

/// A connection that records what it was sent, on a loop of the test's own.
class recording_client final : public live_client {
 public:
  explicit recording_client(size_t loop) : loop_(loop) {}
  [[nodiscard]] size_t loop() const override { return loop_; }
  bool push(const std::string&, const std::shared_ptr<const std::string>& frame) override {
    frames.push_back(*frame);
    return true;
  }
  [[nodiscard]] const std::string& user() const override { return user_; }
  void revoked(const std::string&) override {}
  void subscribed(const std::string&) override {}

  std::vector<std::string> frames;

 private:
  size_t loop_;
  std::string user_ = "u";
};

/// Event loops that run their posted functions only when the test says so.
struct manual_loops {
  std::vector<std::deque<std::function<void()>>> queues;
  explicit manual_loops(size_t n) : queues(n) {}
  std::vector<live_connections::post_fn> posters() {
    std::vector<live_connections::post_fn> out;
    for (size_t i = 0; i < queues.size(); ++i)
      out.emplace_back([this, i](std::function<void()> fn) { queues[i].push_back(std::move(fn)); });
    return out;
  }
  // Runs one posted function of loop `i`; false when it had none.
  bool run_one(size_t i) {
    if (queues[i].empty()) return false;
    auto fn = std::move(queues[i].front());
    queues[i].pop_front();
    fn();
    return true;
  }
  void run_all() {
    for (bool any = true; any;) {
      any = false;
      for (size_t i = 0; i < queues.size(); ++i) any = run_one(i) || any;
    }
  }
};

std::string frame_of(const std::string& topic, const std::string& json) {
  return chorus::edge::ws_text_frame(R"({"type":"event","topic":")" + topic + R"(","data":)" +
                                     json + "}");
}

size_t with_frames(const std::vector<std::shared_ptr<recording_client>>& cs, size_t n) {
  size_t count = 0;
  for (const auto& c : cs) count += c->frames.size() == n ? 1 : 0;
  return count;
}

}  // namespace

TEST_CASE(
    "a loop sends an event to its subscribers a bounded number per turn, events in the order they "
    "came, and the other loop its own") {
  manual_loops loops{2};
  live_connections live;
  size_t counted = 0;
  live.set_sent_counter([&](size_t n) { counted += n; });
  live.set_loops(loops.posters());
  std::vector<std::shared_ptr<recording_client>> on0, on1;
  for (size_t i = 0; i < 300; ++i) {
    on0.push_back(std::make_shared<recording_client>(0));
    live.subscribe("rooms/r", on0.back());
  }
  for (size_t i = 0; i < 5; ++i) {
    on1.push_back(std::make_shared<recording_client>(1));
    live.subscribe("rooms/r", on1.back());
  }

  live.deliver("rooms/r", R"({"n":1})");
  // One post per loop, whatever the number of subscribers on it.
  CHECK(loops.queues[0].size() == 1);
  CHECK(loops.queues[1].size() == 1);
  // A first turn sends to step_sends of loop 0's 300, then yields to what else the loop has.
  loops.run_one(0);
  CHECK(with_frames(on0, 1) == live_connections::step_sends);
  CHECK(loops.queues[0].size() == 1);

  // A second event arrives mid-way, and more subscribers join (the table may rehash): nobody
  // hears the second before the first.
  live.deliver("rooms/r", R"({"n":2})");
  for (size_t i = 0; i < 200; ++i) {
    on0.push_back(std::make_shared<recording_client>(0));
    live.subscribe("rooms/r", on0.back());
  }
  live.deliver("rooms/r", R"({"n":3})");
  loops.run_all();

  for (size_t i = 0; i < 300; ++i) {
    REQUIRE(on0[i]->frames.size() == 3);
    CHECK(on0[i]->frames[0] == frame_of("rooms/r", R"({"n":1})"));
    CHECK(on0[i]->frames[1] == frame_of("rooms/r", R"({"n":2})"));
    CHECK(on0[i]->frames[2] == frame_of("rooms/r", R"({"n":3})"));
  }
  for (size_t i = 300; i < 500; ++i) {
    REQUIRE(on0[i]->frames.size() == 1);
    CHECK(on0[i]->frames[0] == frame_of("rooms/r", R"({"n":3})"));
  }
  CHECK(with_frames(on1, 3) == on1.size());
  CHECK(counted == 300 * 3 + 200 + 5 * 3);
}
