#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "messages/debug.pb.h"
#include "tests/support/test_cluster.hpp"

namespace chorus::test {

/// The CounterValue of a 200 answer from the counter routes; nothing otherwise.
std::optional<messages::CounterValue> parse_counter(const http_reply& reply);

/// Runs fn(i) for i in [0, n) on `threads` threads.
template <class F>
void parallel_for(int n, int threads, F fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) fn(i);
    });
  for (auto& th : pool) th.join();
}

/// prefix0, prefix1, ...
std::vector<std::string> numbered(const std::string& prefix, int n);

/// Asks every counter in `ids` through the node on `port`, 4 requests at a time: POST
/// .../increment when `increment`, else GET. The answers in order; nothing where one failed.
std::vector<std::optional<messages::CounterValue>> ask_all(uint16_t port,
                                                           const std::vector<std::string>& ids,
                                                           bool increment);

/// What happened to one logical increment sent as a client would: with an idempotency key,
/// retried with the same key on a retryable answer (503 + Retry-After, or no answer) until it
/// is acknowledged or `deadline` passes.
struct increment_outcome {
  bool acknowledged = false;
  int retryable = 0;  ///< answers 503 with Retry-After, or no answer at all, before the ack
  int other = 0;      ///< any other answer: a bug (the request is not retried further)
  std::string last_body;
};
increment_outcome increment_until_acked(uint16_t port, const std::string& id,
                                        const std::string& key, std::chrono::milliseconds deadline);

}  // namespace chorus::test
