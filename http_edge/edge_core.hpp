#pragma once

// Internal to http_edge: what the event loop, the workers and late actor answers share. Pulls
// in Boost.Beast, so only edge_server.cpp and ws_session.cpp include it.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/json_log.hpp"
#include "http_edge/edge_api.hpp"
#include "http_edge/edge_probe.hpp"
#include "http_edge/edge_server.hpp"
#include "http_edge/live_connections.hpp"

namespace chorus::edge {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

/// One request and its answer, shared by the connection, the worker and the actor answering.
struct exchange {
  exchange() = default;
  exchange(const exchange&) = delete;
  exchange& operator=(const exchange&) = delete;
  ~exchange() {
    if (!req.body_file.empty()) std::remove(req.body_file.c_str());
  }
  http_request req;
  http_response res;
  std::string rid;
  bool keep_alive = true;
  bool head = false;  ///< HEAD: answered like GET, without the body
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

/// A registered route: exactly one of `blocking` and `async` is set.
struct route_entry {
  /// Whether `path` is a full match of the pattern (`m` holds the groups then).
  bool matches(const std::string& path, std::smatch& m) const {
    return path.starts_with(literals.prefix) && path.ends_with(literals.suffix) &&
           std::regex_match(path, m, pattern);
  }

  std::string method;  ///< "GET", "POST", ...
  std::regex pattern;
  literal_ends literals;  ///< every match starts and ends with these: checked before `pattern`
  std::string name;
  std::string route_class;    ///< "read" or "write" (rate limits)
  int64_t limit = 0;          ///< requests per window for this class, 0: unmetered
  uint64_t upload_limit = 0;  ///< > 0: an upload route (body streamed to a file, this many bytes)
  handler blocking;
  async_handler async;
};

struct edge_server::core : std::enable_shared_from_this<edge_server::core> {
  core(edge_config c, prometheus::Registry& registry, json_log& l,
       std::shared_ptr<live_connections> lc)
      : cfg(std::move(c)),
        log(l),
        probe(registry),
        live(std::move(lc)),
        workers(cfg.worker_threads) {
    for (size_t i = 0; i < std::max<size_t>(1, cfg.io_threads); ++i) {
      loops.push_back(std::make_unique<net::io_context>(1));
      keep.push_back(net::make_work_guard(*loops.back()));
    }
  }

  edge_config cfg;
  json_log& log;
  edge_probe probe;
  std::shared_ptr<live_connections> live;
  std::vector<route_entry> routes;  // fixed once start() runs
  websocket_authenticator ws_auth;
  /// Topic prefix -> who may subscribe (fixed once start() runs).
  std::vector<std::pair<std::string, topic_authorizer>> topic_authorizers;
  /// Hands (topic, json) to the node's live hub (typing indicators, presence); may be empty.
  std::function<void(const std::string& topic, const std::string& json)> publish;
  net::thread_pool workers;
  /// The event loops, one thread each: a connection lives on one loop for its whole life, so
  /// its handlers never run concurrently (no strand) and the live hub hands a loop the event
  /// for all its subscribers in one post. `keep` holds each loop open until stop().
  std::vector<std::unique_ptr<net::io_context>> loops;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> keep;
  std::atomic<size_t> next_loop{0};
  /// The loop a new connection goes to: round robin.
  net::io_context& pick_loop() { return *loops[next_loop++ % loops.size()]; }
  /// The index in `loops` of the loop `ex` runs on; loops.size() if none.
  [[nodiscard]] size_t loop_of(const net::any_io_executor& ex) const {
    const auto* io = ex.target<net::io_context::executor_type>();
    for (size_t i = 0; io != nullptr && i < loops.size(); ++i)
      if (&io->context() == loops[i].get()) return i;
    return loops.size();
  }
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;  // http-port, then ws-port
  std::vector<std::thread> threads;
  std::atomic<size_t> connections{0};
  std::atomic<bool> stopping{false};

  /// Routes the exchange and fills its response; calls `reply` once, from any thread.
  void handle(const std::shared_ptr<exchange>& x, std::function<void()> reply);
  /// The upload route for (method, path), if there is one.
  [[nodiscard]] const route_entry* upload_route(const std::string& method,
                                                const std::string& path) const;
  /// The one error shape for an unmatched path (404) or method (405).
  void unmatched(exchange& x, int status);
  /// CORS preflight (OPTIONS).
  void preflight(exchange& x);
  /// CORS headers of an ordinary answer.
  void cors(exchange& x);
  [[nodiscard]] bool cors_allowed(const std::string& origin) const;
  /// Counts one request under `key` against `limit` per window, named `policy` in the
  /// RateLimit headers; false when refused (429 written, `who` says whose budget it was).
  bool admit(const std::string& key, const std::string& policy, int64_t limit, http_response& res,
             const std::string& rid, const std::string& who);
};

/// A client-supplied request id is echoed only when short and printable.
std::string request_id_of(const http_request& req);

/// Starts a WebSocket session on `stream` for `user_id` (ws_session.cpp); `upgrade` is the
/// client's upgrade request.
/// `req` carries the credentials, checked again while the connection lasts.
void start_websocket(std::shared_ptr<edge_server::core> core, beast::tcp_stream stream,
                     http::request<http::string_body> upgrade, std::string user_id,
                     const http_request& req);

}  // namespace chorus::edge
