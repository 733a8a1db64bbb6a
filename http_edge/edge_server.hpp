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
class presence_store;
}  // namespace chorus::persistence

namespace chorus::edge {

class edge_probe;
class live_connections;

/// Where and how the edge listens.
struct edge_config {
  std::string host;
  uint16_t port = 0;
  /// A second listener serving the same (cluster.conf's ws-port); 0: none.
  uint16_t ws_port = 0;
  /// Threads running the event loop (Boost.Beast): parsing, hot routes, WebSockets.
  size_t io_threads = 2;
  /// Threads for handlers that block (password hashing, waits on entities): only a request
  /// being handled holds one, never an idle or slow connection.
  size_t worker_threads = 64;
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
  /// The same per signed-in account, on top (whichever address it comes from); 0: off.
  int64_t user_read_limit = 0;
  int64_t user_write_limit = 0;
  std::chrono::milliseconds limit_window{60000};
  /// Counts the limits (cluster-wide in Redis, per node while Redis is down); none: no limits.
  std::shared_ptr<persistence::rate_limiter> limiter;
  /// Who is online (Redis): WebSocket connections mark their user online or away; null: off.
  std::shared_ptr<persistence::presence_store> presence;
  /// Request size limits: the request line and headers together, and the body.
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  /// A request must arrive whole within this; a keep-alive connection idles at most this long.
  std::chrono::milliseconds request_timeout{10000};
  /// Sending a response may take at most this (a client that does not read is dropped).
  std::chrono::milliseconds write_timeout{10000};
  /// Where upload routes stream request bodies (a directory of this node).
  std::string upload_dir = "/tmp";
  /// An upload slower than this on average, once it has run for `upload_grace`, is dropped.
  uint64_t upload_min_bytes_per_second = 16 * 1024;
  std::chrono::milliseconds upload_grace{30000};
  /// Open connections (HTTP and WebSocket) beyond which new ones are closed at once.
  size_t max_connections = 20000;
  /// WebSocket: a ping after half of this without traffic, closed after all of it.
  std::chrono::milliseconds ws_idle_timeout{60000};
  /// WebSocket: events queued for a client that does not read, beyond which it is dropped.
  size_t ws_max_queued_bytes = 1024 * 1024;
  /// WebSocket: how often the session behind a connection is checked again (a logout or an
  /// expiry ends the connection).
  std::chrono::milliseconds ws_session_check{45000};
  /// WebSocket: topics one connection may hold.
  size_t ws_max_topics = 64;
  /// WebSocket: the largest message a client may send.
  size_t ws_max_message_bytes = 16 * 1024;
};

/// What the operational endpoints report; nodes/ supplies them (the edge knows no membership).
struct health_hooks {
  /// GET /statusz: this node's view of the cluster.
  std::function<caf::expected<messages::NodeStatus>()> status;
  /// GET /readyz: what this node still needs before it can serve.
  std::function<messages::ReadyReport()> readiness;
  /// GET /v1/debug/dead-letters: the messages this node parked.
  std::function<caf::expected<messages::DeadLetters>()> dead_letters;
  /// POST /v1/debug/live: hands (topic, json) to the node's live hub.
  std::function<void(const std::string& topic, const std::string& json)> publish_live;
};

/// The edge of one node: HTTP/1.1 and WebSocket on one Boost.Beast event loop (TCP_NODELAY on).
/// Hot routes answer on the loop without a thread waiting (route_async); handlers that block
/// run on a worker pool. Owned by the node's main(); bind() then start() on the main thread,
/// stop() before the actor system goes away.
/// Serves: GET /healthz (process alive), GET /readyz (200 or 503 naming what is missing),
/// GET /statusz (NodeStatus as JSON), GET /v1/openapi.json, GET /v1/ws (WebSocket: live events
/// of the topics a client may see); with debug endpoints the demo counters. Every answer carries
/// X-Request-Id (echoed or generated); every failure uses the one JSON error shape.
class edge_server final : public edge_api {
 public:
  /// `entities` must outlive the server. `live` is the node's subscription table (the node's
  /// live hub delivers into it).
  edge_server(edge_config cfg, health_hooks hooks, caf::actor_system& sys,
              const entity_gateway& entities, prometheus::Registry& registry, json_log& log,
              std::shared_ptr<live_connections> live);
  ~edge_server();

  edge_server(const edge_server&) = delete;
  edge_server& operator=(const edge_server&) = delete;

  /// Binds the listening socket; an error naming host and port when it is taken.
  caf::error bind();
  /// Serves on background threads. Call after bind().
  void start();
  /// Stops accepting, closes every connection and joins the threads. Idempotent.
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

  /// The state the event loop, the workers and late actor answers share (edge_server.cpp).
  struct core;

 private:
  // edge_api
  void route(http_method method, const std::string& pattern, const std::string& name,
             handler fn) override;
  void route_async(http_method method, const std::string& pattern, const std::string& name,
                   async_handler fn) override;
  void route_upload(http_method method, const std::string& pattern, const std::string& name,
                    uint64_t max_bytes, handler fn) override;
  void set_websocket_authenticator(websocket_authenticator fn) override;
  void add_topic_authorizer(std::string prefix, topic_authorizer fn) override;
  bool admit_user(const std::string& user_id, const http_request& req, http_response& res,
                  const std::string& rid) override;
  caf::expected<std::string> ask_entity(entity_envelope env) override;
  void ask_entity_async(entity_envelope env,
                        std::function<void(caf::expected<std::string>)> then) override;
  caf::expected<std::string> ask_service(const envelope_handler& service,
                                         entity_envelope env) override;
  caf::actor_system& system() override { return sys_; }
  [[nodiscard]] const edge_config& config() const override { return cfg_; }
  void add_route(http_method method, const std::string& pattern, const std::string& name,
                 handler blocking, async_handler async, uint64_t upload_limit = 0);

  edge_config cfg_;
  health_hooks hooks_;
  caf::actor_system& sys_;
  const entity_gateway& entities_;
  json_log& log_;
  std::shared_ptr<core> core_;
  std::vector<route_info> routes_;
};

}  // namespace chorus::edge
