#pragma once

#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/entity_kind.hpp"
#include "messages/envelope.hpp"

namespace chorus::social {

/// Entity kinds of the social domain, event-sourced in the "social" storage domain.
inline constexpr const char* room_kind = "room";  ///< id: 32 hex, or "dm-" + 32 hex (direct)
inline constexpr const char* notifications_kind = "notifications";  ///< id: the user's id
inline constexpr const char* social_domain = "social";

/// Limits of rooms and messages.
inline constexpr int max_message_chars = 4000;
inline constexpr int max_room_members = 20000;
inline constexpr int max_initial_members = 50;  ///< ids in one RoomCreate
inline constexpr int max_history_page = 100;
/// Messages a room keeps in memory (with edits and deletes applied): history pages and
/// catch-ups within them are answered by the room itself, older ones by the read model. At most
/// this many, and at most `room_tail_bytes` of them (serialized): 256 messages of 4,000
/// four-byte characters would be 4 MiB per room.
inline constexpr int room_tail_messages = 256;
inline constexpr size_t room_tail_bytes = 1 << 20;
/// How long a typing indicator lasts unless repeated.
inline constexpr int64_t typing_ttl_ms = 6000;

/// The id of the one direct room of users `a` and `b` (either order).
std::string direct_room_id(const std::string& a, const std::string& b);

/// The live topic of room `id`: members subscribed over /v1/ws receive its messages there.
inline std::string room_topic(const std::string& id) {
  return "rooms/" + id;
}

/// A chat room (messages/social.proto): RoomCreate, RoomGet, RoomJoin, RoomLeave, RoomInvite,
/// RoomSetRole, RoomBan, RoomMute, RoomConfigure, RoomRead -> RoomInfo; MessagePost ->
/// MessagePostAnswer; MessageEdit, MessageDelete -> ChatMessage; MessageReportCreate ->
/// MessageReport; MessageReportsGet -> MessageReportPage; RoomHistoryGet -> RoomHistory;
/// RoomMembersGet -> RoomMemberPage. Every change is published live on room_topic(id).
entity_factory room_factory();

/// A user's notifications (messages/social.proto): NotifyPush -> Notification (an id seen
/// before changes nothing), NotifyList, NotifyMarkRead -> NotificationPage,
/// NotifyPreferencesGet/Set -> NotifyPreferences. New ones are published live on the user's
/// notifications topic.
entity_factory notifications_factory();

/// "new_follower", "new_track", "mention", "reply", "direct_message".
bool is_notification_type(const std::string& type);

/// A node-local query service over the `social_chat` read model (like the audio library's):
/// envelopes carrying SocialQuery -> ChatMessagePage or RoomPage. Runs on a thread of its own.
envelope_handler spawn_social_query(caf::actor_system& sys, std::string social_dsn);

}  // namespace chorus::social
