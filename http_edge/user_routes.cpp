#include "http_edge/user_routes.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>
#include <variant>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "actors/users/users.hpp"
#include "common/clock.hpp"
#include "http_edge/json_body.hpp"
#include "messages/errors.hpp"
#include "messages/sessions.pb.h"
#include "messages/users.pb.h"
#include "persistence/blob_store.hpp"
#include "persistence/rate_limiter.hpp"
#include "persistence/sha256.hpp"

// The user domain's REST routes. Most handlers run on the edge's worker pool and talk to
// entities through the router (edge_api::ask_entity); password hashing runs here too, off the
// actor threads. Registration is a small saga over three entities: claim the username, claim the
// email address, create the account; a failure releases what was claimed.

namespace chorus::edge {

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using config_ptr = std::shared_ptr<const user_routes_config>;

// Login attempts: per client address, and per (account, address) pair. An attacker elsewhere
// cannot use up the second limit of the real user's address, so nobody is locked out.
const persistence::gcra_limit login_per_ip{30, std::chrono::minutes{1}, 30};
const persistence::gcra_limit login_per_account_ip{10, std::chrono::minutes{5}, 10};
// Registrations per client address.
const persistence::gcra_limit register_per_ip{10, std::chrono::hours{1}, 10};

// ---- names ----

bool valid_username(const std::string& s) {
  if (s.size() < 3 || s.size() > 32 || !std::isalnum(static_cast<unsigned char>(s[0])))
    return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '-';
  });
}

bool valid_email(const std::string& s) {
  auto at = s.find('@');
  if (s.size() > 254 || at == std::string::npos || at == 0 || at > 64 ||
      s.find('@', at + 1) != std::string::npos)
    return false;
  auto domain = s.substr(at + 1);
  auto dot = domain.find('.');
  if (dot == std::string::npos || dot == 0 || domain.back() == '.') return false;
  return std::none_of(s.begin(), s.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

std::string email_key(const std::string& email) {
  return persistence::sha256_hex(lower_ascii(email));
}

// ---- entities ----

bool is_admin(const user_routes_config& cfg, const std::string& username) {
  return cfg.admins.count(lower_ascii(username)) > 0;
}

template <class WithRoles>
void add_admin(const user_routes_config& cfg, WithRoles& x) {
  if (is_admin(cfg, x.username())) x.add_roles("admin");
}

/// The session behind `Authorization: Bearer <token>`.
caf::expected<messages::SessionInfo> authenticate(edge_api& api, const http_request& req,
                                                  const std::string& rid) {
  auto header = req.get_header_value("Authorization");
  constexpr std::string_view scheme = "Bearer ";
  if (header.empty())
    return make_error(domain_errc::unauthenticated, "sign in and send Authorization: Bearer");
  if (header.size() <= scheme.size() || lower_ascii(header.substr(0, scheme.size())) != "bearer " ||
      !users::well_formed_token(header.substr(scheme.size())))
    return make_error(domain_errc::unauthenticated, "the session token is malformed");
  return ask_reply<messages::SessionInfo>(api, users::session_kind,
                                          persistence::sha256_hex(header.substr(scheme.size())),
                                          messages::SessionCheck{}, rid);
}

/// Takes `key` of `kind` ("username"/"email") for `owner`. A claim left behind by a
/// registration that never made its account (a crash between the steps) is taken over.
caf::error claim(edge_api& api, const char* kind, const std::string& key, const std::string& owner,
                 const std::string& rid) {
  messages::ClaimTake take;
  take.set_owner(owner);
  auto taken = ask_reply<messages::ClaimState>(api, kind, key, take, rid);
  if (taken || !is(taken.error(), domain_errc::conflict))
    return taken ? caf::error{} : taken.error();
  auto holder = ask_reply<messages::ClaimState>(api, kind, key, messages::ClaimGet{}, rid);
  if (!holder) return holder.error();
  auto account = ask_reply<messages::UserProfile>(api, users::user_kind, holder->owner(),
                                                  messages::UserGet{}, rid);
  if (account || !is(account.error(), domain_errc::not_found)) return taken.error();
  take.set_replace(holder->owner());
  auto retaken = ask_reply<messages::ClaimState>(api, kind, key, take, rid);
  return retaken ? caf::error{} : retaken.error();
}

void release(edge_api& api, const char* kind, const std::string& key, const std::string& owner,
             const std::string& rid) {
  messages::ClaimRelease r;
  r.set_owner(owner);
  // Best effort: a claim left behind is taken over by the next registration of the name.
  (void)ask_reply<messages::ClaimState>(api, kind, key, r, rid);
}

// ---- answers ----

/// Counts a login or registration attempt; false (and a 429 sent) when over a limit.
bool admit(const user_routes_config& cfg, http_response& res, const std::string& rid,
           std::initializer_list<std::pair<std::string, const persistence::gcra_limit*>> keys) {
  for (const auto& [key, limit] : keys) {
    auto d = cfg.limiter->check(key, *limit);
    if (d.allowed) continue;
    auto secs = d.retry_after_seconds();
    send_error(res, {429, "too_many_attempts", static_cast<int>(secs)},
               "too many attempts; try again later", rid);
    return false;
  }
  return true;
}

void register_route(edge_api& api, const config_ptr& cfg) {
  api.route(http_method::post, "/v1/auth/register", "/v1/auth/register",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto body = json_object(req, {"username", "email", "password"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              const auto& o = std::get<Struct>(body);
              std::string fields[3];
              const char* names[3] = {"username", "email", "password"};
              for (int i = 0; i < 3; ++i) {
                auto f = string_field(o, names[i], 0, i == 2 ? 1024 : 254);
                if (auto* r = std::get_if<refusal>(&f)) return send_refusal(res, *r, rid);
                auto& v = std::get<std::optional<std::string>>(f);
                if (!v)
                  return send_error(res, {422, "validation", 0},
                                    std::string{names[i]} + " is required", rid);
                fields[i] = *v;
              }
              auto& [username, email, password] = fields;
              if (!valid_username(username))
                return send_error(res, {422, "validation", 0},
                                  "username must be 3..32 of A-Z a-z 0-9 _ . - starting with a "
                                  "letter or digit",
                                  rid);
              if (!valid_email(email))
                return send_error(res, {422, "validation", 0}, "email is not an address", rid);
              if (auto err = users::check_password(cfg->passwords, password, username))
                return send_error(res, err, rid);
              if (!admit(*cfg, res, rid, {{"register:ip:" + req.remote_addr, &register_per_ip}}))
                return;
              auto hash = users::hash_password(password);
              if (!hash) return send_error(res, hash.error(), rid);
              auto id = users::new_user_id();
              auto name_key = lower_ascii(username), mail_key = email_key(email);
              if (auto err = claim(api, users::username_kind, name_key, id, rid)) {
                if (is(err, domain_errc::conflict))
                  err = make_error(domain_errc::username_taken, "username is taken");
                return send_error(res, err, rid);
              }
              if (auto err = claim(api, users::email_kind, mail_key, id, rid)) {
                release(api, users::username_kind, name_key, id, rid);
                if (is(err, domain_errc::conflict))
                  err = make_error(domain_errc::email_taken,
                                   "an account with this email exists already");
                return send_error(res, err, rid);
              }
              messages::UserCreate create;
              create.set_username(username);
              create.set_email(email);
              create.set_password_hash(*hash);
              auto me = ask_reply<messages::Me>(api, users::user_kind, id, create, rid);
              if (!me) {
                release(api, users::email_kind, mail_key, id, rid);
                release(api, users::username_kind, name_key, id, rid);
                return send_error(res, me.error(), rid);
              }
              add_admin(*cfg, *me);
              res.status = 201;
              res.set_header("Location", "/v1/users/" + id);
              res.set_content(to_json(*me), json_type);
            });
}

void login_routes(edge_api& api, const config_ptr& cfg) {
  api.route(
      http_method::post, "/v1/auth/login", "/v1/auth/login",
      [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
        auto body = json_object(req, {"username", "email", "password"});
        if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
        const auto& o = std::get<Struct>(body);
        auto user_f = string_field(o, "username", 1, 254);
        auto email_f = string_field(o, "email", 1, 254);
        auto pass_f = string_field(o, "password", 1, 1024);
        for (auto* f : {&user_f, &email_f, &pass_f})
          if (auto* r = std::get_if<refusal>(f)) return send_refusal(res, *r, rid);
        auto username = std::get<std::optional<std::string>>(user_f);
        auto email = std::get<std::optional<std::string>>(email_f);
        auto password = std::get<std::optional<std::string>>(pass_f);
        if (!password || username.has_value() == email.has_value())
          return send_error(res, {422, "validation", 0},
                            "send password and one of username or email", rid);
        auto account = username ? "u:" + lower_ascii(*username) : "e:" + email_key(*email);
        if (!admit(*cfg, res, rid,
                   {{"login:ip:" + req.remote_addr, &login_per_ip},
                    {"login:acct:" + account + ":" + req.remote_addr, &login_per_account_ip}}))
          return;
        auto holder =
            username
                ? ask_reply<messages::ClaimState>(api, users::username_kind, lower_ascii(*username),
                                                  messages::ClaimGet{}, rid)
                : ask_reply<messages::ClaimState>(api, users::email_kind, email_key(*email),
                                                  messages::ClaimGet{}, rid);
        if (!holder) return send_error(res, holder.error(), rid);
        messages::UserCredentials creds;
        if (!holder->owner().empty()) {
          auto found = ask_reply<messages::UserCredentials>(api, users::user_kind, holder->owner(),
                                                            messages::UserGetCredentials{}, rid);
          if (found)
            creds = std::move(*found);
          else if (!is(found.error(), domain_errc::not_found))
            return send_error(res, found.error(), rid);
        }
        // Checked against a decoy hash when there is no account: same time, same answer.
        if (!users::verify_password(creds.password_hash(), *password))
          return send_error(
              res,
              make_error(domain_errc::invalid_credentials, "wrong username, email or password"),
              rid);
        // A login while signed in ends the old session: one token per login, never reused.
        if (auto old = authenticate(api, req, rid)) {
          auto header = req.get_header_value("Authorization");
          (void)ask_reply<messages::SessionInfo>(api, users::session_kind,
                                                 persistence::sha256_hex(header.substr(7)),
                                                 messages::SessionClose{}, rid);
        }
        auto token = users::new_session_token();
        messages::SessionOpen open;
        open.set_user_id(creds.id());
        open.set_username(creds.username());
        for (const auto& r : creds.roles()) open.add_roles(r);
        if (is_admin(*cfg, creds.username())) open.add_roles("admin");
        open.set_idle_ms(cfg->session_idle.count());
        open.set_max_ms(cfg->session_max.count());
        auto session = ask_reply<messages::SessionInfo>(api, users::session_kind,
                                                        persistence::sha256_hex(token), open, rid);
        if (!session) return send_error(res, session.error(), rid);
        auto me = ask_reply<messages::Me>(api, users::user_kind, creds.id(),
                                          messages::UserGetPrivate{}, rid);
        if (!me) return send_error(res, me.error(), rid);
        add_admin(*cfg, *me);
        messages::LoginResult out;
        out.set_token(token);
        out.set_expires_at(rfc3339(session->expires_at_ms()));
        *out.mutable_user() = std::move(*me);
        res.set_header("Cache-Control", "no-store");
        res.set_content(to_json(out), json_type);
      });
  api.route(http_method::post, "/v1/auth/logout", "/v1/auth/logout",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              auto header = req.get_header_value("Authorization");
              auto closed = ask_reply<messages::SessionInfo>(
                  api, users::session_kind, persistence::sha256_hex(header.substr(7)),
                  messages::SessionClose{}, rid);
              if (!closed) return send_auth_error(res, closed.error(), rid);
              res.status = 204;
            });
}

/// Runs `cmd` on the signed-in user's entity and answers Me.
void answer_me(edge_api& api, const user_routes_config& cfg, const http_request& req,
               http_response& res, const std::string& rid, const google::protobuf::Message& cmd) {
  auto who = signed_in(api, req, res, rid);
  if (!who) return send_auth_error(res, who.error(), rid);
  auto me = ask_reply<messages::Me>(api, users::user_kind, who->user_id(), cmd, rid);
  if (!me) return send_error(res, me.error(), rid);
  add_admin(cfg, *me);
  res.set_content(to_json(*me), json_type);
}

void me_routes(edge_api& api, const config_ptr& cfg) {
  auto on_me = [&api, cfg](const http_request& req, http_response& res, const std::string& rid,
                           const google::protobuf::Message& cmd) {
    answer_me(api, *cfg, req, res, rid, cmd);
  };
  api.route(http_method::get, "/v1/me", "/v1/me",
            [on_me](const http_request& req, http_response& res, const std::string& rid) {
              on_me(req, res, rid, messages::UserGetPrivate{});
            });
  api.route(http_method::patch, "/v1/me", "/v1/me",
            [on_me, &api](const http_request& req, http_response& res, const std::string& rid) {
              // Authentication first: an anonymous caller learns nothing about the body rules.
              // (Not counted against the account's limit here: on_me does that.)
              if (auto who = authenticate(api, req, rid); !who)
                return send_auth_error(res, who.error(), rid);
              auto body = json_object(req, {"display_name", "bio"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              const auto& o = std::get<Struct>(body);
              auto name = string_field(o, "display_name", 0, 64);
              auto bio = string_field(o, "bio", 0, 1000);
              for (auto* f : {&name, &bio})
                if (auto* r = std::get_if<refusal>(f)) return send_refusal(res, *r, rid);
              messages::UserUpdateProfile cmd;
              if (auto& v = std::get<std::optional<std::string>>(name)) cmd.set_display_name(*v);
              if (auto& v = std::get<std::optional<std::string>>(bio)) cmd.set_bio(*v);
              if (!cmd.has_display_name() && !cmd.has_bio())
                return send_error(res, {422, "validation", 0}, "send display_name and/or bio", rid);
              on_me(req, res, rid, cmd);
            });
  api.route(http_method::post, "/v1/me/artist", "/v1/me/artist",
            [on_me, cfg](const http_request& req, http_response& res, const std::string& rid) {
              messages::UserBecomeArtist cmd;
              cmd.set_approval_required(cfg->artist_approval);
              on_me(req, res, rid, cmd);
            });
  api.route(http_method::post, R"(/v1/admin/users/([^/]+)/artist)", "/v1/admin/users/{id}/artist",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              // Checked against cluster.conf now, not the roles the session got at login.
              if (!is_admin(*cfg, who->username()))
                return send_error(res, make_error(domain_errc::forbidden, "admins only"), rid);
              auto id = req.matches[1].str();
              if (!valid_entity_id(id))
                return send_error(res, make_error(domain_errc::not_found, "no such user"), rid);
              auto me = ask_reply<messages::Me>(api, users::user_kind, id,
                                                messages::UserApproveArtist{}, rid);
              if (!me) return send_error(res, me.error(), rid);
              add_admin(*cfg, *me);
              res.set_content(to_json(*me), json_type);
            });
}

void profile_routes(edge_api& api, const config_ptr& cfg) {
  // The hot read: answered from the event loop, no thread waits for the entity.
  api.route_async(
      http_method::get, R"(/v1/users/([^/]+))", "/v1/users/{id}",
      [&api, cfg](const http_request& req, http_response& res, const std::string& rid,
                  finish_fn done) {
        auto id = req.matches[1].str();
        if (!valid_entity_id(id)) {
          send_error(res, make_error(domain_errc::not_found, "no such user"), rid);
          return done();
        }
        api.ask_entity_async(
            envelope_for(users::user_kind, id, messages::UserGet{}, rid),
            [&res, cfg, rid, done](caf::expected<std::string> bytes) {
              messages::UserProfile profile;
              if (!bytes)
                send_error(res, bytes.error(), rid);
              else if (!profile.ParseFromString(*bytes))
                send_error(res, make_error(runtime_errc::bad_payload, "unreadable UserProfile"),
                           rid);
              else {
                add_admin(*cfg, profile);
                res.set_content(to_json(profile), json_type);
              }
              done();
            });
      });
  auto follow = [&api](bool on) {
    return [&api, on](const http_request& req, http_response& res, const std::string& rid) {
      auto who = signed_in(api, req, res, rid);
      if (!who) return send_auth_error(res, who.error(), rid);
      auto target = req.matches[1].str();
      if (!valid_entity_id(target))
        return send_error(res, make_error(domain_errc::not_found, "no such user"), rid);
      if (target == who->user_id())
        return send_error(res, make_error(domain_errc::validation, "you cannot follow yourself"),
                          rid);
      if (on) {
        auto exists = ask_reply<messages::UserProfile>(api, users::user_kind, target,
                                                       messages::UserGet{}, rid);
        if (!exists) return send_error(res, exists.error(), rid);
      }
      messages::UserSetFollow cmd;
      cmd.set_target(target);
      cmd.set_follow(on);
      auto me = ask_reply<messages::Me>(api, users::user_kind, who->user_id(), cmd, rid);
      if (!me) return send_error(res, me.error(), rid);
      res.status = 204;
    };
  };
  api.route(http_method::post, R"(/v1/users/([^/]+)/follow)", "/v1/users/{id}/follow",
            follow(true));
  api.route(http_method::del, R"(/v1/users/([^/]+)/follow)", "/v1/users/{id}/follow",
            follow(false));
  auto list = [&api, cfg](bool followers) {
    return [&api, cfg, followers](const http_request& req, http_response& res,
                                  const std::string& rid) {
      auto id = req.matches[1].str();
      if (!valid_entity_id(id))
        return send_error(res, make_error(domain_errc::not_found, "no such user"), rid);
      auto page = page_params(req);
      if (auto* r = std::get_if<refusal>(&page)) return send_refusal(res, *r, rid);
      auto [limit, cursor] = std::get<page_request>(page);
      auto exists =
          ask_reply<messages::UserProfile>(api, users::user_kind, id, messages::UserGet{}, rid);
      if (!exists) return send_error(res, exists.error(), rid);
      messages::FollowListQuery q;
      q.set_user_id(id);
      q.set_followers(followers);
      q.set_cursor(cursor);
      q.set_limit(limit);
      auto bytes = api.ask_service(cfg->follows, envelope_for("follows", id, q, rid));
      if (!bytes) return send_error(res, bytes.error(), rid);
      messages::FollowPage out;
      out.ParseFromString(*bytes);
      res.set_content(to_json(out), json_type);
    };
  };
  api.route(http_method::get, R"(/v1/users/([^/]+)/followers)", "/v1/users/{id}/followers",
            list(true));
  api.route(http_method::get, R"(/v1/users/([^/]+)/following)", "/v1/users/{id}/following",
            list(false));
}

// ---- avatars ----

/// The image type an avatar's Content-Type names ("png", "jpeg", "webp", "gif"), or "".
std::string avatar_kind(const std::string& content_type) {
  auto t = lower_ascii(content_type.substr(0, content_type.find(';')));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  if (t == "image/png") return "png";
  if (t == "image/jpeg") return "jpeg";
  if (t == "image/webp") return "webp";
  if (t == "image/gif") return "gif";
  return {};
}

/// Whether `body` starts like an image of `kind` (its magic bytes): a file of another type sent
/// under an image's name is refused rather than served back with that name.
bool looks_like(const std::string& kind, const std::string& body) {
  auto starts = [&body](std::string_view magic, size_t at = 0) {
    return body.size() >= at + magic.size() && body.compare(at, magic.size(), magic) == 0;
  };
  if (kind == "png") return starts("\x89PNG\r\n\x1a\n");
  if (kind == "jpeg") return starts("\xff\xd8\xff");
  if (kind == "gif") return starts("GIF87a") || starts("GIF89a");
  if (kind == "webp") return starts("RIFF") && starts("WEBP", 8);
  return false;
}

void avatar_routes(edge_api& api, const config_ptr& cfg) {
  auto set_avatar = [&api, cfg](const http_request& req, http_response& res, const std::string& rid,
                                const std::string& avatar) {
    messages::UserUpdateProfile cmd;
    cmd.set_avatar(avatar);
    answer_me(api, *cfg, req, res, rid, cmd);
  };
  // The body is the image itself (at most the edge's 1 MiB body limit).
  api.route(
      http_method::put, "/v1/me/avatar", "/v1/me/avatar",
      [&api, cfg, set_avatar](const http_request& req, http_response& res, const std::string& rid) {
        if (auto who = authenticate(api, req, rid); !who)
          return send_auth_error(res, who.error(), rid);
        auto kind = avatar_kind(req.get_header_value("Content-Type"));
        if (kind.empty())
          return send_error(res, {415, "unsupported_media_type", 0},
                            "send the image as image/png, image/jpeg, image/webp or "
                            "image/gif",
                            rid);
        if (req.body.empty())
          return send_error(res, {422, "validation", 0}, "the body is empty", rid);
        if (!looks_like(kind, req.body))
          return send_error(res, {422, "validation", 0}, "the body is not a " + kind + " image",
                            rid);
        if (!cfg->blobs)
          return send_error(res, make_error(runtime_errc::no_owner, "no blob store"), rid);
        size_t offset = 0;
        auto ref = cfg->blobs->put([&req, &offset](char* buf, size_t cap) {
          auto n = std::min(cap, req.body.size() - offset);
          std::memcpy(buf, req.body.data() + offset, n);
          offset += n;
          return caf::expected<size_t>{n};
        });
        if (!ref) return send_error(res, ref.error(), rid);
        set_avatar(req, res, rid, kind + "/" + ref->id.hex());
      });
  api.route(http_method::del, "/v1/me/avatar", "/v1/me/avatar",
            [set_avatar](const http_request& req, http_response& res, const std::string& rid) {
              set_avatar(req, res, rid, "");
            });
  // Public, like the profile. The URL in a profile carries the version (?v=), so the image may
  // be cached for long; the ETag is the blob's SHA-256.
  api.route(http_method::get, R"(/v1/users/([^/]+)/avatar)", "/v1/users/{id}/avatar",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto id = req.matches[1].str();
              if (!valid_entity_id(id))
                return send_error(res, make_error(domain_errc::not_found, "no such user"), rid);
              auto avatar = ask_reply<messages::UserAvatar>(api, users::user_kind, id,
                                                            messages::UserGetAvatar{}, rid);
              if (!avatar) return send_error(res, avatar.error(), rid);
              auto slash = avatar->avatar().find('/');
              auto blob = slash == std::string::npos
                              ? std::nullopt
                              : persistence::blob_id::parse(avatar->avatar().substr(slash + 1));
              if (!blob || !cfg->blobs)
                return send_error(res, make_error(domain_errc::not_found, "no avatar"), rid);
              auto kind = avatar->avatar().substr(0, slash);
              auto etag = "\"" + blob->hex() + "\"";
              res.set_header("ETag", etag);
              res.set_header("Cache-Control", "public, max-age=86400");
              if (req.get_header_value("If-None-Match") == etag) {
                res.status = 304;
                return;
              }
              std::string bytes;
              auto read = cfg->blobs->read(*blob, 0, persistence::blob_to_end,
                                           [&bytes](std::string_view chunk) {
                                             bytes.append(chunk);
                                             return bytes.size() <= (size_t{2} << 20);
                                           });
              if (!read) return send_error(res, read.error(), rid);
              static const std::map<std::string, const char*> types{{"png", "image/png"},
                                                                    {"jpeg", "image/jpeg"},
                                                                    {"webp", "image/webp"},
                                                                    {"gif", "image/gif"}};
              auto t = types.find(kind);
              res.set_header("X-Content-Type-Options", "nosniff");
              res.set_content(std::move(bytes),
                              t == types.end() ? "application/octet-stream" : t->second);
            });
}

}  // namespace

void send_auth_error(http_response& res, const caf::error& err, const std::string& rid) {
  if (res.status == 429) return;  // over the account's rate limit: answered by admit_user
  if (is(err, domain_errc::unauthenticated)) res.set_header("WWW-Authenticate", "Bearer");
  send_error(res, err, rid);
}

/// authenticate, then the account's rate limit (a 429 in `res` when over it).
caf::expected<messages::SessionInfo> signed_in(edge_api& api, const http_request& req,
                                               http_response& res, const std::string& rid) {
  auto who = authenticate(api, req, rid);
  if (who && !api.admit_user(who->user_id(), req, res, rid))
    return make_error(domain_errc::too_many_attempts, "over the account's rate limit");
  return who;
}

std::string signed_in_if_sent(edge_api& api, const http_request& req, http_response& res,
                              const std::string& rid) {
  if (!req.has_header("Authorization")) return {};
  auto who = signed_in(api, req, res, rid);
  return who ? who->user_id() : std::string{};
}

void add_user_routes(edge_api& api, user_routes_config cfg) {
  auto shared = std::make_shared<const user_routes_config>(std::move(cfg));
  register_route(api, shared);
  login_routes(api, shared);
  me_routes(api, shared);
  profile_routes(api, shared);
  avatar_routes(api, shared);
  // /v1/ws: the same bearer token as the REST routes, in the Authorization header or, for
  // browsers (which cannot set headers on a WebSocket), as ?access_token= (RFC 6750 §2.3).
  api.set_websocket_authenticator([&api](const http_request& req,
                                         const std::string& rid) -> caf::expected<std::string> {
    auto who = authenticate(api, req, rid);
    if (!who && !req.has_header("Authorization") && req.has_param("access_token")) {
      http_request with_header;
      with_header.headers.emplace("Authorization", "Bearer " + req.get_param_value("access_token"));
      who = authenticate(api, with_header, rid);
    }
    if (!who) return who.error();
    return who->user_id();
  });
}

}  // namespace chorus::edge
