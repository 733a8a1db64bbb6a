#include "http_edge/edge_api.hpp"

#include "messages/proto_json.hpp"

#include <random>

namespace chorus::edge {

// Request ids correlate logs; they are not secrets, so a per-thread PRNG is enough.
std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (size_t i = 0; i < id.size(); i += 16) {
    auto x = rng();
    for (size_t j = 0; j < 16; ++j, x >>= 4) id[i + j] = hex[x & 0xf];
  }
  return id;
}

std::string to_json(const google::protobuf::Message& msg) {
  return proto_json(msg);
}

namespace {

std::string self_describe(const caf::error& err) {
  return caf::to_string(err.category()) + ":" + std::to_string(err.code()) + " " +
         error_detail(err);
}

}  // namespace

void send_error(http_response& res, const http_error& e, const std::string& message,
                const std::string& request_id) {
  res.status = e.status;
  if (e.retry_after_seconds > 0)
    res.set_header("Retry-After", std::to_string(e.retry_after_seconds));
  res.set_content(error_body(e.code, message, request_id), json_type);
}

void send_error(http_response& res, const caf::error& err, const std::string& request_id) {
  auto e = to_http(err);
  // Clients get no internals; the edge logs the detail of every 5xx (internal_detail).
  if (e.status >= 500) res.internal_detail = self_describe(err);
  send_error(res, e, e.status == 500 ? "internal error" : error_detail(err), request_id);
}

bool valid_entity_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

entity_envelope envelope_for(const std::string& kind, const std::string& id,
                             const google::protobuf::Message& msg, const std::string& request_id) {
  entity_envelope env;
  env.kind = kind;
  env.id = id;
  env.type = msg.GetDescriptor()->full_name();
  env.payload = msg.SerializeAsString();
  // The request id becomes the trace id until the tracing work propagates real contexts.
  env.traceparent = "00-" + request_id.substr(0, 32) + "-0000000000000001-01";
  return env;
}

}  // namespace chorus::edge
