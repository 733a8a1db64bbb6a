#pragma once

#include <chrono>
#include <future>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/sec.hpp>

namespace chorus::edge {

/// Sends a request from a non-actor thread (a cpp-httplib worker) and waits for the answer.
/// Unlike a blocking `scoped_actor`, the request is made by a short-lived event-based actor that
/// fulfils a promise, so no scheduler thread blocks; only the calling thread waits. The request
/// carries `timeout`; an unanswered request yields `sec::request_timeout`.
template <class Result, class Handle, class... Ts>
caf::expected<Result> ask(caf::actor_system& sys, const Handle& dest,
                          std::chrono::milliseconds timeout, Ts... xs) {
  auto promise = std::make_shared<std::promise<caf::expected<Result>>>();
  auto answer = promise->get_future();
  // `dest` travels as a spawn argument: CAF 0.17 dereferences a null pointer (UBSan reports
  // it) when a function-based actor is spawned with no argument at all.
  sys.spawn(
      [=](caf::event_based_actor* self, const Handle& to) {
        self->request(to, timeout, xs...)
            .then([promise](Result& result) { promise->set_value(std::move(result)); },
                  [promise](caf::error& err) { promise->set_value(std::move(err)); });
      },
      dest);
  // The request's own timeout answers first; this bound only guards against a lost promise.
  if (answer.wait_for(timeout + std::chrono::seconds{1}) != std::future_status::ready)
    return caf::make_error(caf::sec::request_timeout);
  return answer.get();
}

}  // namespace chorus::edge
