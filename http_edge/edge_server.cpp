#include "http_edge/edge_server.hpp"

#include <chrono>
#include <climits>
#include <cmath>
#include <optional>
#include <random>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <sys/socket.h>
#include <caf/sec.hpp>

#include "actors/debug/counter_entity.hpp"
#include "http_edge/actor_bridge.hpp"
#include "http_edge/edge_probe.hpp"
#include "http_edge/error_table.hpp"
#include "messages/debug.pb.h"
#include "messages/errors.hpp"

namespace chorus::edge {

namespace {

constexpr const char* json_type = "application/json";

// Pending connections the kernel keeps for the accept loop (somaxconn caps it).
constexpr int listen_backlog = 1024;

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

// A client-supplied id is echoed only when it is short and printable, so it cannot inject
// headers or bloat logs.
std::string request_id_of(const httplib::Request& req) {
  auto given = req.get_header_value("X-Request-Id");
  if (given.empty() || given.size() > 128) return new_request_id();
  for (unsigned char c : given)
    if (c < 0x21 || c > 0x7e) return new_request_id();
  return given;
}

std::string to_json(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(msg, &out, opts).ok()) return "{}";
  return out;
}

void send_error(httplib::Response& res, const http_error& e, const std::string& message,
                const std::string& request_id) {
  res.status = e.status;
  if (e.retry_after_seconds > 0)
    res.set_header("Retry-After", std::to_string(e.retry_after_seconds));
  res.set_content(error_body(e.code, message, request_id), json_type);
}

void send_error(httplib::Response& res, const caf::error& err, const std::string& request_id) {
  auto e = to_http(err);
  // Internal failures are logged with their detail by whoever failed; clients get no internals.
  send_error(res, e, e.status == 500 ? "internal error" : error_detail(err), request_id);
}

// Entity ids in paths: 1..128 of [A-Za-z0-9._-].
bool valid_entity_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

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

template <class Message>
entity_envelope envelope_for(const std::string& kind, const std::string& id, const Message& msg,
                             const std::string& request_id) {
  entity_envelope env;
  env.kind = kind;
  env.id = id;
  env.type = Message::descriptor()->full_name();
  env.payload = msg.SerializeAsString();
  // The request id becomes the trace id until the tracing work propagates real contexts.
  env.traceparent = "00-" + request_id.substr(0, 32) + "-0000000000000001-01";
  return env;
}

}  // namespace

edge_server::edge_server(edge_config cfg, health_hooks hooks, caf::actor_system& sys,
                         envelope_handler router, prometheus::Registry& registry, json_log& log)
    : cfg_(std::move(cfg)),
      hooks_(std::move(hooks)),
      sys_(sys),
      router_(std::move(router)),
      log_(log),
      probe_(std::make_unique<edge_probe>(registry)),
      server_(std::make_unique<httplib::Server>()) {
  auto& srv = *server_;
  // Without TCP_NODELAY loopback throughput drops ~170x (Nagle + delayed ACK).
  srv.set_tcp_nodelay(true);
  srv.new_task_queue = [n = cfg_.worker_threads] { return new httplib::ThreadPool(n); };
  srv.set_read_timeout(5, 0);
  srv.set_write_timeout(5, 0);
  srv.set_keep_alive_timeout(5);
  srv.set_payload_max_length(1 << 20);
  // Debian's compiled cpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG is
  // fixed in the .so): a burst of 20 new connections loses SYNs and those clients wait a second
  // for the retransmit. Remember the socket so that bind() can listen again with a real backlog.
  srv.set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_socket_ = sock;
  });

  route(http_method::get, "/healthz", "/healthz",
        [](const httplib::Request&, httplib::Response& res, const std::string&) {
          res.set_content("{\"status\":\"ok\"}", json_type);
        });
  route(http_method::get, "/readyz", "/readyz",
        [this](const httplib::Request&, httplib::Response& res, const std::string&) {
          auto report = hooks_.readiness();
          res.status = report.ready() ? 200 : 503;
          if (!report.ready()) res.set_header("Retry-After", "1");
          res.set_content(to_json(report), json_type);
        });
  route(http_method::get, "/statusz", "/statusz",
        [this](const httplib::Request&, httplib::Response& res, const std::string& rid) {
          auto status = hooks_.status();
          if (!status) {
            send_error(res, status.error(), rid);
            return;
          }
          res.set_content(to_json(*status), json_type);
        });

  if (cfg_.debug_endpoints) {
    // Both counter routes: the id from the path, one command, a CounterValue back.
    auto counter_route = [this](http_method method, const char* pattern, const char* name,
                                auto command) {
      route(method, pattern, name,
            [this, command](const httplib::Request& req, httplib::Response& res,
                            const std::string& rid) {
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
              answer_from_entity<messages::CounterValue>(std::move(env), res, rid);
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
    route(http_method::post, R"(/v1/debug/counters/([^/]+)/remind)",
          "/v1/debug/counters/{id}/remind",
          [this](const httplib::Request& req, httplib::Response& res, const std::string& rid) {
            auto id = req.matches[1].str();
            if (!valid_entity_id(id))
              return send_error(res, {400, "invalid_id", 0},
                                "counter id must be 1..128 of A-Z a-z 0-9 . _ -", rid);
            messages::CounterRemind cmd;
            if (auto problem = parse_remind(req.body, cmd))
              return send_error(res, {400, "invalid_body", 0}, *problem, rid);
            answer_from_entity<messages::CounterValue>(
                envelope_for(debug::counter_kind, id, cmd, rid), res, rid);
          });
    // Admin-only once the edge issue brings roles; until then behind debug-endpoints.
    route(http_method::get, "/v1/debug/dead-letters", "/v1/debug/dead-letters",
          [this](const httplib::Request&, httplib::Response& res, const std::string& rid) {
            auto letters = hooks_.dead_letters();
            if (!letters) return send_error(res, letters.error(), rid);
            res.set_content(to_json(*letters), json_type);
          });
  }

  // Unmatched paths and methods get the one error shape too.
  srv.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    probe_->begin();
    probe_->end("unmatched", req.method, res.status, 0.0);
    auto rid = request_id_of(req);
    res.set_header("X-Request-Id", rid);
    auto code = res.status == 404   ? "not_found"
                : res.status == 405 ? "method_not_allowed"
                                    : "bad_request";
    auto what = res.status == 404 ? "no such route" : "request refused";
    res.set_content(error_body(code, req.method + " " + req.path + ": " + what, rid), json_type);
  });
}

edge_server::~edge_server() {
  stop();
}

template <class Reply>
void edge_server::answer_from_entity(entity_envelope env, httplib::Response& res,
                                     const std::string& request_id) {
  using namespace std::chrono;
  env.deadline_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch() + cfg_.entity_timeout)
          .count();
  auto bytes = ask<std::string>(sys_, router_, cfg_.entity_timeout, std::move(env));
  if (!bytes) return send_error(res, bytes.error(), request_id);
  Reply reply;
  if (!reply.ParseFromString(*bytes))
    return send_error(res, make_error(runtime_errc::bad_payload, "unreadable entity reply"),
                      request_id);
  res.set_content(to_json(reply), json_type);
}

void edge_server::route(http_method method, const std::string& pattern, const std::string& route,
                        handler fn) {
  auto wrapped = [this, route, fn = std::move(fn)](const httplib::Request& req,
                                                   httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    probe_->begin();
    auto rid = request_id_of(req);
    res.set_header("X-Request-Id", rid);
    fn(req, res, rid);
    // cpp-httplib fills in 200 only after the handler returns; metrics need it now.
    if (res.status == -1) res.status = 200;
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
    probe_->end(route, req.method, res.status, elapsed.count());
  };
  if (method == http_method::get)
    server_->Get(pattern, std::move(wrapped));
  else
    server_->Post(pattern, std::move(wrapped));
}

caf::error edge_server::bind() {
  if (!server_->bind_to_port(cfg_.host.c_str(), cfg_.port))
    return caf::make_error(caf::sec::cannot_open_port, "http-port " + std::to_string(cfg_.port) +
                                                           " on " + cfg_.host +
                                                           " cannot be bound (in use?)");
  // Linux lets listen() on a listening socket change its backlog (capped by somaxconn).
  if (listen_socket_ >= 0) ::listen(listen_socket_, listen_backlog);
  return {};
}

void edge_server::start() {
  thread_ = std::thread{[this] {
    if (!server_->listen_after_bind()) log_.error("edge", "http listener stopped with an error");
  }};
  log_.info("edge", "http listening", {{"host", cfg_.host}, {"port", std::to_string(cfg_.port)}});
}

void edge_server::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace chorus::edge
