#include "persistence/social_chat.hpp"

#include <string_view>

#include "common/clock.hpp"
#include "messages/errors.hpp"
#include "persistence/pg_reader.hpp"

namespace chorus::persistence {

namespace {

constexpr std::string_view room_prefix = "room/";

std::string num(int64_t x) {
  return std::to_string(x);
}

caf::error add_member(sql_tx& tx, const std::string& room, const std::string& user,
                      const std::string& role, int64_t read_seq, int64_t at_ms) {
  return sql_done(tx.exec(
      "INSERT INTO chat_members (room, user_id, role, read_seq, joined_ms) VALUES ($1, $2, $3, "
      "$4::bigint, $5::bigint) ON CONFLICT (room, user_id) DO UPDATE SET role = EXCLUDED.role",
      {room, user, role, num(read_seq), num(at_ms)}));
}

caf::error apply_room(const std::string& room, const stored_event& e, sql_tx& tx) {
  if (messages::ChatPosted ev; event_as(e, ev)) {
    if (auto err = sql_done(tx.exec(
            "INSERT INTO chat_messages (room, seq, author, body, client_id, reply_to, track, "
            "created_ms) VALUES ($1, $2::bigint, $3, $4, $5, $6::bigint, $7, $8::bigint) ON "
            "CONFLICT (room, seq) DO NOTHING",
            {room, num(ev.seq()), ev.author(), ev.text(), ev.client_id(), num(ev.reply_to()),
             ev.track(), num(ev.at_ms())})))
      return err;
    if (auto err =
            sql_done(tx.exec("UPDATE chat_rooms SET last_seq = GREATEST(last_seq, $2::bigint), "
                             "last_ms = GREATEST(last_ms, $3::bigint) WHERE id = $1",
                             {room, num(ev.seq()), num(ev.at_ms())})))
      return err;
    return sql_done(
        tx.exec("UPDATE chat_members SET read_seq = GREATEST(read_seq, $3::bigint) "
                "WHERE room = $1 AND user_id = $2",
                {room, ev.author(), num(ev.seq())}));
  }
  if (messages::ReadMoved ev; event_as(e, ev))
    return sql_done(
        tx.exec("UPDATE chat_members SET read_seq = GREATEST(read_seq, $3::bigint) "
                "WHERE room = $1 AND user_id = $2",
                {room, ev.user(), num(ev.seq())}));
  if (messages::ChatEdited ev; event_as(e, ev))
    return sql_done(
        tx.exec("UPDATE chat_messages SET body = $3, edited_ms = $4::bigint WHERE room = "
                "$1 AND seq = $2::bigint AND NOT deleted",
                {room, num(ev.seq()), ev.text(), num(ev.at_ms())}));
  if (messages::ChatDeleted ev; event_as(e, ev))
    return sql_done(
        tx.exec("UPDATE chat_messages SET body = '', deleted = true WHERE room = $1 AND "
                "seq = $2::bigint",
                {room, num(ev.seq())}));
  if (messages::RoomCreated ev; event_as(e, ev)) {
    if (auto err =
            sql_done(tx.exec("INSERT INTO chat_rooms (id, kind, name, last_seq, last_ms) "
                             "VALUES ($1, $2, $3, 0, $4::bigint) ON CONFLICT (id) DO NOTHING",
                             {room, ev.kind(), ev.name(), num(ev.at_ms())})))
      return err;
    if (auto err = add_member(tx, room, ev.owner(), "owner", 0, ev.at_ms())) return err;
    for (const auto& u : ev.members())
      if (u != ev.owner())
        if (auto err = add_member(tx, room, u, "member", 0, ev.at_ms())) return err;
    return {};
  }
  if (messages::MemberJoined ev; event_as(e, ev))
    return add_member(tx, room, ev.user(), ev.role(), ev.read_seq(), ev.at_ms());
  if (messages::MemberLeft ev; event_as(e, ev))
    return sql_done(
        tx.exec("DELETE FROM chat_members WHERE room = $1 AND user_id = $2", {room, ev.user()}));
  if (messages::MemberBanned ev; event_as(e, ev))
    return sql_done(
        tx.exec("DELETE FROM chat_members WHERE room = $1 AND user_id = $2", {room, ev.user()}));
  if (messages::MemberRoleSet ev; event_as(e, ev))
    return sql_done(tx.exec("UPDATE chat_members SET role = $3 WHERE room = $1 AND user_id = $2",
                            {room, ev.user(), ev.role()}));
  if (messages::RoomConfigured ev; event_as(e, ev)) {
    if (!ev.has_name()) return {};
    return sql_done(tx.exec("UPDATE chat_rooms SET name = $2 WHERE id = $1", {room, ev.name()}));
  }
  return {};
}

}  // namespace

projection social_chat_projection() {
  projection p;
  p.name = "social_chat";
  p.schema = {
      "CREATE TABLE IF NOT EXISTS chat_rooms (id text PRIMARY KEY, kind text NOT NULL, name "
      "text NOT NULL, last_seq bigint NOT NULL, last_ms bigint NOT NULL)",
      "CREATE TABLE IF NOT EXISTS chat_members (room text NOT NULL, user_id text NOT NULL, role "
      "text NOT NULL, read_seq bigint NOT NULL, joined_ms bigint NOT NULL, PRIMARY KEY (room, "
      "user_id))",
      "CREATE INDEX IF NOT EXISTS chat_members_by_user ON chat_members (user_id)",
      "CREATE TABLE IF NOT EXISTS chat_messages (room text NOT NULL, seq bigint NOT NULL, author "
      "text NOT NULL, body text NOT NULL, client_id text NOT NULL, reply_to bigint NOT NULL, "
      "track text NOT NULL, created_ms bigint NOT NULL, edited_ms bigint, deleted boolean NOT "
      "NULL DEFAULT false, PRIMARY KEY (room, seq))"};
  p.reset = [](sql_tx& tx) -> caf::error {
    for (const char* table : {"chat_rooms", "chat_members", "chat_messages"})
      if (auto err = sql_done(tx.exec(std::string{"DELETE FROM "} + table))) return err;
    return {};
  };
  p.apply = [](const stored_event& e, sql_tx& tx) -> caf::error {
    if (e.stream.rfind(room_prefix, 0) != 0) return {};
    return apply_room(e.stream.substr(room_prefix.size()), e, tx);
  };
  return p;
}

social_chat_reader::social_chat_reader(std::string dsn) : db_(std::make_unique<pg_reader>(dsn)) {}

social_chat_reader::~social_chat_reader() = default;

namespace {

bool has_tables(pqxx::transaction_base& tx) {
  return tx.exec("SELECT to_regclass('chat_messages') IS NOT NULL")[0][0].as<bool>();
}

}  // namespace

caf::expected<messages::ChatMessagePage> social_chat_reader::history(const std::string& room,
                                                                     int64_t from, int64_t to) {
  return db_->with([&](pqxx::connection& c) -> caf::expected<messages::ChatMessagePage> {
    pqxx::read_transaction tx{c};
    messages::ChatMessagePage page;
    if (!has_tables(tx)) return page;
    auto rows = tx.exec_params(
        "SELECT seq, author, body, client_id, reply_to, track, created_ms, edited_ms, deleted "
        "FROM chat_messages WHERE room = $1 AND seq BETWEEN $2::bigint AND $3::bigint ORDER BY "
        "seq LIMIT 200",
        room, from, to);
    for (const auto& row : rows) {
      auto* m = page.add_messages();
      m->set_seq(row[0].as<int64_t>());
      m->set_room(room);
      m->set_author(row[1].as<std::string>());
      m->set_text(row[2].as<std::string>());
      m->set_client_id(row[3].as<std::string>());
      m->set_reply_to(row[4].as<int64_t>());
      m->set_track(row[5].as<std::string>());
      m->set_created_at(rfc3339(row[6].as<int64_t>()));
      if (!row[7].is_null()) m->set_edited_at(rfc3339(row[7].as<int64_t>()));
      m->set_deleted(row[8].as<bool>());
    }
    return page;
  });
}

caf::expected<messages::RoomPage> social_chat_reader::rooms(const std::string& user,
                                                            const std::string& cursor, int limit) {
  auto after = parse_cursor(cursor);
  if (!after) return after.error();
  return db_->with([&](pqxx::connection& c) -> caf::expected<messages::RoomPage> {
    pqxx::read_transaction tx{c};
    messages::RoomPage page;
    if (!has_tables(tx)) return page;
    auto rows = tx.exec_params(
        "SELECT r.id, r.kind, r.name, m.role, r.last_seq, m.read_seq, r.last_ms FROM "
        "chat_members m JOIN chat_rooms r ON r.id = m.room WHERE m.user_id = $1 AND (r.last_ms, "
        "r.id) < ($2::bigint, $3) ORDER BY r.last_ms DESC, r.id DESC LIMIT $4",
        user, after->ms, after->id, limit + 1);
    for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
      const auto& row = rows[i];
      if (i == limit) {
        const auto& last = rows[i - 1];
        page.set_next_cursor(last[6].as<std::string>() + "." + last[0].as<std::string>());
        break;
      }
      auto* r = page.add_rooms();
      r->set_id(row[0].as<std::string>());
      r->set_kind(row[1].as<std::string>());
      r->set_name(row[2].as<std::string>());
      r->set_role(row[3].as<std::string>());
      r->set_last_seq(row[4].as<int64_t>());
      r->set_read_seq(row[5].as<int64_t>());
      r->set_unread(std::max<int64_t>(0, r->last_seq() - r->read_seq()));
      if (r->last_seq() > 0) r->set_last_message_at(rfc3339(row[6].as<int64_t>()));
    }
    return page;
  });
}

}  // namespace chorus::persistence
