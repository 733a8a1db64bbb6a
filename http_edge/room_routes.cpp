#include "http_edge/room_routes.hpp"

#include <variant>

#include <google/protobuf/util/json_util.h>

#include "actors/audio/audio.hpp"
#include "actors/social/social.hpp"
#include "actors/users/passwords.hpp"
#include "actors/users/users.hpp"
#include "http_edge/json_body.hpp"
#include "http_edge/user_routes.hpp"
#include "messages/audio.pb.h"
#include "messages/social.pb.h"
#include "messages/users.pb.h"
#include "persistence/presence.hpp"

// The chat routes. Rooms are entities (actors/social/room_entity.cpp): every change goes to the
// room, which checks who may do it and publishes it live; the caller's room list and history
// older than what a room keeps in memory come from the `social_chat` read model through the
// node's social query service.

namespace chorus::edge {

namespace {

using google::protobuf::Struct;
using cfg_ptr = std::shared_ptr<const room_routes_config>;

caf::error no_room() {
  return make_error(domain_errc::not_found, "no such room");
}

/// Asks room `id` and answers its reply as `Reply` JSON with `status`.
template <class Reply>
void ask_room(edge_api& api, http_response& res, const std::string& rid, const std::string& id,
              const google::protobuf::Message& cmd, int status = 200) {
  if (!valid_entity_id(id)) return send_error(res, no_room(), rid);
  api.answer_from_entity<Reply>(envelope_for(social::room_kind, id, cmd, rid), res, rid);
  if (res.ok_so_far()) res.status = status;
}

/// Whether user `id` exists (otherwise the answer is in `res`: 422, as it is a body field).
bool user_exists(edge_api& api, http_response& res, const std::string& rid, const std::string& id) {
  auto refuse = [&] {
    send_error(res, {422, "validation", 0}, "no such user: " + id, rid);
    return false;
  };
  if (!valid_entity_id(id)) return refuse();
  auto user = ask_reply<messages::UserProfile>(api, users::user_kind, id, messages::UserGet{}, rid);
  if (!user) {
    if (is(user.error(), domain_errc::not_found)) return refuse();
    send_error(res, user.error(), rid);
    return false;
  }
  return true;
}

/// A whole number from a path segment or query parameter ("" or garbage: -1).
int64_t whole_of(const std::string& s) {
  if (s.empty() || s.size() > 18) return -1;
  for (char c : s)
    if (c < '0' || c > '9') return -1;
  return std::stoll(s);
}

/// The body's "user" field (a user id that exists), or nothing with the answer in `res`.
std::optional<std::string> user_field(edge_api& api, const http_request& req, http_response& res,
                                      const std::string& rid,
                                      std::initializer_list<std::string_view> allowed,
                                      Struct* out = nullptr) {
  auto body = json_object(req, allowed);
  if (auto* r = std::get_if<refusal>(&body)) {
    send_refusal(res, *r, rid);
    return std::nullopt;
  }
  auto user = string_field(std::get<Struct>(body), "user", 1, 128);
  if (auto* r = first_refusal(user)) {
    send_refusal(res, *r, rid);
    return std::nullopt;
  }
  if (!value_of(user)) {
    send_error(res, {422, "validation", 0}, "user is required", rid);
    return std::nullopt;
  }
  if (!user_exists(api, res, rid, *value_of(user))) return std::nullopt;
  if (out != nullptr) *out = std::get<Struct>(body);
  return *value_of(user);
}

/// Signed in, or the 401/429 is in `res`.
std::optional<std::string> caller(edge_api& api, const http_request& req, http_response& res,
                                  const std::string& rid) {
  auto who = signed_in(api, req, res, rid);
  if (!who) {
    send_auth_error(res, who.error(), rid);
    return std::nullopt;
  }
  return who->user_id();
}

void no_content(http_response& res) {
  if (!res.ok_so_far()) return;
  res.status = 204;
  res.body.clear();
  res.headers.erase("Content-Type");
}

/// GET /v1/rooms/{id}/messages: the room answers what it holds and names the older range the
/// read model must supply; a read model that has not caught up with that range (it trails the
/// room by the relay's delay) is a 503 to retry, never a page with a hole in it.
void history(edge_api& api, const cfg_ptr& cfg, const http_request& req, http_response& res,
             const std::string& rid) {
  auto by = caller(api, req, res, rid);
  if (!by) return;
  messages::RoomHistoryGet q;
  q.set_by(*by);
  q.set_limit(50);
  for (const char* key : {"before", "after", "limit"}) {
    if (!req.has_param(key)) continue;
    auto v = whole_of(req.get_param_value(key));
    if (v < 0 || (std::string{key} == "limit" && (v < 1 || v > social::max_history_page)))
      return send_error(
          res, {422, "validation", 0},
          std::string{key} + (std::string{key} == "limit" ? " must be 1..100"
                                                          : " must be a whole number of 0 or more"),
          rid);
    if (std::string{key} == "before") q.set_before(v);
    if (std::string{key} == "after") q.set_after(v);
    if (std::string{key} == "limit") q.set_limit(static_cast<int32_t>(v));
  }
  if (q.before() > 0 && q.after() > 0)
    return send_error(res, {422, "validation", 0}, "ask before or after, not both", rid);
  auto id = req.matches[1].str();
  if (!valid_entity_id(id)) return send_error(res, no_room(), rid);
  auto held = ask_reply<messages::RoomHistory>(api, social::room_kind, id, q, rid);
  if (!held) return send_error(res, held.error(), rid);
  messages::ChatMessagePage page;
  if (held->missing_to() > 0) {
    messages::SocialQuery sq;
    sq.set_what("history");
    sq.set_subject(id);
    sq.set_from(held->missing_from());
    sq.set_to(held->missing_to());
    if (!cfg->query)
      return send_error(res, make_error(runtime_errc::no_owner, "no social query service"), rid);
    auto bytes = api.ask_service(cfg->query, envelope_for("social", id, sq, rid));
    if (!bytes) return send_error(res, bytes.error(), rid);
    if (!page.ParseFromString(*bytes))
      return send_error(res, make_error(runtime_errc::bad_payload, "unreadable page"), rid);
    auto want = held->missing_to() - held->missing_from() + 1;
    bool whole = page.messages_size() == want;
    for (int i = 0; whole && i < page.messages_size(); ++i)
      whole = page.messages(i).seq() == held->missing_from() + i;
    if (!whole) {
      res.set_header("Retry-After", "1");
      return send_error(res, {503, "unavailable", 1},
                        "older history is still being indexed; retry in a moment", rid);
    }
  }
  for (const auto& m : held->messages()) *page.add_messages() = m;
  res.set_header("Cache-Control", "no-store");
  res.set_content(to_json(page), json_type);
}

/// The room command `Cmd` of the signed-in caller to room {id} (the pattern's first group):
/// `fill(req, res, rid, cmd)` completes it from the request, or refuses (false, the answer in
/// `res`); the room's answer is `Reply`, sent with `status` (204 and no body when `empty`).
template <class Cmd, class Reply = messages::RoomInfo, class Fill>
void room_command(edge_api& api, http_method method, const std::string& pattern,
                  const std::string& name, Fill fill, int status = 200, bool empty = false) {
  api.route(method, pattern, name,
            [&api, fill, status, empty](const http_request& req, http_response& res,
                                        const std::string& rid) {
              auto by = caller(api, req, res, rid);
              if (!by) return;
              Cmd cmd;
              cmd.set_by(*by);
              if (!fill(req, res, rid, cmd)) return;
              ask_room<Reply>(api, res, rid, req.matches[1].str(), cmd, status);
              if (empty) no_content(res);
            });
}

/// A command that takes nothing from the request.
constexpr auto nothing_more = [](const http_request&, http_response&, const std::string&, auto&) {
  return true;
};

/// The JSON body with only `allowed` keys, or false with the refusal in `res`.
bool body_of(const http_request& req, http_response& res, const std::string& rid,
             std::initializer_list<std::string_view> allowed, Struct& out) {
  auto body = json_object(req, allowed);
  if (auto* r = std::get_if<refusal>(&body)) {
    send_refusal(res, *r, rid);
    return false;
  }
  out = std::move(std::get<Struct>(body));
  return true;
}

/// The message seq of the pattern's second group, or false with a 404 in `res`.
bool seq_of(const http_request& req, http_response& res, const std::string& rid, int64_t& out) {
  out = whole_of(req.matches[2].str());
  if (out >= 1) return true;
  send_error(res, make_error(domain_errc::not_found, "no such message"), rid);
  return false;
}

}  // namespace

void add_room_routes(edge_api& api, room_routes_config config) {
  auto cfg = std::make_shared<const room_routes_config>(std::move(config));

  // Room members (and only they) hear a room over /v1/ws.
  api.add_topic_authorizer("rooms/", [&api](const std::string& user, const std::string& topic) {
    auto id = topic.substr(6);
    if (!valid_entity_id(id)) return no_room();
    messages::RoomGet q;
    q.set_by(user);
    auto info = ask_reply<messages::RoomInfo>(api, social::room_kind, id, q, new_request_id());
    if (!info) return info.error();
    if (info->role().empty()) return make_error(domain_errc::forbidden, "join the room first");
    return caf::error{};
  });

  // POST /v1/rooms {"kind": direct|group|public, "name"?, "members"?: [user ids]}: 201 with
  // the room; the direct room of two users exists once (asked again: 200 with it).
  api.route(http_method::post, "/v1/rooms", "/v1/rooms",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto by = caller(api, req, res, rid);
              if (!by) return;
              auto body = json_object(req, {"kind", "name", "members"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              const auto& o = std::get<Struct>(body);
              auto kind = string_field(o, "kind", 1, 16);
              auto name = string_field(o, "name", 1, 100);
              auto members = string_list_field(o, "members", social::max_initial_members, 128);
              if (auto* r = first_refusal(kind, name, members)) return send_refusal(res, *r, rid);
              auto k = value_of(kind).value_or("");
              if (k != "direct" && k != "group" && k != "public")
                return send_error(res, {422, "validation", 0},
                                  "kind must be direct, group or public", rid);
              auto ids = value_of(members).value_or(std::vector<std::string>{});
              if (k == "direct" && (ids.size() != 1 || ids[0] == *by))
                return send_error(res, {422, "validation", 0},
                                  "a direct room has exactly one other member", rid);
              if (k == "direct" && value_of(name))
                return send_error(res, {422, "validation", 0}, "a direct room has no name", rid);
              if (k != "direct" && !value_of(name))
                return send_error(res, {422, "validation", 0}, "name is required", rid);
              for (const auto& u : ids)
                if (!user_exists(api, res, rid, u)) return;
              messages::RoomCreate cmd;
              cmd.set_by(*by);
              cmd.set_kind(k);
              cmd.set_name(value_of(name).value_or(""));
              for (const auto& u : ids) cmd.add_members(u);
              auto id = k == "direct" ? social::direct_room_id(*by, ids[0]) : users::new_user_id();
              auto env = envelope_for(social::room_kind, id, cmd, rid);
              env.redeliverable = true;  // a redelivered create is recognised
              auto bytes = api.ask_entity(std::move(env));
              if (!bytes) return send_error(res, bytes.error(), rid);
              messages::RoomInfo info;
              info.ParseFromString(*bytes);
              // The direct room existed if it has messages or its owner is the other user.
              bool existed = k == "direct" && (info.last_seq() > 0 || info.owner() != *by);
              res.status = existed ? 200 : 201;
              res.set_header("Location", "/v1/rooms/" + id);
              res.set_content(to_json(info), json_type);
            });

  // GET /v1/rooms: the caller's rooms, most recently active first, with unread counts.
  api.route(http_method::get, "/v1/rooms", "/v1/rooms",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto by = caller(api, req, res, rid);
              if (!by) return;
              auto page = page_params(req);
              if (auto* r = std::get_if<refusal>(&page)) return send_refusal(res, *r, rid);
              messages::SocialQuery q;
              q.set_what("rooms");
              q.set_subject(*by);
              q.set_limit(std::get<page_request>(page).limit);
              q.set_cursor(std::get<page_request>(page).cursor);
              if (!cfg->query)
                return send_error(res, make_error(runtime_errc::no_owner, "no social query"), rid);
              auto bytes = api.ask_service(cfg->query, envelope_for("social", *by, q, rid));
              if (!bytes) return send_error(res, bytes.error(), rid);
              messages::RoomPage out;
              if (!out.ParseFromString(*bytes))
                return send_error(res, make_error(runtime_errc::bad_payload, "unreadable"), rid);
              res.set_header("Cache-Control", "no-store");
              res.set_content(to_json(out), json_type);
            });

  room_command<messages::RoomGet>(api, http_method::get, R"(/v1/rooms/([^/]+))", "/v1/rooms/{id}",
                                  nothing_more);

  // PATCH /v1/rooms/{id} {"name"?, "slow_mode_s"?}: owners and moderators.
  room_command<messages::RoomConfigure>(
      api, http_method::patch, R"(/v1/rooms/([^/]+))", "/v1/rooms/{id}",
      [](const http_request& req, http_response& res, const std::string& rid,
         messages::RoomConfigure& cmd) {
        Struct o;
        if (!body_of(req, res, rid, {"name", "slow_mode_s"}, o)) return false;
        auto name = string_field(o, "name", 1, 100);
        auto slow = int_field(o, "slow_mode_s", 0, 3600);
        if (auto* r = first_refusal(name, slow)) return send_refusal(res, *r, rid), false;
        if (!value_of(name) && !value_of(slow))
          return send_error(res, {422, "validation", 0}, "send a field to change", rid), false;
        if (auto& v = value_of(name)) cmd.set_name(*v);
        if (auto& v = value_of(slow)) cmd.set_slow_mode_s(static_cast<int32_t>(*v));
        return true;
      });

  // POST /v1/rooms/{id}/join (public rooms) and /leave.
  room_command<messages::RoomJoin>(api, http_method::post, R"(/v1/rooms/([^/]+)/join)",
                                   "/v1/rooms/{id}/join", nothing_more);
  room_command<messages::RoomLeave>(api, http_method::post, R"(/v1/rooms/([^/]+)/leave)",
                                    "/v1/rooms/{id}/leave", nothing_more);

  // GET /v1/rooms/{id}/members?cursor=&limit=: sorted by user id, with presence.
  api.route(http_method::get, R"(/v1/rooms/([^/]+)/members)", "/v1/rooms/{id}/members",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto by = caller(api, req, res, rid);
              if (!by) return;
              auto page = page_params(req);
              if (auto* r = std::get_if<refusal>(&page)) return send_refusal(res, *r, rid);
              messages::RoomMembersGet cmd;
              cmd.set_by(*by);
              cmd.set_cursor(std::get<page_request>(page).cursor);
              cmd.set_limit(std::get<page_request>(page).limit);
              auto id = req.matches[1].str();
              if (!valid_entity_id(id)) return send_error(res, no_room(), rid);
              auto out = ask_reply<messages::RoomMemberPage>(api, social::room_kind, id, cmd, rid);
              if (!out) return send_error(res, out.error(), rid);
              std::vector<user_id> users;
              for (const auto& m : out->members()) users.emplace_back(m.user());
              auto statuses = cfg->presence && !users.empty()
                                  ? cfg->presence->get_many(users)
                                  : caf::expected<std::vector<persistence::presence_status>>{
                                        std::vector<persistence::presence_status>{}};
              for (int i = 0; i < out->members_size(); ++i)
                out->mutable_members(i)->set_presence(
                    statuses && static_cast<size_t>(i) < statuses->size()
                        ? persistence::to_string((*statuses)[static_cast<size_t>(i)])
                        : "offline");
              res.set_header("Cache-Control", "no-store");
              res.set_content(to_json(*out), json_type);
            });

  // POST /v1/rooms/{id}/members {"user"}: invite (add) a user.
  room_command<messages::RoomInvite>(api, http_method::post, R"(/v1/rooms/([^/]+)/members)",
                                     "/v1/rooms/{id}/members",
                                     [&api](const http_request& req, http_response& res,
                                            const std::string& rid, messages::RoomInvite& cmd) {
                                       auto user = user_field(api, req, res, rid, {"user"});
                                       if (user) cmd.set_user(*user);
                                       return user.has_value();
                                     });

  // PUT /v1/rooms/{id}/members/{user} {"role": moderator|member}: the owner sets roles.
  room_command<messages::RoomSetRole>(
      api, http_method::put, R"(/v1/rooms/([^/]+)/members/([^/]+))",
      "/v1/rooms/{id}/members/{user}",
      [](const http_request& req, http_response& res, const std::string& rid,
         messages::RoomSetRole& cmd) {
        Struct o;
        if (!body_of(req, res, rid, {"role"}, o)) return false;
        auto role = string_field(o, "role", 1, 16);
        if (auto* r = first_refusal(role)) return send_refusal(res, *r, rid), false;
        auto v = value_of(role).value_or("");
        if (v != "moderator" && v != "member")
          return send_error(res, {422, "validation", 0}, "role must be moderator or member", rid),
                 false;
        cmd.set_user(req.matches[2].str());
        cmd.set_role(v);
        return true;
      });

  // POST /v1/rooms/{id}/bans {"user"} and DELETE /v1/rooms/{id}/bans/{user}: moderators.
  room_command<messages::RoomBan>(api, http_method::post, R"(/v1/rooms/([^/]+)/bans)",
                                  "/v1/rooms/{id}/bans",
                                  [&api](const http_request& req, http_response& res,
                                         const std::string& rid, messages::RoomBan& cmd) {
                                    auto user = user_field(api, req, res, rid, {"user"});
                                    if (user) cmd.set_user(*user);
                                    cmd.set_on(true);
                                    return user.has_value();
                                  });
  room_command<messages::RoomBan>(
      api, http_method::del, R"(/v1/rooms/([^/]+)/bans/([^/]+))", "/v1/rooms/{id}/bans/{user}",
      [](const http_request& req, http_response&, const std::string&, messages::RoomBan& cmd) {
        cmd.set_user(req.matches[2].str());
        cmd.set_on(false);
        return true;
      },
      200, true);

  // POST /v1/rooms/{id}/mutes {"user", "seconds"} (0 unmutes): moderators.
  room_command<messages::RoomMute>(
      api, http_method::post, R"(/v1/rooms/([^/]+)/mutes)", "/v1/rooms/{id}/mutes",
      [&api](const http_request& req, http_response& res, const std::string& rid,
             messages::RoomMute& cmd) {
        Struct body;
        auto user = user_field(api, req, res, rid, {"user", "seconds"}, &body);
        if (!user) return false;
        auto seconds = int_field(body, "seconds", 0, 30LL * 24 * 3600);
        if (auto* r = first_refusal(seconds)) return send_refusal(res, *r, rid), false;
        if (!value_of(seconds))
          return send_error(res, {422, "validation", 0}, "seconds is required", rid), false;
        cmd.set_user(*user);
        cmd.set_seconds(*value_of(seconds));
        return true;
      });

  // POST /v1/rooms/{id}/messages {"text", "client_id", "reply_to"?, "track"?}: 201 with the
  // message; the same client_id again answers 200 with the message it made.
  api.route(http_method::post, R"(/v1/rooms/([^/]+)/messages)", "/v1/rooms/{id}/messages",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto by = caller(api, req, res, rid);
              if (!by) return;
              auto body = json_object(req, {"text", "client_id", "reply_to", "track", "mentions"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              const auto& o = std::get<Struct>(body);
              auto text = string_field(o, "text", 1, social::max_message_chars);
              auto client_id = string_field(o, "client_id", 1, 64);
              auto reply_to = int_field(o, "reply_to", 1, INT64_C(1) << 53);
              auto track = string_field(o, "track", 1, 128);
              auto mentions = string_list_field(o, "mentions", 20, 128);
              if (auto* r = first_refusal(text, client_id, reply_to, track, mentions))
                return send_refusal(res, *r, rid);
              if (!value_of(text))
                return send_error(res, {422, "validation", 0}, "text is required", rid);
              if (!value_of(client_id))
                return send_error(res, {422, "validation", 0},
                                  "client_id is required (it makes a retried send safe)", rid);
              if (auto& t = value_of(track)) {
                // An attachment is a track the sender may see (a private one only its owner).
                auto info = valid_entity_id(*t)
                                ? ask_reply<messages::TrackInfo>(api, audio::track_kind, *t,
                                                                 messages::TrackGet{}, rid)
                                : caf::expected<messages::TrackInfo>{no_room()};
                if (!info && !is(info.error(), domain_errc::not_found))
                  return send_error(res, info.error(), rid);
                if (!info || (info->visibility() == "private" && info->owner() != *by))
                  return send_error(res, {422, "validation", 0}, "no such track: " + *t, rid);
              }
              messages::MessagePost cmd;
              cmd.set_by(*by);
              cmd.set_text(*value_of(text));
              cmd.set_client_id(*value_of(client_id));
              cmd.set_reply_to(value_of(reply_to).value_or(0));
              cmd.set_track(value_of(track).value_or(""));
              for (const auto& u : value_of(mentions).value_or(std::vector<std::string>{}))
                cmd.add_mentions(u);
              auto id = req.matches[1].str();
              if (!valid_entity_id(id)) return send_error(res, no_room(), rid);
              auto env = envelope_for(social::room_kind, id, cmd, rid);
              env.redeliverable = true;  // a redelivered post is recognised by its client id
              auto bytes = api.ask_entity(std::move(env));
              if (!bytes) return send_error(res, bytes.error(), rid);
              messages::MessagePostAnswer out;
              if (!out.ParseFromString(*bytes))
                return send_error(res, make_error(runtime_errc::bad_payload, "unreadable"), rid);
              res.status = out.duplicate() ? 200 : 201;
              res.set_content(to_json(out.message()), json_type);
            });

  // GET /v1/rooms/{id}/messages?before=SEQ|after=SEQ&limit=N (members): oldest first.
  api.route(http_method::get, R"(/v1/rooms/([^/]+)/messages)", "/v1/rooms/{id}/messages",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              history(api, cfg, req, res, rid);
            });

  // PATCH /v1/rooms/{id}/messages/{seq} {"text"} (the author) and DELETE (the author or a
  // moderator).
  room_command<messages::MessageEdit, messages::ChatMessage>(
      api, http_method::patch, R"(/v1/rooms/([^/]+)/messages/([^/]+))",
      "/v1/rooms/{id}/messages/{seq}",
      [](const http_request& req, http_response& res, const std::string& rid,
         messages::MessageEdit& cmd) {
        int64_t seq = 0;
        Struct o;
        if (!seq_of(req, res, rid, seq) || !body_of(req, res, rid, {"text"}, o)) return false;
        auto text = string_field(o, "text", 1, social::max_message_chars);
        if (auto* r = first_refusal(text)) return send_refusal(res, *r, rid), false;
        if (!value_of(text))
          return send_error(res, {422, "validation", 0}, "text is required", rid), false;
        cmd.set_seq(seq);
        cmd.set_text(*value_of(text));
        return true;
      });
  room_command<messages::MessageDelete, messages::ChatMessage>(
      api, http_method::del, R"(/v1/rooms/([^/]+)/messages/([^/]+))",
      "/v1/rooms/{id}/messages/{seq}",
      [](const http_request& req, http_response& res, const std::string& rid,
         messages::MessageDelete& cmd) {
        int64_t seq = 0;
        if (!seq_of(req, res, rid, seq)) return false;
        cmd.set_seq(seq);
        return true;
      },
      200, true);

  // POST /v1/rooms/{id}/messages/{seq}/reports {"reason"?}: 201; GET /v1/rooms/{id}/reports
  // (moderators).
  room_command<messages::MessageReportCreate, messages::MessageReport>(
      api, http_method::post, R"(/v1/rooms/([^/]+)/messages/([^/]+)/reports)",
      "/v1/rooms/{id}/messages/{seq}/reports",
      [](const http_request& req, http_response& res, const std::string& rid,
         messages::MessageReportCreate& cmd) {
        int64_t seq = 0;
        Struct o;
        if (!seq_of(req, res, rid, seq) || !body_of(req, res, rid, {"reason"}, o)) return false;
        auto reason = string_field(o, "reason", 0, 500);
        if (auto* r = first_refusal(reason)) return send_refusal(res, *r, rid), false;
        cmd.set_seq(seq);
        cmd.set_reason(value_of(reason).value_or(""));
        return true;
      },
      201);
  room_command<messages::MessageReportsGet, messages::MessageReportPage>(
      api, http_method::get, R"(/v1/rooms/([^/]+)/reports)", "/v1/rooms/{id}/reports",
      nothing_more);

  // POST /v1/rooms/{id}/read {"seq"}: moves the caller's read pointer forward.
  room_command<messages::RoomRead>(
      api, http_method::post, R"(/v1/rooms/([^/]+)/read)", "/v1/rooms/{id}/read",
      [](const http_request& req, http_response& res, const std::string& rid,
         messages::RoomRead& cmd) {
        Struct o;
        if (!body_of(req, res, rid, {"seq"}, o)) return false;
        auto seq = int_field(o, "seq", 0, INT64_C(1) << 53);
        if (auto* r = first_refusal(seq)) return send_refusal(res, *r, rid), false;
        if (!value_of(seq))
          return send_error(res, {422, "validation", 0}, "seq is required", rid), false;
        cmd.set_seq(*value_of(seq));
        return true;
      });
}

void add_notification_routes(edge_api& api) {
  // GET /v1/me/notifications: newest first; ?unread=true only the unread ones.
  api.route(http_method::get, "/v1/me/notifications", "/v1/me/notifications",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto by = caller(api, req, res, rid);
              if (!by) return;
              auto page = page_params(req);
              if (auto* r = std::get_if<refusal>(&page)) return send_refusal(res, *r, rid);
              auto unread = req.get_param_value("unread");
              if (!unread.empty() && unread != "true" && unread != "false")
                return send_error(res, {422, "validation", 0}, "unread must be true or false", rid);
              messages::NotifyList cmd;
              cmd.set_cursor(std::get<page_request>(page).cursor);
              cmd.set_limit(std::get<page_request>(page).limit);
              cmd.set_unread_only(unread == "true");
              api.answer_from_entity<messages::NotificationPage>(
                  envelope_for(social::notifications_kind, *by, cmd, rid), res, rid);
              res.set_header("Cache-Control", "no-store");
            });
  // POST /v1/me/notifications/read {"ids": [...]} or {"all": true}.
  api.route(http_method::post, "/v1/me/notifications/read", "/v1/me/notifications/read",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto by = caller(api, req, res, rid);
              if (!by) return;
              Struct o;
              if (!body_of(req, res, rid, {"ids", "all"}, o)) return;
              auto ids = string_list_field(o, "ids", 100, 200);
              if (auto* r = first_refusal(ids)) return send_refusal(res, *r, rid);
              auto all = o.fields().find("all");
              if (all != o.fields().end() &&
                  all->second.kind_case() != google::protobuf::Value::kBoolValue)
                return send_error(res, {422, "validation", 0}, "all must be true or false", rid);
              bool everything = all != o.fields().end() && all->second.bool_value();
              if (!everything && !value_of(ids))
                return send_error(res, {422, "validation", 0}, "send ids or all", rid);
              messages::NotifyMarkRead cmd;
              cmd.set_all(everything);
              for (const auto& id : value_of(ids).value_or(std::vector<std::string>{}))
                cmd.add_ids(id);
              api.answer_from_entity<messages::NotificationPage>(
                  envelope_for(social::notifications_kind, *by, cmd, rid), res, rid);
            });
  api.route(
      http_method::get, "/v1/me/notifications/preferences", "/v1/me/notifications/preferences",
      [&api](const http_request& req, http_response& res, const std::string& rid) {
        auto by = caller(api, req, res, rid);
        if (!by) return;
        api.answer_from_entity<messages::NotifyPreferences>(
            envelope_for(social::notifications_kind, *by, messages::NotifyPreferencesGet{}, rid),
            res, rid);
      });
  // PUT /v1/me/notifications/preferences: the whole preferences; email goes to the account's
  // address as it is now.
  api.route(
      http_method::put, "/v1/me/notifications/preferences", "/v1/me/notifications/preferences",
      [&api](const http_request& req, http_response& res, const std::string& rid) {
        auto by = caller(api, req, res, rid);
        if (!by) return;
        Struct o;
        if (!body_of(req, res, rid,
                     {"channels", "quiet_start_min", "quiet_end_min", "utc_offset_min", "phone",
                      "push_token"},
                     o))
          return;
        messages::NotifyPreferences prefs;
        google::protobuf::util::JsonParseOptions strict;
        strict.ignore_unknown_fields = false;
        if (auto st = google::protobuf::util::JsonStringToMessage(req.body, &prefs, strict);
            !st.ok())
          return send_error(res, {422, "validation", 0},
                            "preferences: " + std::string{st.message()}, rid);
        for (const auto& [type, _] : prefs.channels())
          if (!social::is_notification_type(type))
            return send_error(res, {422, "validation", 0}, "unknown notification type " + type,
                              rid);
        auto me =
            ask_reply<messages::Me>(api, users::user_kind, *by, messages::UserGetPrivate{}, rid);
        if (!me) return send_error(res, me.error(), rid);
        prefs.set_email(me->email());
        messages::NotifyPreferencesSet cmd;
        *cmd.mutable_preferences() = prefs;
        api.answer_from_entity<messages::NotifyPreferences>(
            envelope_for(social::notifications_kind, *by, cmd, rid), res, rid);
      });
}

}  // namespace chorus::edge
