#include <algorithm>
#include <map>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/audio/audio.hpp"
#include "actors/entity_messages.hpp"
#include "common/clock.hpp"
#include "messages/audio.pb.h"

// A playlist: an ordered list of tracks owned by one user. Items carry ids that stay put while
// positions change, so "remove item 7" means the same item to every client however the list
// moved meanwhile. A deleted playlist answers not_found from then on (its events stay).

namespace chorus::audio {

namespace {

struct playlist_model {
  messages::PlaylistInfo info;  ///< id/created_at/added_at filled when answered
  int64_t next_item_id = 1;
  int64_t created_at_ms = 0;
  bool deleted = false;
  std::map<int64_t, int64_t> added_ms;

  [[nodiscard]] bool exists() const { return !info.owner().empty() && !deleted; }
  void reset() { *this = playlist_model{}; }

  bool restore(const std::string& type, const std::string& payload) {
    messages::PlaylistSnapshot s;
    if (!parse_as(type, payload, s)) return false;
    info = s.info();
    next_item_id = s.next_item_id();
    created_at_ms = s.created_at_ms();
    deleted = s.deleted();
    added_ms = {s.added_ms().begin(), s.added_ms().end()};
    return true;
  }

  [[nodiscard]] int index_of(int64_t item_id) const {
    for (int i = 0; i < info.items_size(); ++i)
      if (info.items(i).item_id() == item_id) return i;
    return -1;
  }

  /// Moves the last item to `position` (clamped).
  void place_last_at(int position) {
    auto* items = info.mutable_items();
    int last = items->size() - 1;
    int to = position < 0 || position > last ? last : position;
    for (int i = last; i > to; --i) items->SwapElements(i, i - 1);
  }

  bool apply(const std::string& type, const std::string& payload) {
    if (messages::PlaylistCreated ev; parse_as(type, payload, ev)) {
      info.set_owner(ev.owner());
      info.set_title(ev.title());
      info.set_description(ev.description());
      info.set_visibility(ev.visibility());
      created_at_ms = ev.at_ms();
      return true;
    }
    if (messages::PlaylistEdited ev; parse_as(type, payload, ev)) {
      if (ev.has_title()) info.set_title(ev.title());
      if (ev.has_description()) info.set_description(ev.description());
      if (ev.has_visibility()) info.set_visibility(ev.visibility());
      return true;
    }
    if (messages::PlaylistItemAdded ev; parse_as(type, payload, ev)) {
      auto* item = info.add_items();
      item->set_item_id(ev.item_id());
      item->set_track(ev.track());
      added_ms[ev.item_id()] = ev.at_ms();
      next_item_id = std::max(next_item_id, ev.item_id() + 1);
      place_last_at(ev.position());
      return true;
    }
    if (messages::PlaylistItemRemoved ev; parse_as(type, payload, ev)) {
      auto i = index_of(ev.item_id());
      if (i >= 0) info.mutable_items()->DeleteSubrange(i, 1);
      added_ms.erase(ev.item_id());
      return true;
    }
    if (messages::PlaylistItemMoved ev; parse_as(type, payload, ev)) {
      auto i = index_of(ev.item_id());
      if (i < 0) return true;
      auto* items = info.mutable_items();
      for (int k = i; k + 1 < items->size(); ++k) items->SwapElements(k, k + 1);
      place_last_at(ev.position());
      return true;
    }
    if (messages::PlaylistDeleted ev; parse_as(type, payload, ev)) {
      deleted = true;
      info.clear_items();
      added_ms.clear();
      return true;
    }
    return false;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const {
    messages::PlaylistSnapshot s;
    *s.mutable_info() = info;
    s.set_next_item_id(next_item_id);
    s.set_created_at_ms(created_at_ms);
    s.set_deleted(deleted);
    s.mutable_added_ms()->insert(added_ms.begin(), added_ms.end());
    return {type_of<messages::PlaylistSnapshot>(), s.SerializeAsString()};
  }
};

struct playlist_state {
  entity_base base;
  playlist_model model;
  static inline const char* name = "chorus.audio.playlist";
};

using playlist_self = envelope_handler::stateful_pointer<playlist_state>;

/// The checks every change shares: the playlist exists and `by` owns it.
caf::error may_change(const playlist_model& m, const std::string& by, const std::string& id) {
  if (!m.exists()) return make_error(domain_errc::not_found, "no playlist " + id);
  // A private playlist does not exist for anyone else, as GET says.
  if (by != m.info.owner() && m.info.visibility() == "private")
    return make_error(domain_errc::not_found, "no playlist " + id);
  if (by != m.info.owner())
    return make_error(domain_errc::forbidden, "only the playlist's owner may change it");
  return {};
}

std::vector<new_event> one(const google::protobuf::Message& ev) {
  return std::vector<new_event>{event_of(ev)};
}

}  // namespace

envelope_handler::behavior_type playlist(playlist_self self, std::string id, entity_context ctx) {
  self->state.base = entity_base{playlist_kind, id, ctx, audio_domain};
  auto info_of = [self](const playlist_model& m) -> caf::expected<std::string> {
    if (!m.exists())
      return make_error(domain_errc::not_found, "no playlist " + self->state.base.id);
    auto out = m.info;
    out.set_id(self->state.base.id);
    out.set_created_at(rfc3339(m.created_at_ms));
    for (auto& item : *out.mutable_items()) {
      auto at = m.added_ms.find(item.item_id());
      item.set_added_at(rfc3339(at == m.added_ms.end() ? m.created_at_ms : at->second));
    }
    return out.SerializeAsString();
  };
  using decided = caf::expected<std::vector<new_event>>;
  return {guarded(self, [self, info_of](entity_envelope& env) -> caf::result<std::string> {
    auto& st = self->state;
    const auto& id = st.base.id;
    if (!st.base.journal) return no_journal(st.base);
    auto run = [self, info_of](auto decide) { return run_command(self, decide, info_of); };
    if (messages::PlaylistGet cmd; parse_as(env, cmd))
      return run([](playlist_model&) -> decided { return no_events(); });
    if (messages::PlaylistCreate cmd; parse_as(env, cmd)) {
      if (cmd.owner().empty() || cmd.title().empty())
        return make_error(domain_errc::validation, "PlaylistCreate needs owner and title");
      return run([cmd](playlist_model& m) -> decided {
        if (!m.info.owner().empty()) {
          if (m.info.owner() == cmd.owner() && m.info.title() == cmd.title() && !m.deleted)
            return no_events();  // a retried create
          return make_error(domain_errc::conflict, "the playlist exists already");
        }
        messages::PlaylistCreated ev;
        ev.set_owner(cmd.owner());
        ev.set_title(cmd.title());
        ev.set_description(cmd.description());
        ev.set_visibility(cmd.visibility().empty() ? "public" : cmd.visibility());
        ev.set_at_ms(unix_ms_now());
        return one(ev);
      });
    }
    if (messages::PlaylistEdit cmd; parse_as(env, cmd))
      return run([cmd, id](playlist_model& m) -> decided {
        if (auto err = may_change(m, cmd.by(), id)) return err;
        messages::PlaylistEdited ev;
        if (cmd.has_title()) ev.set_title(cmd.title());
        if (cmd.has_description()) ev.set_description(cmd.description());
        if (cmd.has_visibility()) ev.set_visibility(cmd.visibility());
        return one(ev);
      });
    if (messages::PlaylistAddItem cmd; parse_as(env, cmd))
      return run([cmd, id](playlist_model& m) -> decided {
        if (auto err = may_change(m, cmd.by(), id)) return err;
        if (m.info.items_size() >= max_playlist_items)
          return make_error(
              domain_errc::conflict,
              "a playlist holds at most " + std::to_string(max_playlist_items) + " tracks");
        messages::PlaylistItemAdded ev;
        ev.set_item_id(m.next_item_id);
        ev.set_track(cmd.track());
        ev.set_position(cmd.position());
        ev.set_at_ms(unix_ms_now());
        return one(ev);
      });
    if (messages::PlaylistRemoveItem cmd; parse_as(env, cmd))
      return run([cmd, id](playlist_model& m) -> decided {
        if (auto err = may_change(m, cmd.by(), id)) return err;
        if (m.index_of(cmd.item_id()) < 0)
          return make_error(domain_errc::not_found, "no item " + std::to_string(cmd.item_id()));
        messages::PlaylistItemRemoved ev;
        ev.set_item_id(cmd.item_id());
        return one(ev);
      });
    if (messages::PlaylistMoveItem cmd; parse_as(env, cmd))
      return run([cmd, id](playlist_model& m) -> decided {
        if (auto err = may_change(m, cmd.by(), id)) return err;
        if (m.index_of(cmd.item_id()) < 0)
          return make_error(domain_errc::not_found, "no item " + std::to_string(cmd.item_id()));
        messages::PlaylistItemMoved ev;
        ev.set_item_id(cmd.item_id());
        ev.set_position(cmd.position());
        return one(ev);
      });
    if (messages::PlaylistDelete cmd; parse_as(env, cmd)) {
      auto gone = [](const playlist_model&) -> caf::expected<std::string> {
        return messages::PlaylistInfo{}.SerializeAsString();
      };
      return run_command(
          self,
          [cmd, id](playlist_model& m) -> decided {
            if (auto err = may_change(m, cmd.by(), id)) return err;
            return one(messages::PlaylistDeleted{});
          },
          gone);
    }
    return unknown_message(st.base, env);
  })};
}

entity_factory playlist_factory() {
  return [](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(playlist, id, ctx);
  };
}

}  // namespace chorus::audio
