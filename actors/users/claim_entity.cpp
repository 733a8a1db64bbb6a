#include <chrono>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/entity_messages.hpp"
#include "actors/event_sourced.hpp"
#include "actors/users/users.hpp"
#include "common/clock.hpp"
#include "messages/users.pb.h"

namespace chorus::users {

namespace {

// A claim whose owner never made its account may be taken over after this long.
constexpr int64_t takeover_after_ms = 60'000;

struct claim_model {
  std::string owner;
  int64_t taken_at_ms = 0;

  void reset() {
    owner.clear();
    taken_at_ms = 0;
  }

  bool restore(const std::string& type, const std::string& payload) {
    messages::ClaimState snap;
    if (!is_type<messages::ClaimState>(type) || !snap.ParseFromString(payload)) return false;
    owner = snap.owner();
    taken_at_ms = snap.taken_at_ms();
    return true;
  }

  bool apply(const std::string& type, const std::string& payload) {
    if (messages::ClaimTaken ev; parse_as(type, payload, ev)) {
      owner = ev.owner();
      taken_at_ms = ev.at_ms();
      return true;
    }
    if (messages::ClaimReleased ev; parse_as(type, payload, ev)) {
      owner.clear();
      return true;
    }
    return false;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const {
    messages::ClaimState snap;
    snap.set_owner(owner);
    snap.set_taken_at_ms(taken_at_ms);
    return {type_of<messages::ClaimState>(), snap.SerializeAsString()};
  }
};

struct claim_state {
  entity_base base;
  claim_model model;
  static inline const char* name = "chorus.users.claim";
};

using claim_self = envelope_handler::stateful_pointer<claim_state>;

caf::expected<std::string> state_reply(const claim_model& m) {
  messages::ClaimState out;
  out.set_owner(m.owner);
  out.set_taken_at_ms(m.taken_at_ms);
  return out.SerializeAsString();
}

envelope_handler::behavior_type claim(claim_self self, std::string kind, std::string id,
                                      entity_context ctx) {
  self->state.base = entity_base{kind, id, ctx, user_domain};
  return {guarded(self, [self](entity_envelope& env) -> caf::result<std::string> {
    auto& st = self->state;
    if (!st.base.journal) return no_journal(st.base);
    auto run = [self](auto decide) { return run_command(self, decide, state_reply); };
    if (messages::ClaimTake cmd; parse_as(env, cmd)) {
      if (cmd.owner().empty()) return make_error(domain_errc::validation, "ClaimTake: no owner");
      return run([cmd](claim_model& m) -> caf::expected<std::vector<new_event>> {
        if (m.owner == cmd.owner()) return no_events();
        auto now = unix_ms_now();
        if (!m.owner.empty() &&
            (m.owner != cmd.replace() || now - m.taken_at_ms < takeover_after_ms))
          return make_error(domain_errc::conflict, "the name is taken");
        messages::ClaimTaken ev;
        ev.set_owner(cmd.owner());
        ev.set_at_ms(now);
        return std::vector<new_event>{event_of(ev)};
      });
    }
    if (messages::ClaimRelease cmd; parse_as(env, cmd)) {
      return run([cmd](claim_model& m) -> caf::expected<std::vector<new_event>> {
        if (m.owner.empty() || m.owner != cmd.owner()) return no_events();
        return std::vector<new_event>{event_of(messages::ClaimReleased{})};
      });
    }
    if (messages::ClaimGet cmd; parse_as(env, cmd)) {
      return run([](claim_model&) { return no_events(); });
    }
    return unknown_message(st.base, env);
  })};
}

}  // namespace

entity_factory claim_factory(std::string kind) {
  return [kind](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(claim, kind, id, ctx);
  };
}

}  // namespace chorus::users
