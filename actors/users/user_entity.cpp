#include <chrono>
#include <ctime>
#include <set>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/entity_messages.hpp"
#include "actors/users/users.hpp"
#include "common/clock.hpp"
#include "messages/users.pb.h"

namespace chorus::users {

namespace {

// A user follows at most this many others (the set lives in the entity's state).
constexpr size_t max_following = 5000;

struct user_model {
  std::string username;  ///< "" until registered
  std::string email;
  std::string password_hash;
  int64_t created_at_ms = 0;
  std::string display_name;
  std::string bio;
  std::string avatar;
  std::string artist_status = "none";
  std::set<std::string> following;

  [[nodiscard]] bool exists() const { return !username.empty(); }

  void reset() { *this = user_model{}; }

  bool restore(const std::string& type, const std::string& payload) {
    messages::UserSnapshot s;
    if (!parse_as(type, payload, s)) return false;
    username = s.username();
    email = s.email();
    password_hash = s.password_hash();
    created_at_ms = s.created_at_ms();
    display_name = s.display_name();
    bio = s.bio();
    avatar = s.avatar();
    artist_status = s.artist_status().empty() ? "none" : s.artist_status();
    following = {s.following().begin(), s.following().end()};
    return true;
  }

  bool apply(const std::string& type, const std::string& payload) {
    if (messages::UserRegistered ev; parse_as(type, payload, ev)) {
      username = ev.username();
      email = ev.email();
      password_hash = ev.password_hash();
      created_at_ms = ev.at_ms();
      return true;
    }
    if (messages::UserProfileChanged ev; parse_as(type, payload, ev)) {
      if (ev.has_display_name()) display_name = ev.display_name();
      if (ev.has_bio()) bio = ev.bio();
      if (ev.has_avatar()) avatar = ev.avatar();
      return true;
    }
    if (messages::UserArtistRequested ev; parse_as(type, payload, ev)) {
      artist_status = "pending";
      return true;
    }
    if (messages::UserArtistGranted ev; parse_as(type, payload, ev)) {
      artist_status = "approved";
      return true;
    }
    if (messages::UserFollowed ev; parse_as(type, payload, ev)) {
      following.insert(ev.target());
      return true;
    }
    if (messages::UserUnfollowed ev; parse_as(type, payload, ev)) {
      following.erase(ev.target());
      return true;
    }
    return false;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const {
    messages::UserSnapshot s;
    s.set_username(username);
    s.set_email(email);
    s.set_password_hash(password_hash);
    s.set_created_at_ms(created_at_ms);
    s.set_display_name(display_name);
    s.set_bio(bio);
    s.set_avatar(avatar);
    s.set_artist_status(artist_status);
    for (const auto& f : following) s.add_following(f);
    return {type_of<messages::UserSnapshot>(), s.SerializeAsString()};
  }

  [[nodiscard]] std::vector<std::string> roles() const {
    std::vector<std::string> out{"listener"};
    if (artist_status == "approved") out.emplace_back("artist");
    return out;
  }
};

struct user_state {
  entity_base base;
  user_model model;
  static inline const char* name = "chorus.users.user";
};

using user_self = envelope_handler::stateful_pointer<user_state>;

// The avatar's URL names its version, so a cache may keep it as long as it likes.
std::string avatar_url(const std::string& id, const user_model& m) {
  if (m.avatar.empty()) return {};
  auto slash = m.avatar.find('/');
  auto hex = slash == std::string::npos ? m.avatar : m.avatar.substr(slash + 1);
  return "/v1/users/" + id + "/avatar?v=" + hex.substr(0, 16);
}

caf::error no_account(const std::string& id) {
  return make_error(domain_errc::not_found, "no user " + id);
}

envelope_handler::behavior_type user(user_self self, std::string id, entity_context ctx) {
  self->state.base = entity_base{user_kind, id, ctx, user_domain};
  auto me_of = [self](const user_model& m) -> caf::expected<std::string> {
    if (!m.exists()) return no_account(self->state.base.id);
    messages::Me out;
    out.set_id(self->state.base.id);
    out.set_username(m.username);
    out.set_email(m.email);
    for (const auto& r : m.roles()) out.add_roles(r);
    out.set_display_name(m.display_name);
    out.set_bio(m.bio);
    out.set_avatar_url(avatar_url(self->state.base.id, m));
    out.set_created_at(rfc3339(m.created_at_ms));
    out.set_artist_status(m.artist_status);
    out.set_following_count(static_cast<int32_t>(m.following.size()));
    return out.SerializeAsString();
  };
  auto profile_of = [self](const user_model& m) -> caf::expected<std::string> {
    if (!m.exists()) return no_account(self->state.base.id);
    messages::UserProfile out;
    out.set_id(self->state.base.id);
    out.set_username(m.username);
    out.set_display_name(m.display_name);
    out.set_bio(m.bio);
    out.set_avatar_url(avatar_url(self->state.base.id, m));
    for (const auto& r : m.roles()) out.add_roles(r);
    out.set_created_at(rfc3339(m.created_at_ms));
    out.set_following_count(static_cast<int32_t>(m.following.size()));
    return out.SerializeAsString();
  };
  auto credentials_of = [self](const user_model& m) -> caf::expected<std::string> {
    if (!m.exists()) return no_account(self->state.base.id);
    messages::UserCredentials out;
    out.set_id(self->state.base.id);
    out.set_username(m.username);
    out.set_password_hash(m.password_hash);
    for (const auto& r : m.roles()) out.add_roles(r);
    return out.SerializeAsString();
  };
  return {guarded(self, [=](entity_envelope& env) -> caf::result<std::string> {
    auto& st = self->state;
    if (!st.base.journal) return no_journal(st.base);
    auto run = [self](auto decide, auto reply) { return run_command(self, decide, reply); };
    auto read = [](user_model&) { return no_events(); };
    // Every change below needs an account.
    auto existing = [self](auto decide) {
      return [self, decide](user_model& m) -> caf::expected<std::vector<new_event>> {
        if (!m.exists()) return no_account(self->state.base.id);
        return decide(m);
      };
    };
    if (messages::UserCreate cmd; parse_as(env, cmd)) {
      if (cmd.username().empty() || cmd.email().empty() || cmd.password_hash().empty())
        return make_error(domain_errc::validation, "UserCreate needs username, email, hash");
      return run(
          [cmd](user_model& m) -> caf::expected<std::vector<new_event>> {
            if (m.exists()) {
              if (m.username == cmd.username()) return no_events();  // a retried creation
              return make_error(domain_errc::conflict, "the account exists already");
            }
            messages::UserRegistered ev;
            ev.set_username(cmd.username());
            ev.set_email(cmd.email());
            ev.set_password_hash(cmd.password_hash());
            ev.set_at_ms(unix_ms_now());
            return std::vector<new_event>{event_of(ev)};
          },
          me_of);
    }
    if (messages::UserGet cmd; parse_as(env, cmd)) return run(read, profile_of);
    if (messages::UserGetPrivate cmd; parse_as(env, cmd)) return run(read, me_of);
    if (messages::UserGetCredentials cmd; parse_as(env, cmd)) return run(read, credentials_of);
    if (messages::UserGetAvatar cmd; parse_as(env, cmd))
      return run(read, [self](const user_model& m) -> caf::expected<std::string> {
        if (!m.exists()) return no_account(self->state.base.id);
        messages::UserAvatar out;
        out.set_avatar(m.avatar);
        return out.SerializeAsString();
      });
    if (messages::UserUpdateProfile cmd; parse_as(env, cmd)) {
      if (cmd.display_name().size() > 256 || cmd.bio().size() > 4000 || cmd.avatar().size() > 128)
        return make_error(domain_errc::validation, "profile field too long");
      return run(existing([cmd](user_model& m) -> caf::expected<std::vector<new_event>> {
                   messages::UserProfileChanged ev;
                   if (cmd.has_display_name() && cmd.display_name() != m.display_name)
                     ev.set_display_name(cmd.display_name());
                   if (cmd.has_bio() && cmd.bio() != m.bio) ev.set_bio(cmd.bio());
                   if (cmd.has_avatar() && cmd.avatar() != m.avatar) ev.set_avatar(cmd.avatar());
                   if (!ev.has_display_name() && !ev.has_bio() && !ev.has_avatar())
                     return no_events();
                   return std::vector<new_event>{event_of(ev)};
                 }),
                 me_of);
    }
    if (messages::UserBecomeArtist cmd; parse_as(env, cmd)) {
      return run(existing([cmd](user_model& m) -> caf::expected<std::vector<new_event>> {
                   if (m.artist_status == "approved") return no_events();
                   if (cmd.approval_required()) {
                     if (m.artist_status == "pending") return no_events();
                     return std::vector<new_event>{event_of(messages::UserArtistRequested{})};
                   }
                   return std::vector<new_event>{event_of(messages::UserArtistGranted{})};
                 }),
                 me_of);
    }
    if (messages::UserApproveArtist cmd; parse_as(env, cmd)) {
      return run(existing([](user_model& m) -> caf::expected<std::vector<new_event>> {
                   if (m.artist_status == "approved") return no_events();
                   return std::vector<new_event>{event_of(messages::UserArtistGranted{})};
                 }),
                 me_of);
    }
    if (messages::UserSetFollow cmd; parse_as(env, cmd)) {
      if (cmd.target().empty() || cmd.target() == st.base.id)
        return make_error(domain_errc::validation, "a user cannot follow itself");
      // The followed user hears of a new follower live (a repeated follow changes nothing and
      // says nothing). Ids are hex and usernames [A-Za-z0-9_.-]: nothing to escape.
      auto fresh = std::make_shared<bool>(false);
      auto reply = [self, cmd, fresh, me_of](const user_model& m) {
        if (*fresh && self->state.base.live) {
          auto json = R"({"type":"followed","by":")" + self->state.base.id + R"(","username":")" +
                      m.username + R"(","at":")" + rfc3339(unix_ms_now()) + "\"}";
          self->send(self->state.base.live,
                     live_event{notifications_topic(cmd.target()), std::move(json)});
        }
        return me_of(m);
      };
      return run(existing([cmd, fresh](user_model& m) -> caf::expected<std::vector<new_event>> {
                   *fresh = false;
                   bool now_following = m.following.count(cmd.target()) > 0;
                   if (cmd.follow() == now_following) return no_events();
                   if (!cmd.follow()) {
                     messages::UserUnfollowed ev;
                     ev.set_target(cmd.target());
                     return std::vector<new_event>{event_of(ev)};
                   }
                   if (m.following.size() >= max_following)
                     return make_error(domain_errc::validation,
                                       "following at most " + std::to_string(max_following));
                   messages::UserFollowed ev;
                   ev.set_target(cmd.target());
                   ev.set_at_ms(unix_ms_now());
                   *fresh = true;
                   return std::vector<new_event>{event_of(ev)};
                 }),
                 reply);
    }
    return unknown_message(st.base, env);
  })};
}

}  // namespace

entity_factory user_factory() {
  return [](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(user, id, ctx);
  };
}

}  // namespace chorus::users
