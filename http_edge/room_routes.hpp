#pragma once

#include <memory>

#include "http_edge/edge_api.hpp"
#include "messages/envelope.hpp"

namespace chorus::persistence {
class presence_store;
}

namespace chorus::edge {

/// What the chat routes need from the node.
struct room_routes_config {
  /// The node's social query service (actors/social/social.hpp): room lists, old history.
  envelope_handler query;
  /// Presence of members (Redis); null: everyone shows offline.
  std::shared_ptr<persistence::presence_store> presence;
};

/// Registers the chat routes: /v1/rooms (POST create, GET the caller's rooms with unread
/// counts), /v1/rooms/{id} (GET, PATCH), .../join, .../leave, .../members (GET, POST invite),
/// .../members/{user} (PUT role), .../bans (POST) and .../bans/{user} (DELETE), .../mutes,
/// .../messages (POST, GET history), .../messages/{seq} (PATCH, DELETE),
/// .../messages/{seq}/reports (POST), .../reports (GET), .../read (POST); and lets room members
/// subscribe to "rooms/<id>" over /v1/ws.
void add_room_routes(edge_api& api, room_routes_config cfg);

/// Registers the notification routes: GET /v1/me/notifications (?limit, cursor, unread=true),
/// POST /v1/me/notifications/read {"ids"} or {"all": true}, GET and PUT
/// /v1/me/notifications/preferences.
void add_notification_routes(edge_api& api);

}  // namespace chorus::edge
