#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/sec.hpp>

namespace chorus::edge {

/// Runs `start(self)` in a new event-based actor, which ends once it has nothing left to wait
/// for (its requests answered). For callers that must not wait (the event loop).
template <class Start>
void with_actor(caf::actor_system& sys, Start start) {
  // The argument is there for CAF 0.17: spawning a function-based actor with no argument at all
  // dereferences a null pointer (UBSan reports it).
  sys.spawn([start = std::move(start)](caf::event_based_actor* self, int) mutable { start(self); },
            0);
}

/// Runs `start(self, done)` in a short-lived event-based actor and waits on this non-actor
/// thread (a cpp-httplib worker) until it calls `done` with the outcome. Unlike a blocking
/// `scoped_actor`, no scheduler thread blocks; only the calling thread waits. `start` must
/// answer within `timeout` (its request's own timeout); the extra second only guards against
/// a lost answer, which yields `sec::request_timeout`.
template <class Result, class Start>
caf::expected<Result> wait_for_actor(caf::actor_system& sys, std::chrono::milliseconds timeout,
                                     Start start) {
  auto promise = std::make_shared<std::promise<caf::expected<Result>>>();
  auto answer = promise->get_future();
  std::function<void(caf::expected<Result>)> done = [promise](caf::expected<Result> out) {
    promise->set_value(std::move(out));
  };
  // `done` travels as a spawn argument: CAF 0.17 dereferences a null pointer (UBSan reports
  // it) when a function-based actor is spawned with no argument at all.
  sys.spawn([start = std::move(start)](
                caf::event_based_actor* self,
                const std::function<void(caf::expected<Result>)>& d) mutable { start(self, d); },
            std::move(done));
  if (answer.wait_for(timeout + std::chrono::seconds{1}) != std::future_status::ready)
    return caf::make_error(caf::sec::request_timeout);
  return answer.get();
}

/// Sends a request from a non-actor thread and waits for the answer (see wait_for_actor). The
/// request carries `timeout`.
template <class Result, class Handle, class... Ts>
caf::expected<Result> ask(caf::actor_system& sys, const Handle& dest,
                          std::chrono::milliseconds timeout, Ts... xs) {
  return wait_for_actor<Result>(sys, timeout, [=](caf::event_based_actor* self, auto done) {
    self->request(dest, timeout, xs...)
        .then([done](Result& result) { done(std::move(result)); },
              [done](caf::error& err) { done(std::move(err)); });
  });
}

}  // namespace chorus::edge
