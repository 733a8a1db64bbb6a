#include <set>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/audio/audio.hpp"
#include "actors/entity_messages.hpp"
#include "common/clock.hpp"
#include "messages/audio.pb.h"

// A user's library: the tracks it liked and reposted. One writer per user makes a like
// idempotent (liking twice changes nothing, so counts in the read model stay exact); the lists
// are read from the read model (persistence/audio_library), not from here.

namespace chorus::audio {

namespace {

struct library_model {
  std::set<std::string> liked;
  std::set<std::string> reposted;

  void reset() { *this = library_model{}; }

  bool restore(const std::string& type, const std::string& payload) {
    messages::LibrarySnapshot s;
    if (!parse_as(type, payload, s)) return false;
    liked = {s.liked().begin(), s.liked().end()};
    reposted = {s.reposted().begin(), s.reposted().end()};
    return true;
  }

  bool apply(const std::string& type, const std::string& payload) {
    if (messages::LibraryLiked ev; parse_as(type, payload, ev))
      return liked.insert(ev.track()), true;
    if (messages::LibraryUnliked ev; parse_as(type, payload, ev))
      return liked.erase(ev.track()), true;
    if (messages::LibraryReposted ev; parse_as(type, payload, ev))
      return reposted.insert(ev.track()), true;
    if (messages::LibraryUnreposted ev; parse_as(type, payload, ev))
      return reposted.erase(ev.track()), true;
    return false;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const {
    messages::LibrarySnapshot s;
    for (const auto& t : liked) s.add_liked(t);
    for (const auto& t : reposted) s.add_reposted(t);
    return {type_of<messages::LibrarySnapshot>(), s.SerializeAsString()};
  }
};

struct library_state {
  entity_base base;
  library_model model;
  static inline const char* name = "chorus.audio.library";
};

using library_self = envelope_handler::stateful_pointer<library_state>;

envelope_handler::behavior_type library(library_self self, std::string id, entity_context ctx) {
  self->state.base = entity_base{library_kind, id, ctx, audio_domain};
  return {guarded(self, [self](entity_envelope& env) -> caf::result<std::string> {
    auto& st = self->state;
    if (!st.base.journal) return no_journal(st.base);
    messages::LibrarySet cmd;
    if (!parse_as(env, cmd)) return unknown_message(st.base, env);
    bool like = cmd.what() == "like";
    if (cmd.track().empty() || (!like && cmd.what() != "repost"))
      return make_error(domain_errc::validation, "LibrarySet needs a track and like or repost");
    auto changed = std::make_shared<bool>(false);
    return run_command(
        self,
        [cmd, like, changed](library_model& m) -> caf::expected<std::vector<new_event>> {
          auto& set = like ? m.liked : m.reposted;
          bool has = set.count(cmd.track()) > 0;
          *changed = has != cmd.on();
          if (!*changed) return no_events();
          if (cmd.on() && set.size() >= static_cast<size_t>(max_library_items))
            return make_error(domain_errc::conflict, "at most " +
                                                         std::to_string(max_library_items) + " " +
                                                         cmd.what() + "s; take some back first");
          if (like && cmd.on()) {
            messages::LibraryLiked ev;
            ev.set_track(cmd.track());
            ev.set_at_ms(unix_ms_now());
            return std::vector<new_event>{event_of(ev)};
          }
          if (like) {
            messages::LibraryUnliked ev;
            ev.set_track(cmd.track());
            return std::vector<new_event>{event_of(ev)};
          }
          if (cmd.on()) {
            messages::LibraryReposted ev;
            ev.set_track(cmd.track());
            ev.set_track_owner(cmd.track_owner());
            ev.set_at_ms(unix_ms_now());
            return std::vector<new_event>{event_of(ev)};
          }
          messages::LibraryUnreposted ev;
          ev.set_track(cmd.track());
          return std::vector<new_event>{event_of(ev)};
        },
        [cmd, changed](const library_model&) -> caf::expected<std::string> {
          messages::LibraryChange out;
          out.set_changed(*changed);
          out.set_on(cmd.on());
          return out.SerializeAsString();
        });
  })};
}

}  // namespace

entity_factory library_factory() {
  return [](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(library, id, ctx);
  };
}

}  // namespace chorus::audio
