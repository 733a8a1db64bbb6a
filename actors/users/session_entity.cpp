#include <algorithm>
#include <chrono>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/entity_messages.hpp"
#include "actors/users/users.hpp"
#include "common/clock.hpp"
#include "messages/sessions.pb.h"

namespace chorus::users {

namespace {

// Activity is recorded in the journal at most every hundredth of the session's idle timeout,
// within these bounds: a 14-day idle timeout is then kept to within 10 minutes (0.05%), and an
// open WebSocket, whose session is checked about every minute, writes one event per 10 minutes
// instead of one per check.
constexpr int64_t min_touch_every_ms = 60'000;
constexpr int64_t max_touch_every_ms = 600'000;

struct session_model {
  bool opened = false;
  bool closed = false;
  std::string user_id;
  std::string username;
  std::vector<std::string> roles;
  int64_t idle_ms = 0;
  int64_t expires_at_ms = 0;
  int64_t last_recorded_ms = 0;  ///< opening or the last SessionTouched
  int64_t last_seen_ms = 0;      ///< in memory: the last check (>= last_recorded_ms)

  void reset() { *this = session_model{}; }

  bool restore(const std::string&, const std::string&) { return false; }  // never snapshotted

  bool apply(const std::string& type, const std::string& payload) {
    if (messages::SessionOpened ev; parse_as(type, payload, ev)) {
      opened = true;
      user_id = ev.user_id();
      username = ev.username();
      roles.assign(ev.roles().begin(), ev.roles().end());
      idle_ms = ev.idle_ms();
      expires_at_ms = ev.expires_at_ms();
      last_recorded_ms = last_seen_ms = ev.opened_at_ms();
      return true;
    }
    if (messages::SessionTouched ev; parse_as(type, payload, ev)) {
      last_recorded_ms = ev.at_ms();
      last_seen_ms = std::max(last_seen_ms, ev.at_ms());
      return true;
    }
    if (messages::SessionClosed ev; parse_as(type, payload, ev)) {
      closed = true;
      return true;
    }
    return false;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const { return {}; }

  /// Whether the session may be used at `now`.
  [[nodiscard]] bool valid_at(int64_t now) const {
    return opened && !closed && now < expires_at_ms && now - last_seen_ms < idle_ms;
  }
};

struct session_state {
  entity_base base;
  session_model model;
  static inline const char* name = "chorus.users.session";
};

using session_self = envelope_handler::stateful_pointer<session_state>;

caf::expected<std::string> info_of(const session_model& m) {
  messages::SessionInfo out;
  out.set_user_id(m.user_id);
  out.set_username(m.username);
  for (const auto& r : m.roles) out.add_roles(r);
  out.set_expires_at_ms(m.expires_at_ms);
  return out.SerializeAsString();
}

caf::error unauthenticated() {
  return make_error(domain_errc::unauthenticated, "the session is unknown, ended or expired");
}

envelope_handler::behavior_type session(session_self self, std::string id, entity_context ctx) {
  self->state.base = entity_base{session_kind, id, ctx, user_domain};
  // Sessions are short streams (open, a touch a minute at most, close): no snapshots.
  self->state.base.snapshot_every = 0;
  return {guarded(self, [self](entity_envelope& env) -> caf::result<std::string> {
    auto& st = self->state;
    if (!st.base.journal) return no_journal(st.base);
    auto run = [self](auto decide) { return run_command(self, decide, info_of); };
    if (messages::SessionOpen cmd; parse_as(env, cmd)) {
      if (cmd.user_id().empty() || cmd.idle_ms() <= 0 || cmd.max_ms() <= 0)
        return make_error(domain_errc::validation, "SessionOpen needs a user and expiries");
      return run([cmd](session_model& m) -> caf::expected<std::vector<new_event>> {
        if (m.opened) {
          // A retried open of the same login; anything else is a token collision.
          if (m.user_id == cmd.user_id() && !m.closed) return no_events();
          return make_error(domain_errc::conflict, "session token already used");
        }
        auto now = unix_ms_now();
        messages::SessionOpened ev;
        ev.set_user_id(cmd.user_id());
        ev.set_username(cmd.username());
        for (const auto& r : cmd.roles()) ev.add_roles(r);
        ev.set_opened_at_ms(now);
        ev.set_idle_ms(cmd.idle_ms());
        ev.set_expires_at_ms(now + cmd.max_ms());
        return std::vector<new_event>{event_of(ev)};
      });
    }
    if (messages::SessionCheck cmd; parse_as(env, cmd)) {
      return run([](session_model& m) -> caf::expected<std::vector<new_event>> {
        auto now = unix_ms_now();
        if (!m.valid_at(now)) return unauthenticated();
        m.last_seen_ms = now;
        auto touch_every = std::clamp(m.idle_ms / 100, min_touch_every_ms, max_touch_every_ms);
        if (now - m.last_recorded_ms < touch_every) return no_events();
        messages::SessionTouched ev;
        ev.set_at_ms(now);
        return std::vector<new_event>{event_of(ev)};
      });
    }
    if (messages::SessionClose cmd; parse_as(env, cmd)) {
      return run([](session_model& m) -> caf::expected<std::vector<new_event>> {
        if (!m.valid_at(unix_ms_now())) return unauthenticated();
        messages::SessionClosed ev;
        ev.set_at_ms(unix_ms_now());
        return std::vector<new_event>{event_of(ev)};
      });
    }
    return unknown_message(st.base, env);
  })};
}

}  // namespace

entity_factory session_factory() {
  return [](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(session, id, ctx);
  };
}

}  // namespace chorus::users
