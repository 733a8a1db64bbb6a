#include <climits>
#include <cmath>
#include <optional>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "actors/debug/counter_entity.hpp"
#include "http_edge/edge_api.hpp"
#include "http_edge/edge_server.hpp"
#include "messages/debug.pb.h"

// The demo routes (chorus.debug-endpoints): the counter entity and the dead letters.

namespace chorus::edge {

namespace {

// Reminder names: 1..64 of [A-Za-z0-9._-].
bool valid_reminder_name(const std::string& name) {
  return name.size() <= 64 && valid_entity_id(name);
}

// The JSON body of POST /v1/debug/counters/{id}/remind: {"after_ms": N, "by": N, "name": "..."}
// with after_ms 0..86400000 (required), by an int32 (default 1), name required. Checked by JSON
// type (a number is not accepted as a string or the reverse); what is wrong comes back as text.
std::optional<std::string> parse_remind(const std::string& body, messages::CounterRemind& out) {
  google::protobuf::Struct json;
  if (!google::protobuf::util::JsonStringToMessage(body, &json).ok())
    return "body must be a JSON object";
  auto integer = [&](const char* key, int64_t lo, int64_t hi, bool required,
                     int64_t& value) -> std::optional<std::string> {
    auto it = json.fields().find(key);
    if (it == json.fields().end()) {
      if (required) return std::string{key} + " is required";
      return std::nullopt;
    }
    const auto& v = it->second;
    if (v.kind_case() != google::protobuf::Value::kNumberValue ||
        v.number_value() != std::floor(v.number_value()) || v.number_value() < double(lo) ||
        v.number_value() > double(hi))
      return std::string{key} + " must be an integer in " + std::to_string(lo) + ".." +
             std::to_string(hi);
    value = static_cast<int64_t>(v.number_value());
    return std::nullopt;
  };
  for (const auto& [key, value] : json.fields())
    if (key != "after_ms" && key != "by" && key != "name") return "unknown field " + key;
  int64_t after_ms = 0, by = 1;
  if (auto err = integer("after_ms", 0, 86400000, true, after_ms)) return err;
  if (auto err = integer("by", INT32_MIN, INT32_MAX, false, by)) return err;
  auto name = json.fields().find("name");
  if (name == json.fields().end() ||
      name->second.kind_case() != google::protobuf::Value::kStringValue ||
      !valid_reminder_name(name->second.string_value()))
    return "name must be a string of 1..64 of A-Z a-z 0-9 . _ -";
  out.set_after_ms(static_cast<int32_t>(after_ms));
  out.set_by(static_cast<int32_t>(by));
  out.set_name(name->second.string_value());
  return std::nullopt;
}

}  // namespace

void add_debug_routes(edge_api& api, const health_hooks& hooks) {
  // Both counter routes: the id from the path, one command, a CounterValue back.
  auto counter_route = [&api](http_method method, const char* pattern, const char* name,
                              auto command) {
    api.route(method, pattern, name,
              [&api, command](const http_request& req, http_response& res, const std::string& rid) {
                auto id = req.matches[1].str();
                if (!valid_entity_id(id))
                  return send_error(res, {400, "invalid_id", 0},
                                    "counter id must be 1..128 of A-Z a-z 0-9 . _ -", rid);
                auto cmd = command;
                if constexpr (std::is_same_v<decltype(cmd), messages::CounterIncrement>) {
                  // A retried increment with the same key is applied once (the first answer may
                  // have been lost, e.g. to a 503 while the commit went through).
                  auto key = req.get_header_value("Idempotency-Key");
                  if (key.size() > 128 || !valid_entity_id(key.empty() ? "x" : key))
                    return send_error(res, {400, "invalid_idempotency_key", 0},
                                      "Idempotency-Key must be 1..128 of A-Z a-z 0-9 . _ -", rid);
                  // Without a client key the edge makes one for this request, so that the router
                  // may hand it to a new owner if the old one is lost mid-request.
                  cmd.set_key(key.empty() ? "edge-" + new_request_id() : key);
                }
                auto env = envelope_for(debug::counter_kind, id, cmd, rid);
                // Reads and keyed increments are safe to deliver twice; a poison message is not.
                env.redeliverable = !std::is_same_v<decltype(cmd), messages::CounterPoison>;
                api.answer_from_entity<messages::CounterValue>(std::move(env), res, rid);
              });
  };
  counter_route(http_method::post, R"(/v1/debug/counters/([^/]+)/increment)",
                "/v1/debug/counters/{id}/increment", messages::CounterIncrement{});
  counter_route(http_method::get, R"(/v1/debug/counters/([^/]+))", "/v1/debug/counters/{id}",
                messages::CounterGet{});
  counter_route(http_method::post, R"(/v1/debug/counters/([^/]+)/poison)",
                "/v1/debug/counters/{id}/poison", messages::CounterPoison{});
  // Schedules a durable reminder that increments the counter later (at least once delivered,
  // applied once thanks to its key); answers the current value once the reminder is stored.
  api.route(http_method::post, R"(/v1/debug/counters/([^/]+)/remind)",
            "/v1/debug/counters/{id}/remind",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto id = req.matches[1].str();
              if (!valid_entity_id(id))
                return send_error(res, {400, "invalid_id", 0},
                                  "counter id must be 1..128 of A-Z a-z 0-9 . _ -", rid);
              messages::CounterRemind cmd;
              if (auto problem = parse_remind(req.body, cmd))
                return send_error(res, {400, "invalid_body", 0}, *problem, rid);
              api.answer_from_entity<messages::CounterValue>(
                  envelope_for(debug::counter_kind, id, cmd, rid), res, rid);
            });
  // Publishes `count` live events of about `bytes` bytes each to `topic` through the node's live
  // hub, as an entity would: for testing and measuring WebSocket delivery (slow readers).
  api.route(
      http_method::post, "/v1/debug/live", "/v1/debug/live",
      [&hooks](const http_request& req, http_response& res, const std::string& rid) {
        google::protobuf::Struct json;
        if (!google::protobuf::util::JsonStringToMessage(req.body, &json).ok())
          return send_error(res, {400, "invalid_body", 0}, "body must be a JSON object", rid);
        auto f = json.fields();
        auto num = [&f](const char* key, double lo, double hi, double fallback) {
          auto it = f.find(key);
          if (it == f.end()) return fallback;
          const auto& v = it->second;
          if (v.kind_case() != google::protobuf::Value::kNumberValue ||
              v.number_value() != std::floor(v.number_value()) || v.number_value() < lo ||
              v.number_value() > hi)
            return -1.0;
          return v.number_value();
        };
        auto topic = f.count("topic") > 0 &&
                             f.at("topic").kind_case() == google::protobuf::Value::kStringValue
                         ? f.at("topic").string_value()
                         : std::string{};
        auto count = num("count", 1, 100000, 1);
        auto bytes = num("bytes", 0, 1 << 20, 0);
        bool topic_ok = !topic.empty() && topic.size() <= 200 &&
                        topic.find_first_of("\"\\") == std::string::npos;
        if (!topic_ok || count < 0 || bytes < 0 || !hooks.publish_live)
          return send_error(res, {400, "invalid_body", 0},
                            "send {\"topic\": string, \"count\": 1..100000, "
                            "\"bytes\": 0..1048576}",
                            rid);
        std::string pad(static_cast<size_t>(bytes), 'x');
        for (int i = 0; i < static_cast<int>(count); ++i)
          hooks.publish_live(topic, R"({"seq":)" + std::to_string(i) + R"(,"pad":")" + pad + "\"}");
        res.status = 202;
        res.set_content(R"({"published":)" + std::to_string(static_cast<int>(count)) + "}",
                        json_type);
      });
  // Admin-only once the edge issue brings roles; until then behind debug-endpoints.
  api.route(http_method::get, "/v1/debug/dead-letters", "/v1/debug/dead-letters",
            [&hooks](const http_request&, http_response& res, const std::string& rid) {
              auto letters = hooks.dead_letters();
              if (!letters) return send_error(res, letters.error(), rid);
              res.set_content(to_json(*letters), json_type);
            });
}

}  // namespace chorus::edge
