#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "actors/entity_gateway.hpp"
#include "common/json_log.hpp"
#include "http_edge/edge_api.hpp"
#include "messages/envelope.hpp"
#include "messages/node.pb.h"

namespace chorus::persistence {
class rate_limiter;
}

namespace chorus::edge {

class edge_probe;

/// Where and how the REST edge listens.
struct edge_config {
  std::string host;
  uint16_t port = 0;
  /// cpp-httplib holds one worker per connection, and a worker waits for an actor's answer.
  size_t worker_threads = 128;
  /// How long a request may wait for an entity's answer before it is a 503.
  std::chrono::milliseconds entity_timeout{5000};
  /// Serve /v1/debug/counters (the demo entity).
  bool debug_endpoints = false;
  /// Origins allowed to call with credentials from a browser (CORS), e.g.
  /// "http://localhost:5173"; anything else gets no CORS headers and a refused preflight.
  std::vector<std::string> cors_origins;
  /// Requests per client address and `limit_window` (cluster-chorus.edge): reads (GET) and
  /// writes (the rest); 0 turns a class off. Probes and the API document are never limited.
  int64_t read_limit = 0;
  int64_t write_limit = 0;
  std::chrono::milliseconds limit_window{60000};
  /// Counts the limits (cluster-wide in Redis, per node while Redis is down); none: no limits.
  std::shared_ptr<persistence::rate_limiter> limiter;
};

/// What the operational endpoints report; nodes/ supplies them (the edge knows no membership).
struct health_hooks {
  /// GET /statusz: this node's view of the cluster.
  std::function<caf::expected<messages::NodeStatus>()> status;
  /// GET /readyz: what this node still needs before it can serve.
  std::function<messages::ReadyReport()> readiness;
  /// GET /v1/debug/dead-letters: the messages this node parked.
  std::function<caf::expected<messages::DeadLetters>()> dead_letters;
};

/// The REST edge of one node (cpp-httplib, TCP_NODELAY on). Owned by the node's main();
/// bind() then start() on the main thread, stop() before the actor system goes away.
/// Serves: GET /healthz (process alive), GET /readyz (200 or 503 naming what is missing),
/// GET /statusz (NodeStatus as JSON); with debug endpoints, POST /v1/debug/counters/{id}/increment
/// and GET /v1/debug/counters/{id}, sent as envelopes to the node's router. Every answer carries
/// X-Request-Id (echoed or generated); every failure uses the one JSON error shape.
class edge_server final : public edge_api {
 public:
  /// `entities` must outlive the server.
  edge_server(edge_config cfg, health_hooks hooks, caf::actor_system& sys,
              const entity_gateway& entities, prometheus::Registry& registry, json_log& log);
  ~edge_server();

  edge_server(const edge_server&) = delete;
  edge_server& operator=(const edge_server&) = delete;

  /// Binds the listening socket; an error naming host and port when it is taken.
  caf::error bind();
  /// Serves on a background thread. Call after bind().
  void start();
  /// Stops serving and joins the thread. Idempotent.
  void stop();

  /// Lets `group` register its routes (user_routes.hpp, ...). Call before start().
  void add_routes(const std::function<void(edge_api&)>& group) { group(*this); }

  /// One registered route: its method ("get", "post", ... as in OpenAPI) and its name
  /// ("/v1/users/{id}").
  struct route_info {
    std::string method;
    std::string name;
  };
  /// Every route registered so far, in registration order (the OpenAPI test compares them with
  /// the document).
  [[nodiscard]] const std::vector<route_info>& routes() const { return routes_; }

 private:
  // edge_api
  void route(http_method method, const std::string& pattern, const std::string& name,
             handler fn) override;
  caf::expected<std::string> ask_entity(entity_envelope env) override;
  caf::expected<std::string> ask_service(const envelope_handler& service,
                                         entity_envelope env) override;
  caf::actor_system& system() override { return sys_; }
  [[nodiscard]] bool cors_allowed(const std::string& origin) const;
  /// Counts the request against its route class; false when refused (429 already written).
  /// Sets the RateLimit, RateLimit-Policy and X-RateLimit-* headers either way.
  bool admit(const std::string& route_class, int64_t limit, const httplib::Request& req,
             httplib::Response& res, const std::string& rid);
  [[nodiscard]] const edge_config& config() const override { return cfg_; }

  edge_config cfg_;
  health_hooks hooks_;
  caf::actor_system& sys_;
  const entity_gateway& entities_;
  json_log& log_;
  std::unique_ptr<edge_probe> probe_;
  std::unique_ptr<httplib::Server> server_;
  int listen_socket_ = -1;  ///< the bound socket, once bind() made it
  std::vector<route_info> routes_;
  std::thread thread_;
};

}  // namespace chorus::edge
