#pragma once

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "messages/social.pb.h"
#include "persistence/projection.hpp"

namespace chorus::persistence {

class pg_reader;

/// The projection `social_chat`: the social domain's chat lists, from the events of rooms
/// (`room/<id>`):
///   chat_rooms     one row per room (kind, name, newest seq and when it was posted)
///   chat_members   (room, user, role, read pointer): a user's room list with unread counts
///   chat_messages  (room, seq, author, text, ...) with edits and deletes applied: history
///                  older than what a room keeps in memory
projection social_chat_projection();

/// Reads the `social_chat` read model. One connection used by one caller at a time (a mutex);
/// reconnects after a failure.
class social_chat_reader {
 public:
  explicit social_chat_reader(std::string dsn);
  ~social_chat_reader();
  social_chat_reader(const social_chat_reader&) = delete;
  social_chat_reader& operator=(const social_chat_reader&) = delete;

  /// Messages `from..to` of `room`, oldest first (fewer when the projection is behind: the
  /// caller checks).
  caf::expected<messages::ChatMessagePage> history(const std::string& room, int64_t from,
                                                   int64_t to);
  /// `user`'s rooms, most recently active first, with unread counts; `cursor` is the last
  /// row of the previous page.
  caf::expected<messages::RoomPage> rooms(const std::string& user, const std::string& cursor,
                                          int limit);

 private:
  std::unique_ptr<pg_reader> db_;
};

}  // namespace chorus::persistence
