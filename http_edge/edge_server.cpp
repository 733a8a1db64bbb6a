#include "http_edge/edge_server.hpp"

#include <future>

#include <algorithm>
#include <chrono>
#include <cmath>

#include <httplib.h>
#include <sys/socket.h>
#include <caf/sec.hpp>

#include "http_edge/actor_bridge.hpp"
#include "http_edge/edge_probe.hpp"
#include "http_edge/error_table.hpp"
#include "http_edge/openapi.hpp"
#include "messages/errors.hpp"
#include "persistence/gcra.hpp"
#include "persistence/rate_limiter.hpp"

namespace chorus::edge {

namespace {

// What browsers may send and read across origins (CORS).
constexpr const char* cors_methods = "GET, POST, PUT, PATCH, DELETE";
constexpr const char* cors_request_headers =
    "Authorization, Content-Type, Idempotency-Key, X-Request-Id";
constexpr const char* cors_exposed_headers =
    "X-Request-Id, Retry-After, Location, RateLimit, RateLimit-Policy";

}  // namespace

namespace {

// Pending connections the kernel keeps for the accept loop (somaxconn caps it).
constexpr int listen_backlog = 1024;

// A client-supplied id is echoed only when it is short and printable, so it cannot inject
// headers or bloat logs.
std::string request_id_of(const httplib::Request& req) {
  auto given = req.get_header_value("X-Request-Id");
  if (given.empty() || given.size() > 128) return new_request_id();
  for (unsigned char c : given)
    if (c < 0x21 || c > 0x7e) return new_request_id();
  return given;
}

}  // namespace

edge_server::edge_server(edge_config cfg, health_hooks hooks, caf::actor_system& sys,
                         const entity_gateway& entities, prometheus::Registry& registry,
                         json_log& log)
    : cfg_(std::move(cfg)),
      hooks_(std::move(hooks)),
      sys_(sys),
      entities_(entities),
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

  // CORS. A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here,
  // before routing: 204 with the origin, credentials, methods and headers when the origin is
  // allowed, 403 in the one error shape when it is not. Every other answer gets the origin
  // back (post-routing, so errors too) only when it is allowed, and always Vary: Origin so a
  // cache never hands one origin's answer to another.
  srv.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "OPTIONS") return httplib::Server::HandlerResponse::Unhandled;
    auto rid = request_id_of(req);
    res.set_header("X-Request-Id", rid);
    res.set_header("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    auto origin = req.get_header_value("Origin");
    if (origin.empty() || !req.has_header("Access-Control-Request-Method")) {
      // Not a CORS preflight: say what the API speaks.
      res.status = 204;
      res.set_header("Allow", cors_methods);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!cors_allowed(origin)) {
      send_error(res, {403, "cors_origin_refused", 0},
                 "origin " + origin + " may not call this API from a browser", rid);
      return httplib::Server::HandlerResponse::Handled;
    }
    res.status = 204;
    res.set_header("Access-Control-Allow-Origin", origin);
    res.set_header("Access-Control-Allow-Credentials", "true");
    res.set_header("Access-Control-Allow-Methods", cors_methods);
    res.set_header("Access-Control-Allow-Headers", cors_request_headers);
    res.set_header("Access-Control-Max-Age", "600");
    return httplib::Server::HandlerResponse::Handled;
  });
  srv.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "OPTIONS") return;
    res.set_header("Vary", "Origin");
    auto origin = req.get_header_value("Origin");
    if (origin.empty() || !cors_allowed(origin)) return;
    res.set_header("Access-Control-Allow-Origin", origin);
    res.set_header("Access-Control-Allow-Credentials", "true");
    res.set_header("Access-Control-Expose-Headers", cors_exposed_headers);
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
  // The API document: public, cacheable, the same on every node of one version.
  route(http_method::get, "/v1/openapi.json", "/v1/openapi.json",
        [](const httplib::Request&, httplib::Response& res, const std::string&) {
          res.set_header("Cache-Control", "public, max-age=300");
          res.set_content(std::string{openapi_document()}, json_type);
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

  if (cfg_.debug_endpoints) add_debug_routes(*this, hooks_);

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

bool edge_server::cors_allowed(const std::string& origin) const {
  return std::find(cfg_.cors_origins.begin(), cfg_.cors_origins.end(), origin) !=
         cfg_.cors_origins.end();
}

caf::expected<std::string> edge_server::ask_entity(entity_envelope env) {
  using namespace std::chrono;
  env.deadline_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch() + cfg_.entity_timeout)
          .count();
  return wait_for_actor<std::string>(
      sys_, cfg_.entity_timeout,
      [this, env = std::move(env)](caf::event_based_actor* self, auto done) mutable {
        entities_.ask(self, std::move(env), cfg_.entity_timeout, std::move(done));
      });
}

caf::expected<std::string> edge_server::ask_service(const envelope_handler& service,
                                                    entity_envelope env) {
  if (!service) return make_error(runtime_errc::no_owner, "this node does not run that service");
  using namespace std::chrono;
  env.deadline_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch() + cfg_.entity_timeout)
          .count();
  return ask<std::string>(sys_, service, cfg_.entity_timeout, std::move(env));
}

bool edge_server::admit(const std::string& route_class, int64_t limit, const httplib::Request& req,
                        httplib::Response& res, const std::string& rid) {
  using namespace std::chrono;
  persistence::gcra_limit policy{limit, duration_cast<microseconds>(cfg_.limit_window), limit};
  auto d = cfg_.limiter->check("edge:" + route_class + ":ip:" + req.remote_addr, policy);
  auto window = duration_cast<seconds>(cfg_.limit_window).count();
  auto reset = static_cast<int64_t>(std::ceil(duration<double>(d.reset_after).count()));
  // draft-ietf-httpapi-ratelimit-headers (structured fields) and the older X-RateLimit-*.
  res.set_header("RateLimit-Policy", "\"" + route_class + "\";q=" + std::to_string(limit) +
                                         ";w=" + std::to_string(window));
  res.set_header("RateLimit", "\"" + route_class + "\";r=" + std::to_string(d.remaining) +
                                  ";t=" + std::to_string(reset));
  res.set_header("X-RateLimit-Limit", std::to_string(limit));
  res.set_header("X-RateLimit-Remaining", std::to_string(d.remaining));
  res.set_header("X-RateLimit-Reset", std::to_string(reset));
  if (d.allowed) return true;
  auto retry =
      d.retry_after == persistence::gcra_result::never
          ? window
          : std::max<int64_t>(
                1, static_cast<int64_t>(std::ceil(duration<double>(d.retry_after).count())));
  send_error(res, {429, "rate_limited", static_cast<int>(retry)},
             "too many " + route_class + " requests from this address; retry after " +
                 std::to_string(retry) + " s",
             rid);
  return false;
}

void edge_server::route(http_method method, const std::string& pattern, const std::string& name,
                        handler fn) {
  static constexpr const char* names[] = {"get", "post", "put", "patch", "delete"};
  routes_.push_back({names[static_cast<int>(method)], name});
  // Probes (load balancers call them often) and the API document are never limited.
  bool unmetered =
      name == "/healthz" || name == "/readyz" || name == "/statusz" || name == "/v1/openapi.json";
  std::string route_class = method == http_method::get ? "read" : "write";
  int64_t limit = unmetered || !cfg_.limiter   ? 0
                  : method == http_method::get ? cfg_.read_limit
                                               : cfg_.write_limit;
  auto wrapped = [this, name, route_class, limit, fn = std::move(fn)](const httplib::Request& req,
                                                                      httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    probe_->begin();
    auto rid = request_id_of(req);
    res.set_header("X-Request-Id", rid);
    if (limit <= 0 || admit(route_class, limit, req, res, rid)) fn(req, res, rid);
    // cpp-httplib fills in 200 only after the handler returns; metrics need it now.
    if (res.status == -1) res.status = 200;
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
    probe_->end(name, req.method, res.status, elapsed.count());
  };
  switch (method) {
    case http_method::get:
      server_->Get(pattern, std::move(wrapped));
      break;
    case http_method::post:
      server_->Post(pattern, std::move(wrapped));
      break;
    case http_method::put:
      server_->Put(pattern, std::move(wrapped));
      break;
    case http_method::patch:
      server_->Patch(pattern, std::move(wrapped));
      break;
    case http_method::del:
      server_->Delete(pattern, std::move(wrapped));
      break;
  }
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
