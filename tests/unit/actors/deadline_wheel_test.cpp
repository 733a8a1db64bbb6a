#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>

#include "actors/deadline_wheel.hpp"
#include "nodes/node_system_config.hpp"

using namespace chorus;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;

// What a caller saw: the answer or the error, and how long after sending.
struct outcome {
  caf::expected<std::string> value{std::string{}};
  steady::duration after{};
};

// Sends "ping" to `dest` from a fresh actor with its deadline in `wheel`; the future yields the
// outcome.
std::future<outcome> ask(caf::actor_system& sys, deadline_wheel& wheel, const caf::actor& dest,
                         std::chrono::milliseconds timeout) {
  auto done = std::make_shared<std::promise<outcome>>();
  auto result = done->get_future();
  sys.spawn(
      [&wheel, dest, timeout](caf::event_based_actor* self,
                              std::shared_ptr<std::promise<outcome>> d) {
        auto start = steady::now();
        request_within<std::string>(self, wheel, dest, timeout, std::string{"ping"})
            .then(
                [d, start](std::string& answer) {
                  d->set_value(outcome{std::move(answer), steady::now() - start});
                },
                [d, start](caf::error& err) {
                  d->set_value(outcome{std::move(err), steady::now() - start});
                });
      },
      done);
  return result;
}

// Answers "ping" with "pong". The argument is there for CAF 0.17: spawning a function-based
// actor with no argument at all dereferences a null pointer (UBSan reports it).
caf::behavior echo(int) {
  return {[](const std::string& x) { return x == "ping" ? std::string{"pong"} : x; }};
}

// Takes every request and never answers it (a hung entity).
caf::behavior silent(caf::event_based_actor* self,
                     std::shared_ptr<std::vector<caf::response_promise>> kept) {
  return {[self, kept](const std::string&) {
    kept->push_back(self->make_response_promise());
    return caf::delegated<std::string>{};
  }};
}

// What the caller of an actor that never answers (a hung entity) sees, with its deadline in
// `wheel`.
outcome ask_hung(deadline_wheel& wheel, std::chrono::milliseconds timeout) {
  node_system_config cfg;
  caf::actor_system sys{cfg};
  auto kept = std::make_shared<std::vector<caf::response_promise>>();
  auto hung = sys.spawn(silent, kept);
  auto out = ask(sys, wheel, hung, timeout).get();
  caf::anon_send_exit(hung, caf::exit_reason::user_shutdown);
  return out;
}

}  // namespace

TEST_CASE("a request nobody answers gets request_timeout at its deadline, not before") {
  deadline_wheel wheel;
  auto out = ask_hung(wheel, 150ms);
  REQUIRE_FALSE(out.value);
  CHECK(out.value.error() == caf::sec::request_timeout);
  CHECK(out.after >= 150ms);
  CHECK(out.after < 2s);
  CHECK(wheel.pending() == 0);
}

TEST_CASE("an answered request leaves no deadline behind") {
  deadline_wheel wheel;
  node_system_config cfg;
  caf::actor_system sys{cfg};
  auto responder = sys.spawn(echo, 0);
  std::vector<std::future<outcome>> answers;
  // From many actors at once: arms and disarms race on the wheel's slots.
  for (int i = 0; i < 2000; ++i) answers.push_back(ask(sys, wheel, responder, 30s));
  for (auto& a : answers) {
    auto out = a.get();
    REQUIRE(out.value);
    CHECK(*out.value == "pong");
  }
  // Nothing is left to fire later: a timed-out request would have no entry to fire from.
  CHECK(wheel.pending() == 0);
  caf::anon_send_exit(responder, caf::exit_reason::user_shutdown);
}

TEST_CASE("deadlines longer than a turn of the wheel fire at their own time") {
  // The wheel has 1,024 slots: with a tick of 1 ms a turn is ~1 s, and a deadline of 1.3 s
  // sits in a slot that the sweeper visits once before the deadline is due.
  deadline_wheel wheel{1ms};
  auto out = ask_hung(wheel, 1300ms);
  REQUIRE_FALSE(out.value);
  CHECK(out.value.error() == caf::sec::request_timeout);
  CHECK(out.after >= 1300ms);
  CHECK(wheel.pending() == 0);
}

TEST_CASE("a deadline already past when it is armed fires at once, not a turn of the wheel later") {
  // As if the arming thread stalled for 2 s between sending and arming: the slot of the
  // deadline's tick was swept meanwhile, and its next visit is a whole turn (~10 s) away.
  deadline_wheel wheel;
  node_system_config cfg;
  caf::actor_system sys{cfg};
  auto kept = std::make_shared<std::vector<caf::response_promise>>();
  auto hung = sys.spawn(silent, kept);
  auto done = std::make_shared<std::promise<outcome>>();
  auto result = done->get_future();
  sys.spawn(
      [&wheel, hung](caf::event_based_actor* self, std::shared_ptr<std::promise<outcome>> d) {
        auto start = steady::now();
        auto h = self->request(hung, caf::infinite, std::string{"ping"});
        auto ticket = wheel.arm(self->ctrl(), h.id(), 100ms, start - 2s);
        timed_request<std::string, decltype(h)>{std::move(h), &wheel, ticket}.then(
            [d, start](std::string& answer) {
              d->set_value(outcome{std::move(answer), steady::now() - start});
            },
            [d, start](caf::error& err) {
              d->set_value(outcome{std::move(err), steady::now() - start});
            });
      },
      done);
  auto out = result.get();
  REQUIRE_FALSE(out.value);
  CHECK(out.value.error() == caf::sec::request_timeout);
  CHECK(out.after < 1s);
  CHECK(wheel.pending() == 0);
  caf::anon_send_exit(hung, caf::exit_reason::user_shutdown);
}
