#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>

#include "actors/users/passwords.hpp"
#include "http_edge/edge_api.hpp"
#include "messages/envelope.hpp"
#include "messages/sessions.pb.h"

namespace chorus::persistence {
class blob_store;
class rate_limiter;
}  // namespace chorus::persistence

namespace chorus::edge {

/// What the user routes need from the node (cluster.conf's chorus.users and a few services).
struct user_routes_config {
  /// Lowercased usernames with the admin role.
  std::set<std::string> admins;
  /// POST /v1/me/artist waits for an admin.
  bool artist_approval = false;
  std::chrono::milliseconds session_idle{std::chrono::hours{24 * 14}};
  std::chrono::milliseconds session_max{std::chrono::hours{24 * 90}};
  users::password_policy passwords;
  /// Login throttling (cluster-wide through Redis, local when Redis is down).
  std::shared_ptr<persistence::rate_limiter> limiter;
  /// The node's follows query service (actors/users/follows_query.hpp).
  envelope_handler follows;
  /// Where avatars are kept.
  std::shared_ptr<persistence::blob_store> blobs;
};

/// Registers /v1/auth/{register,login,logout}, /v1/me (GET, PATCH), /v1/me/artist,
/// /v1/admin/users/{id}/artist, /v1/users/{id}, /v1/users/{id}/follow (POST, DELETE) and
/// /v1/users/{id}/{followers,following}, PUT/DELETE /v1/me/avatar and GET /v1/users/{id}/avatar.
void add_user_routes(edge_api& api, user_routes_config cfg);

/// The session behind `Authorization: Bearer <token>`, counted against its account's rate
/// limit (a 429 already in `res` when over it). For every domain's signed-in routes.
caf::expected<messages::SessionInfo> signed_in(edge_api& api, const http_request& req,
                                               http_response& res, const std::string& rid);

/// The caller's user id when the request carries a bearer token that is valid, "" when it carries
/// none or a failing one (anonymous access then); after a 429 of the account's rate limit the
/// answer is in `res` (check `res.status == 429`). For routes that serve anybody but show more to
/// a signed-in owner.
std::string signed_in_if_sent(edge_api& api, const http_request& req, http_response& res,
                              const std::string& rid);

/// Answers a failed signed_in: 401 with WWW-Authenticate, or nothing more after a 429.
void send_auth_error(http_response& res, const caf::error& err, const std::string& rid);

}  // namespace chorus::edge
