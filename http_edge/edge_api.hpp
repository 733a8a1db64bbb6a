#pragma once

#include <functional>
#include <string>

#include <google/protobuf/message.h>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "http_edge/error_table.hpp"
#include "http_edge/http_message.hpp"
#include "messages/envelope.hpp"
#include "messages/errors.hpp"

namespace chorus::edge {

struct edge_config;

inline constexpr const char* json_type = "application/json";

/// A route's handler: the request, the response to fill, the request id (already echoed).
using handler =
    std::function<void(const http_request&, http_response&, const std::string& request_id)>;

/// Says an async handler is done: `res` is filled and may be sent. Callable from any thread,
/// exactly once.
using finish_fn = std::function<void()>;

/// A handler that never blocks: it starts its work (an actor request) and calls `done` once the
/// response is filled; `req` and `res` stay valid until then. Runs on the edge's event loop
/// (on a worker when the route is rate-limited: the limiter may wait on Redis).
using async_handler = std::function<void(const http_request&, http_response&,
                                         const std::string& request_id, finish_fn done)>;

/// Who opens a WebSocket: the upgrade request's credentials -> the user id, or the error
/// (401 with WWW-Authenticate when unauthenticated). Runs on a worker; may block.
using websocket_authenticator =
    std::function<caf::expected<std::string>(const http_request&, const std::string& request_id)>;

/// Whether `user_id` may subscribe to `topic` over /v1/ws: no error, or the refusal (its
/// domain code becomes the WebSocket error code). Runs on a worker; may block.
using topic_authorizer =
    std::function<caf::error(const std::string& user_id, const std::string& topic)>;

enum class http_method { get, post, put, patch, del };

/// What a group of routes (debug_routes.cpp, user_routes.cpp, ...) gets from the edge: a way to
/// register routes (metrics, request ids and the error shape come with it) and to reach
/// entities. Implemented by edge_server.
class edge_api {
 public:
  virtual ~edge_api() = default;

  /// Registers `fn` for `method` and `pattern` (a regex); `name` is the route in metrics and the
  /// OpenAPI document, e.g. "/v1/users/{id}".
  virtual void route(http_method method, const std::string& pattern, const std::string& name,
                     handler fn) = 0;

  /// Registers a blocking handler whose request body is streamed to a file (req.body_file)
  /// rather than held in memory, refused with 413 as soon as it passes `max_bytes`; a client
  /// that sends too slowly is dropped (408).
  virtual void route_upload(http_method method, const std::string& pattern, const std::string& name,
                            uint64_t max_bytes, handler fn) = 0;

  /// Registers a handler that never blocks (see async_handler); for hot read routes.
  virtual void route_async(http_method method, const std::string& pattern, const std::string& name,
                           async_handler fn) = 0;

  /// Counts a signed-in request against its account's budget (chorus.edge user-read-limit /
  /// user-write-limit, by the request's method); false when over it, with the 429 and its
  /// headers already in `res`.
  virtual bool admit_user(const std::string& user_id, const http_request& req, http_response& res,
                          const std::string& rid) = 0;

  /// Sets who may open `/v1/ws` (the user domain knows sessions; the edge does not).
  virtual void set_websocket_authenticator(websocket_authenticator fn) = 0;

  /// Lets WebSocket clients subscribe to topics starting with `prefix` (e.g. "rooms/") when
  /// `fn` allows it.
  virtual void add_topic_authorizer(std::string prefix, topic_authorizer fn) = 0;

  /// Sends `env` to the node's router with the configured deadline and waits for the entity's
  /// reply bytes (or the error).
  virtual caf::expected<std::string> ask_entity(entity_envelope env) = 0;

  /// Like ask_entity without waiting: `then` runs once, on an actor thread, with the outcome.
  /// It must not touch the edge_api (it may run while the edge shuts down).
  virtual void ask_entity_async(entity_envelope env,
                                std::function<void(caf::expected<std::string>)> then) = 0;

  /// Like ask_entity, but to a node-local service that speaks envelopes (e.g. a read-model
  /// query actor) instead of through the router.
  virtual caf::expected<std::string> ask_service(const envelope_handler& service,
                                                 entity_envelope env) = 0;

  virtual caf::actor_system& system() = 0;
  [[nodiscard]] virtual const edge_config& config() const = 0;

  /// ask_entity, then the reply parsed as `Reply` and rendered as JSON, or the error's status
  /// and body.
  template <class Reply>
  void answer_from_entity(entity_envelope env, http_response& res, const std::string& request_id);
};

/// Protobuf message -> JSON with the .proto field names and every field present.
std::string to_json(const google::protobuf::Message& msg);

/// Fills `res` with the one error shape.
void send_error(http_response& res, const http_error& e, const std::string& message,
                const std::string& request_id);
/// Fills `res` from an error value through the one table; internals are not shown to clients.
void send_error(http_response& res, const caf::error& err, const std::string& request_id);

/// Entity ids in paths: 1..128 of [A-Za-z0-9._-].
bool valid_entity_id(const std::string& id);

/// 32 random hex characters (request ids, edge-made idempotency keys; not secrets).
std::string new_request_id();

/// An envelope for entity (kind, id) carrying `msg`; the request id becomes the trace id.
entity_envelope envelope_for(const std::string& kind, const std::string& id,
                             const google::protobuf::Message& msg, const std::string& request_id);

/// ask_entity for `msg` to entity (kind, id), the reply parsed as `Reply`.
template <class Reply>
caf::expected<Reply> ask_reply(edge_api& api, const std::string& kind, const std::string& id,
                               const google::protobuf::Message& msg, const std::string& rid) {
  auto bytes = api.ask_entity(envelope_for(kind, id, msg, rid));
  if (!bytes) return bytes.error();
  Reply out;
  if (!out.ParseFromString(*bytes))
    return make_error(runtime_errc::bad_payload, "unreadable " + Reply::descriptor()->name());
  return out;
}

template <class Reply>
void edge_api::answer_from_entity(entity_envelope env, http_response& res,
                                  const std::string& request_id) {
  auto bytes = ask_entity(std::move(env));
  if (!bytes) return send_error(res, bytes.error(), request_id);
  Reply reply;
  if (!reply.ParseFromString(*bytes))
    return send_error(res, make_error(runtime_errc::bad_payload, "unreadable entity reply"),
                      request_id);
  res.set_content(to_json(reply), json_type);
}

// The route groups; each registers its routes on `api`.
struct health_hooks;
void add_debug_routes(edge_api& api, const health_hooks& hooks);

}  // namespace chorus::edge
