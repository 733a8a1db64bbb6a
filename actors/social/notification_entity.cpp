#include <algorithm>
#include <deque>
#include <set>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/entity_messages.hpp"
#include "actors/social/social.hpp"
#include "common/clock.hpp"
#include "messages/proto_json.hpp"
#include "messages/social.pb.h"

// A user's notifications: the inbox (the newest few hundred, read or unread), the ids already
// notified (so a cause delivered twice by the at-least-once pipeline is one notification) and
// the preferences that decide which external channels each new one goes to. Each new
// notification is published live on the user's notifications topic once committed; its
// external deliveries are rows the `notify_delivery` projection makes from the event (the
// delivery worker sends them), so nothing here waits for a mail server.

namespace chorus::social {

namespace {

constexpr size_t max_inbox = 500;
constexpr size_t max_seen_ids = 5000;

struct notifications_model {
  std::deque<std::pair<messages::Notification, int64_t>> inbox;  ///< oldest first
  std::set<std::string> seen;
  std::deque<std::string> seen_order;
  messages::NotifyPreferences preferences;

  void reset() { *this = notifications_model{}; }

  void remember(const std::string& id) {
    if (seen.insert(id).second) seen_order.push_back(id);
    while (seen_order.size() > max_seen_ids) {
      seen.erase(seen_order.front());
      seen_order.pop_front();
    }
  }

  [[nodiscard]] int64_t unread() const {
    return std::count_if(inbox.begin(), inbox.end(), [](const auto& n) { return !n.first.read(); });
  }

  bool restore(const std::string& type, const std::string& payload) {
    messages::NotificationsSnapshot s;
    if (!parse_as(type, payload, s) || s.inbox_size() != s.inbox_ms_size()) return false;
    for (int i = 0; i < s.inbox_size(); ++i) inbox.emplace_back(s.inbox(i), s.inbox_ms(i));
    for (const auto& id : s.seen_ids()) remember(id);
    preferences = s.preferences();
    return true;
  }

  bool apply(const std::string& type, const std::string& payload) {
    if (messages::NotificationAdded ev; parse_as(type, payload, ev)) {
      remember(ev.notification().id());
      inbox.emplace_back(ev.notification(), ev.at_ms());
      while (inbox.size() > max_inbox) inbox.pop_front();
      return true;
    }
    if (messages::NotificationsRead ev; parse_as(type, payload, ev)) {
      std::set<std::string> ids{ev.ids().begin(), ev.ids().end()};
      for (auto& [n, ms] : inbox)
        if (ids.count(n.id()) > 0 || (ev.up_to_ms() > 0 && ms <= ev.up_to_ms())) n.set_read(true);
      return true;
    }
    if (messages::NotifyPreferencesChanged ev; parse_as(type, payload, ev)) {
      preferences = ev.preferences();
      return true;
    }
    return false;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const {
    messages::NotificationsSnapshot s;
    for (const auto& [n, ms] : inbox) {
      *s.add_inbox() = n;
      s.add_inbox_ms(ms);
    }
    for (const auto& id : seen_order) s.add_seen_ids(id);
    *s.mutable_preferences() = preferences;
    return {type_of<messages::NotificationsSnapshot>(), s.SerializeAsString()};
  }

  [[nodiscard]] messages::NotificationPage page(const std::string& cursor, int limit,
                                                bool unread_only) const {
    messages::NotificationPage out;
    out.set_unread(unread());
    auto it = inbox.rbegin();
    if (!cursor.empty()) {
      while (it != inbox.rend() && it->first.id() != cursor) ++it;
      if (it != inbox.rend()) ++it;
    }
    for (; it != inbox.rend(); ++it) {
      if (unread_only && it->first.read()) continue;
      if (out.notifications_size() == limit) {
        out.set_next_cursor(out.notifications(limit - 1).id());
        break;
      }
      *out.add_notifications() = it->first;
    }
    return out;
  }
};

struct notifications_state {
  entity_base base;
  notifications_model model;
  static inline const char* name = "chorus.social.notifications";
};

using notifications_self = envelope_handler::stateful_pointer<notifications_state>;
using decided = caf::expected<std::vector<new_event>>;

bool valid_phone(const std::string& p) {
  if (p.size() < 8 || p.size() > 16 || p[0] != '+') return false;
  return std::all_of(p.begin() + 1, p.end(), [](char c) { return c >= '0' && c <= '9'; });
}

caf::error check_preferences(const messages::NotifyPreferences& p) {
  for (const auto& [type, _] : p.channels())
    if (!is_notification_type(type))
      return make_error(domain_errc::validation, "unknown notification type " + type);
  if (p.quiet_start_min() < 0 || p.quiet_start_min() >= 1440 || p.quiet_end_min() < 0 ||
      p.quiet_end_min() >= 1440)
    return make_error(domain_errc::validation, "quiet hours are minutes 0..1439");
  if (p.utc_offset_min() < -720 || p.utc_offset_min() > 840)
    return make_error(domain_errc::validation, "utc_offset_min must be -720..840");
  if (!p.phone().empty() && !valid_phone(p.phone()))
    return make_error(domain_errc::validation, "phone must be + and 7..15 digits");
  if (p.push_token().size() > 512)
    return make_error(domain_errc::validation, "push_token too long");
  return {};
}

envelope_handler::behavior_type notifications(notifications_self self, std::string id,
                                              entity_context ctx) {
  self->state.base = entity_base{notifications_kind, id, ctx, social_domain};
  return {guarded(self, [self](entity_envelope& env) -> caf::result<std::string> {
    auto& st = self->state;
    if (!st.base.journal) return no_journal(st.base);

    if (messages::NotifyPush cmd; parse_as(env, cmd)) {
      const auto& n = cmd.notification();
      if (n.id().empty() || n.id().size() > 200 || !is_notification_type(n.type()))
        return make_error(domain_errc::validation, "a notification needs an id and a known type");
      auto fresh = std::make_shared<bool>(false);
      return run_command(
          self,
          [cmd, fresh](notifications_model& m) -> decided {
            *fresh = m.seen.count(cmd.notification().id()) == 0;
            if (!*fresh) return no_events();
            messages::NotificationAdded ev;
            *ev.mutable_notification() = cmd.notification();
            auto now = unix_ms_now();
            ev.mutable_notification()->set_created_at(rfc3339(now));
            ev.mutable_notification()->set_read(false);
            ev.set_at_ms(now);
            const auto& p = m.preferences;
            auto wanted = p.channels().find(cmd.notification().type());
            if (wanted != p.channels().end()) {
              if (wanted->second.email() && !p.email().empty()) ev.add_channels("email");
              if (wanted->second.sms() && !p.phone().empty()) ev.add_channels("sms");
              if (wanted->second.push() && !p.push_token().empty()) ev.add_channels("push");
            }
            ev.set_email(p.email());
            ev.set_phone(p.phone());
            ev.set_push_token(p.push_token());
            ev.set_quiet_start_min(p.quiet_start_min());
            ev.set_quiet_end_min(p.quiet_end_min());
            ev.set_utc_offset_min(p.utc_offset_min());
            return std::vector<new_event>{event_of(ev)};
          },
          [self, cmd, fresh](const notifications_model& m) -> caf::expected<std::string> {
            for (auto it = m.inbox.rbegin(); it != m.inbox.rend(); ++it) {
              if (it->first.id() != cmd.notification().id()) continue;
              if (*fresh && self->state.base.live)
                self->send(self->state.base.live,
                           live_event{notifications_topic(self->state.base.id),
                                      R"({"type":"notification","notification":)" +
                                          proto_json(it->first) + "}"});
              return it->first.SerializeAsString();
            }
            // Notified long ago (it left the inbox): nothing more to say.
            return cmd.notification().SerializeAsString();
          });
    }

    if (messages::NotifyList cmd; parse_as(env, cmd)) {
      if (cmd.limit() < 1 || cmd.limit() > 100)
        return make_error(domain_errc::validation, "limit must be 1..100");
      return run_command(
          self, [](notifications_model&) -> decided { return no_events(); },
          [cmd](const notifications_model& m) -> caf::expected<std::string> {
            return m.page(cmd.cursor(), cmd.limit(), cmd.unread_only()).SerializeAsString();
          });
    }

    if (messages::NotifyMarkRead cmd; parse_as(env, cmd)) {
      if (cmd.ids_size() > 100) return make_error(domain_errc::validation, "at most 100 ids");
      return run_command(
          self,
          [cmd](notifications_model& m) -> decided {
            messages::NotificationsRead ev;
            if (cmd.all()) {
              if (m.unread() == 0) return no_events();
              ev.set_up_to_ms(unix_ms_now());
              return std::vector<new_event>{event_of(ev)};
            }
            for (const auto& want : cmd.ids())
              for (const auto& [n, ms] : m.inbox)
                if (n.id() == want && !n.read()) ev.add_ids(want);
            if (ev.ids_size() == 0) return no_events();
            return std::vector<new_event>{event_of(ev)};
          },
          [](const notifications_model& m) -> caf::expected<std::string> {
            return m.page("", 20, false).SerializeAsString();
          });
    }

    if (messages::NotifyPreferencesGet cmd; parse_as(env, cmd))
      return run_command(
          self, [](notifications_model&) -> decided { return no_events(); },
          [](const notifications_model& m) -> caf::expected<std::string> {
            return m.preferences.SerializeAsString();
          });

    if (messages::NotifyPreferencesSet cmd; parse_as(env, cmd)) {
      if (auto err = check_preferences(cmd.preferences())) return err;
      return run_command(
          self,
          [cmd](notifications_model& m) -> decided {
            if (m.preferences.SerializeAsString() == cmd.preferences().SerializeAsString())
              return no_events();
            messages::NotifyPreferencesChanged ev;
            *ev.mutable_preferences() = cmd.preferences();
            return std::vector<new_event>{event_of(ev)};
          },
          [](const notifications_model& m) -> caf::expected<std::string> {
            return m.preferences.SerializeAsString();
          });
    }

    return unknown_message(st.base, env);
  })};
}

}  // namespace

bool is_notification_type(const std::string& type) {
  return type == "new_follower" || type == "new_track" || type == "mention" || type == "reply" ||
         type == "direct_message";
}

entity_factory notifications_factory() {
  return [](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(notifications, id, ctx);
  };
}

}  // namespace chorus::social
