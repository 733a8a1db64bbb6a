#include "tests/support/counters.hpp"

#include <google/protobuf/util/json_util.h>

#include "tests/support/process.hpp"

namespace chorus::test {

std::optional<messages::CounterValue> parse_counter(const http_reply& reply) {
  if (reply.status != 200) return std::nullopt;
  messages::CounterValue v;
  if (!google::protobuf::util::JsonStringToMessage(reply.body, &v).ok()) return std::nullopt;
  return v;
}

std::vector<std::string> numbered(const std::string& prefix, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(prefix + std::to_string(i));
  return ids;
}

std::vector<std::optional<messages::CounterValue>> ask_all(uint16_t port,
                                                           const std::vector<std::string>& ids,
                                                           bool increment) {
  std::vector<std::optional<messages::CounterValue>> out(ids.size());
  parallel_for(static_cast<int>(ids.size()), 4, [&](int i) {
    auto path = "/v1/debug/counters/" + ids[i];
    out[i] = parse_counter(increment ? http_post(port, path + "/increment") : http_get(port, path));
  });
  return out;
}

increment_outcome increment_until_acked(uint16_t port, const std::string& id,
                                        const std::string& key,
                                        std::chrono::milliseconds deadline) {
  increment_outcome out;
  eventually(deadline, [&] {
    auto reply =
        http_post(port, "/v1/debug/counters/" + id + "/increment", "", {{"Idempotency-Key", key}});
    if (reply.status == 200) return out.acknowledged = true;
    out.last_body = reply.body;
    if (reply.status == 0 || (reply.status == 503 && !reply.header("Retry-After").empty())) {
      ++out.retryable;
      return false;
    }
    ++out.other;
    return true;  // not retryable: stop
  });
  return out;
}

}  // namespace chorus::test
