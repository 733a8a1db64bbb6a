#include <variant>

#include "actors/audio/audio.hpp"
#include "actors/users/passwords.hpp"
#include "actors/users/users.hpp"
#include "http_edge/json_body.hpp"
#include "http_edge/track_routes.hpp"
#include "http_edge/user_routes.hpp"
#include "messages/audio.pb.h"
#include "messages/users.pb.h"

// The audio domain's library routes: lists read from the `audio_library` read model (an
// artist's tracks, likes, reposts, playlists, comments, the feed) through the node's library
// query service, and playlists, which are entities. Lists trail the commands by the outbox
// relay's and projector's delay (well under a second on a healthy cluster).

namespace chorus::edge {

namespace {

using google::protobuf::Struct;
using config_ptr = std::shared_ptr<const track_routes_config>;

caf::error no_playlist() {
  return make_error(domain_errc::not_found, "no such playlist");
}

/// Runs `q` (with the page of `req`) against the library query service and answers `Page`.
template <class Page>
void answer_query(edge_api& api, const track_routes_config& cfg, const http_request& req,
                  http_response& res, const std::string& rid, messages::LibraryQuery q) {
  auto page = page_params(req);
  if (auto* r = std::get_if<refusal>(&page)) return send_refusal(res, *r, rid);
  q.set_limit(std::get<page_request>(page).limit);
  q.set_cursor(std::get<page_request>(page).cursor);
  if (!cfg.library)
    return send_error(res, make_error(runtime_errc::no_owner, "no library service"), rid);
  auto bytes = api.ask_service(cfg.library, envelope_for("library", q.subject(), q, rid));
  if (!bytes) return send_error(res, bytes.error(), rid);
  Page out;
  if (!out.ParseFromString(*bytes))
    return send_error(res, make_error(runtime_errc::bad_payload, "unreadable page"), rid);
  res.set_header("Cache-Control", "no-cache");
  res.set_content(to_json(out), json_type);
}

/// Whether user `id` exists (otherwise the 404 or error is in `res`).
bool user_exists(edge_api& api, http_response& res, const std::string& rid, const std::string& id) {
  if (!valid_entity_id(id)) {
    send_error(res, make_error(domain_errc::not_found, "no such user"), rid);
    return false;
  }
  auto user = ask_reply<messages::UserProfile>(api, users::user_kind, id, messages::UserGet{}, rid);
  if (!user) send_error(res, user.error(), rid);
  return static_cast<bool>(user);
}

/// The playlist `id` if the caller may see it (public ones anyone, private ones their owner).
std::optional<messages::PlaylistInfo> visible_playlist(edge_api& api, const http_request& req,
                                                       http_response& res, const std::string& rid,
                                                       const std::string& id) {
  if (!valid_entity_id(id)) {
    send_error(res, no_playlist(), rid);
    return std::nullopt;
  }
  auto p = ask_reply<messages::PlaylistInfo>(api, audio::playlist_kind, id, messages::PlaylistGet{},
                                             rid);
  if (!p) {
    send_error(res, p.error(), rid);
    return std::nullopt;
  }
  if (p->visibility() == "public") return std::move(*p);
  auto caller = signed_in_if_sent(api, req, res, rid);
  if (res.status == 429) return std::nullopt;
  if (caller == p->owner()) return std::move(*p);
  send_error(res, no_playlist(), rid);
  return std::nullopt;
}

/// Sends `cmd` to playlist `id` and answers the playlist (or the error).
void change_playlist(edge_api& api, http_response& res, const std::string& rid,
                     const std::string& id, const google::protobuf::Message& cmd) {
  if (!valid_entity_id(id)) return send_error(res, no_playlist(), rid);
  api.answer_from_entity<messages::PlaylistInfo>(envelope_for(audio::playlist_kind, id, cmd, rid),
                                                 res, rid);
}

/// A whole number from a path segment ("" or garbage: -1).
int64_t item_id_of(const std::string& s) {
  if (s.empty() || s.size() > 18) return -1;
  for (char c : s)
    if (c < '0' || c > '9') return -1;
  return std::stoll(s);
}

/// GET /v1/users/{id}/<list>: the query `what` about user {id}, answered as `Page`; with
/// `owner_sees_private` the user itself also sees its private entries.
template <class Page>
void user_list(edge_api& api, const config_ptr& cfg, const char* list, const char* what,
               bool owner_sees_private) {
  api.route(http_method::get, std::string{R"(/v1/users/([^/]+)/)"} + list,
            std::string{"/v1/users/{id}/"} + list,
            [&api, cfg, what, owner_sees_private](const http_request& req, http_response& res,
                                                  const std::string& rid) {
              auto id = req.matches[1].str();
              if (!user_exists(api, res, rid, id)) return;
              messages::LibraryQuery q;
              q.set_what(what);
              q.set_subject(id);
              if (owner_sees_private) {
                auto caller = signed_in_if_sent(api, req, res, rid);
                if (res.status == 429) return;
                q.set_include_private(caller == id);
              }
              answer_query<Page>(api, *cfg, req, res, rid, q);
            });
}

}  // namespace

void add_library_routes(edge_api& api, config_ptr cfg) {
  // ---- lists ----
  // GET /v1/users/{id}/tracks (the artist's public ready tracks; all of them for the artist),
  // /likes and /reposts (what the user liked or reposted, latest first) and /playlists (public
  // ones; all of them for their owner).
  user_list<messages::TrackPage>(api, cfg, "tracks", "artist_tracks", true);
  user_list<messages::TrackPage>(api, cfg, "likes", "likes", false);
  user_list<messages::TrackPage>(api, cfg, "reposts", "reposts", false);
  user_list<messages::PlaylistPage>(api, cfg, "playlists", "playlists", true);
  // GET /v1/me/feed: new public tracks of the artists the caller follows, newest first.
  api.route(http_method::get, "/v1/me/feed", "/v1/me/feed",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              messages::LibraryQuery q;
              q.set_what("feed");
              q.set_subject(who->user_id());
              answer_query<messages::TrackPage>(api, *cfg, req, res, rid, q);
            });
  // GET /v1/tracks/{id}/comments: oldest first, ?cursor= the last id seen.
  api.route(http_method::get, R"(/v1/tracks/([^/]+)/comments)", "/v1/tracks/{id}/comments",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto id = req.matches[1].str();
              if (!visible_track(api, req, res, rid, id)) return;
              messages::LibraryQuery q;
              q.set_what("comments");
              q.set_subject(id);
              answer_query<messages::CommentPage>(api, *cfg, req, res, rid, q);
            });

  // ---- playlists ----
  // POST /v1/playlists {"title", "description"?, "visibility"?: public|private}: 201.
  api.route(http_method::post, "/v1/playlists", "/v1/playlists",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              auto body = json_object(req, {"title", "description", "visibility"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              const auto& o = std::get<Struct>(body);
              auto title = string_field(o, "title", 1, 200);
              auto description = string_field(o, "description", 0, 2000);
              auto visibility = string_field(o, "visibility", 1, 16);
              if (auto* r = first_refusal(title, description, visibility))
                return send_refusal(res, *r, rid);
              if (!value_of(title))
                return send_error(res, {422, "validation", 0}, "title is required", rid);
              auto vis = value_of(visibility).value_or("public");
              if (vis != "public" && vis != "private")
                return send_error(res, {422, "validation", 0},
                                  "visibility must be public or private", rid);
              messages::PlaylistCreate cmd;
              cmd.set_owner(who->user_id());
              cmd.set_title(*value_of(title));
              cmd.set_description(value_of(description).value_or(""));
              cmd.set_visibility(vis);
              auto id = users::new_user_id();
              auto env = envelope_for(audio::playlist_kind, id, cmd, rid);
              env.redeliverable = true;  // a redelivered create is recognised
              auto bytes = api.ask_entity(std::move(env));
              if (!bytes) return send_error(res, bytes.error(), rid);
              messages::PlaylistInfo p;
              p.ParseFromString(*bytes);
              res.status = 201;
              res.set_header("Location", "/v1/playlists/" + id);
              res.set_content(to_json(p), json_type);
            });
  api.route(http_method::get, R"(/v1/playlists/([^/]+))", "/v1/playlists/{id}",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto p = visible_playlist(api, req, res, rid, req.matches[1].str());
              if (!p) return;
              res.set_header("Cache-Control", "no-cache");
              res.set_content(to_json(*p), json_type);
            });
  api.route(http_method::patch, R"(/v1/playlists/([^/]+))", "/v1/playlists/{id}",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              auto body = json_object(req, {"title", "description", "visibility"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              const auto& o = std::get<Struct>(body);
              auto title = string_field(o, "title", 1, 200);
              auto description = string_field(o, "description", 0, 2000);
              auto visibility = string_field(o, "visibility", 1, 16);
              if (auto* r = first_refusal(title, description, visibility))
                return send_refusal(res, *r, rid);
              if (auto& v = value_of(visibility); v && *v != "public" && *v != "private")
                return send_error(res, {422, "validation", 0},
                                  "visibility must be public or private", rid);
              if (o.fields().empty())
                return send_error(res, {422, "validation", 0}, "send a field to change", rid);
              messages::PlaylistEdit cmd;
              cmd.set_by(who->user_id());
              if (auto& v = value_of(title)) cmd.set_title(*v);
              if (auto& v = value_of(description)) cmd.set_description(*v);
              if (auto& v = value_of(visibility)) cmd.set_visibility(*v);
              change_playlist(api, res, rid, req.matches[1].str(), cmd);
            });
  api.route(http_method::del, R"(/v1/playlists/([^/]+))", "/v1/playlists/{id}",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              messages::PlaylistDelete cmd;
              cmd.set_by(who->user_id());
              change_playlist(api, res, rid, req.matches[1].str(), cmd);
              if (res.ok_so_far()) {
                res.status = 204;
                res.body.clear();
                res.headers.erase("Content-Type");
              }
            });
  // POST /v1/playlists/{id}/items {"track", "position"?}: adds a track the owner may see.
  api.route(http_method::post, R"(/v1/playlists/([^/]+)/items)", "/v1/playlists/{id}/items",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              auto body = json_object(req, {"track", "position"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              const auto& o = std::get<Struct>(body);
              auto track = string_field(o, "track", 1, 128);
              auto position = int_field(o, "position", 0, audio::max_playlist_items);
              if (auto* r = first_refusal(track, position)) return send_refusal(res, *r, rid);
              if (!value_of(track))
                return send_error(res, {422, "validation", 0}, "track is required", rid);
              if (!visible_track(api, req, res, rid, *value_of(track))) return;
              messages::PlaylistAddItem cmd;
              cmd.set_by(who->user_id());
              cmd.set_track(*value_of(track));
              cmd.set_position(static_cast<int32_t>(value_of(position).value_or(-1)));
              change_playlist(api, res, rid, req.matches[1].str(), cmd);
              if (res.ok_so_far()) res.status = 201;
            });
  api.route(http_method::del, R"(/v1/playlists/([^/]+)/items/([^/]+))",
            "/v1/playlists/{id}/items/{item}",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              auto item = item_id_of(req.matches[2].str());
              if (item < 0)
                return send_error(res, make_error(domain_errc::not_found, "no such item"), rid);
              messages::PlaylistRemoveItem cmd;
              cmd.set_by(who->user_id());
              cmd.set_item_id(item);
              change_playlist(api, res, rid, req.matches[1].str(), cmd);
            });
  // PATCH /v1/playlists/{id}/items/{item} {"position"}: moves an item (reorder).
  api.route(http_method::patch, R"(/v1/playlists/([^/]+)/items/([^/]+))",
            "/v1/playlists/{id}/items/{item}",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              auto body = json_object(req, {"position"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              auto position =
                  int_field(std::get<Struct>(body), "position", 0, audio::max_playlist_items);
              if (auto* r = first_refusal(position)) return send_refusal(res, *r, rid);
              if (!value_of(position))
                return send_error(res, {422, "validation", 0}, "position is required", rid);
              auto item = item_id_of(req.matches[2].str());
              if (item < 0)
                return send_error(res, make_error(domain_errc::not_found, "no such item"), rid);
              messages::PlaylistMoveItem cmd;
              cmd.set_by(who->user_id());
              cmd.set_item_id(item);
              cmd.set_position(static_cast<int32_t>(*value_of(position)));
              change_playlist(api, res, rid, req.matches[1].str(), cmd);
            });
}

}  // namespace chorus::edge
