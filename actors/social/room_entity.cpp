#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/entity_messages.hpp"
#include "actors/social/social.hpp"
#include "common/clock.hpp"
#include "messages/proto_json.hpp"
#include "messages/social.pb.h"
#include "persistence/sha256.hpp"

// A chat room: its members and their roles, read pointers and moderation state, and the newest
// messages. One writer per room gives every message its place in the room (seq 1, 2, 3 ...
// without gaps) however many nodes its senders are on, and makes a retried send (same author
// and client id) answer the message it made instead of posting twice. Every change is published
// live on the room's topic once it is committed, in commit order; older history is served by
// the read model (persistence/social_chat).

namespace chorus::social {

namespace {

/// Client ids remembered for deduplicating retried posts.
constexpr size_t max_client_keys = 4000;
/// Reports kept for the moderators (the oldest go first).
constexpr int max_reports = 1000;
/// The longest mute and slow mode.
constexpr int64_t max_mute_s = 30LL * 24 * 3600;
constexpr int max_slow_mode_s = 3600;

/// Why a message that left the room's tail cannot be `what`.
std::string too_old(const char* what) {
  return std::string{"only the room's newest messages (up to "} +
         std::to_string(room_tail_messages) + ", " + std::to_string(room_tail_bytes >> 20) +
         " MiB of them) can be " + what;
}

std::string client_key(const std::string& author, const std::string& client_id) {
  return author + "\n" + client_id;
}

bool is_moderator(const std::string& role) {
  return role == "owner" || role == "moderator";
}

struct member_state {
  std::string role;
  int64_t joined_ms = 0;
  int64_t read_seq = 0;
  int64_t muted_until_ms = 0;
  int64_t last_post_ms = 0;
};

struct room_model {
  std::string kind;  ///< "" until created
  std::string name;
  std::string owner;
  int64_t created_ms = 0;
  std::map<std::string, member_state> members;
  std::set<std::string> banned;
  int64_t last_seq = 0;
  int32_t slow_mode_s = 0;
  std::deque<messages::ChatMessage> tail;
  size_t tail_bytes = 0;  ///< the tail's serialized size
  std::map<std::string, int64_t> client_keys;
  std::deque<std::string> client_key_order;  ///< oldest first, for eviction
  std::deque<messages::MessageReport> reports;
  std::string id;  ///< set by the entity; stamped on messages

  [[nodiscard]] bool exists() const { return !kind.empty(); }
  void reset() {
    auto keep = id;
    *this = room_model{};
    id = keep;
  }

  [[nodiscard]] const member_state* member(const std::string& user) const {
    auto it = members.find(user);
    return it == members.end() ? nullptr : &it->second;
  }

  [[nodiscard]] std::string role_of(const std::string& user) const {
    const auto* m = member(user);
    return m == nullptr ? std::string{} : m->role;
  }

  /// The tail's message `seq`, or nullptr when it is older than the tail (or unknown).
  messages::ChatMessage* held(int64_t seq) {
    if (tail.empty() || seq < tail.front().seq() || seq > tail.back().seq()) return nullptr;
    auto& m = tail[static_cast<size_t>(seq - tail.front().seq())];
    return m.seq() == seq ? &m : nullptr;
  }

  /// Drops the oldest messages of the tail beyond its count or byte limit (the newest stays).
  void trim_tail() {
    while (tail.size() > static_cast<size_t>(room_tail_messages) ||
           (tail_bytes > room_tail_bytes && tail.size() > 1)) {
      tail_bytes -= tail.front().ByteSizeLong();
      tail.pop_front();
    }
  }

  /// Changes the held message `seq` with `change`, keeping the tail's size right.
  template <class Change>
  void change_held(int64_t seq, Change change) {
    if (auto* m = held(seq)) {
      tail_bytes -= m->ByteSizeLong();
      change(*m);
      tail_bytes += m->ByteSizeLong();
    }
  }

  void remember_key(const std::string& key, int64_t seq) {
    if (client_keys.emplace(key, seq).second) client_key_order.push_back(key);
    while (client_key_order.size() > max_client_keys) {
      client_keys.erase(client_key_order.front());
      client_key_order.pop_front();
    }
  }

  bool restore(const std::string& type, const std::string& payload) {
    messages::RoomSnapshot s;
    if (!parse_as(type, payload, s)) return false;
    kind = s.kind();
    name = s.name();
    owner = s.owner();
    created_ms = s.created_ms();
    for (const auto& [user, m] : s.members())
      members[user] =
          member_state{m.role(), m.joined_ms(), m.read_seq(), m.muted_until_ms(), m.last_post_ms()};
    banned = {s.banned().begin(), s.banned().end()};
    last_seq = s.last_seq();
    slow_mode_s = s.slow_mode_s();
    tail = {s.tail().begin(), s.tail().end()};
    tail_bytes = 0;
    for (const auto& m : tail) tail_bytes += m.ByteSizeLong();
    trim_tail();
    // Map order is not the order of arrival: evicting by seq keeps the newest keys.
    std::vector<std::pair<int64_t, std::string>> keys;
    for (const auto& [k, seq] : s.client_keys()) keys.emplace_back(seq, k);
    std::sort(keys.begin(), keys.end());
    for (const auto& [seq, k] : keys) remember_key(k, seq);
    reports = {s.reports().begin(), s.reports().end()};
    return true;
  }

  bool apply(const std::string& type, const std::string& payload) {
    if (messages::ChatPosted ev; parse_as(type, payload, ev)) {
      messages::ChatMessage m;
      m.set_seq(ev.seq());
      m.set_room(id);
      m.set_author(ev.author());
      m.set_text(ev.text());
      m.set_client_id(ev.client_id());
      m.set_reply_to(ev.reply_to());
      m.set_track(ev.track());
      m.set_created_at(rfc3339(ev.at_ms()));
      tail_bytes += m.ByteSizeLong();
      tail.push_back(std::move(m));
      trim_tail();
      last_seq = ev.seq();
      if (!ev.client_id().empty()) remember_key(client_key(ev.author(), ev.client_id()), ev.seq());
      if (auto it = members.find(ev.author()); it != members.end()) {
        it->second.last_post_ms = ev.at_ms();
        it->second.read_seq = std::max(it->second.read_seq, ev.seq());
      }
      return true;
    }
    if (messages::ReadMoved ev; parse_as(type, payload, ev)) {
      if (auto it = members.find(ev.user()); it != members.end())
        it->second.read_seq = std::max(it->second.read_seq, ev.seq());
      return true;
    }
    if (messages::ChatEdited ev; parse_as(type, payload, ev)) {
      change_held(ev.seq(), [&ev](messages::ChatMessage& m) {
        m.set_text(ev.text());
        m.set_edited_at(rfc3339(ev.at_ms()));
      });
      trim_tail();  // an edit may make the tail longer than its limit
      return true;
    }
    if (messages::ChatDeleted ev; parse_as(type, payload, ev)) {
      change_held(ev.seq(), [](messages::ChatMessage& m) {
        m.set_text("");
        m.set_deleted(true);
      });
      return true;
    }
    if (messages::RoomCreated ev; parse_as(type, payload, ev)) {
      kind = ev.kind();
      name = ev.name();
      owner = ev.owner();
      created_ms = ev.at_ms();
      members[ev.owner()] = member_state{"owner", ev.at_ms()};
      for (const auto& u : ev.members())
        if (u != ev.owner()) members[u] = member_state{"member", ev.at_ms()};
      return true;
    }
    if (messages::MemberJoined ev; parse_as(type, payload, ev)) {
      members[ev.user()] = member_state{ev.role(), ev.at_ms(), ev.read_seq()};
      return true;
    }
    if (messages::MemberLeft ev; parse_as(type, payload, ev)) {
      members.erase(ev.user());
      return true;
    }
    if (messages::MemberRoleSet ev; parse_as(type, payload, ev)) {
      if (auto it = members.find(ev.user()); it != members.end()) it->second.role = ev.role();
      return true;
    }
    if (messages::MemberBanned ev; parse_as(type, payload, ev)) {
      members.erase(ev.user());
      banned.insert(ev.user());
      return true;
    }
    if (messages::MemberUnbanned ev; parse_as(type, payload, ev)) {
      banned.erase(ev.user());
      return true;
    }
    if (messages::MemberMuted ev; parse_as(type, payload, ev)) {
      if (auto it = members.find(ev.user()); it != members.end())
        it->second.muted_until_ms = ev.until_ms();
      return true;
    }
    if (messages::RoomConfigured ev; parse_as(type, payload, ev)) {
      if (ev.has_name()) name = ev.name();
      if (ev.has_slow_mode_s()) slow_mode_s = ev.slow_mode_s();
      return true;
    }
    if (messages::ChatReported ev; parse_as(type, payload, ev)) {
      messages::MessageReport r;
      r.set_seq(ev.seq());
      r.set_by(ev.by());
      r.set_reason(ev.reason());
      r.set_at(rfc3339(ev.at_ms()));
      reports.push_back(std::move(r));
      while (reports.size() > static_cast<size_t>(max_reports)) reports.pop_front();
      return true;
    }
    return false;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const {
    messages::RoomSnapshot s;
    s.set_kind(kind);
    s.set_name(name);
    s.set_owner(owner);
    s.set_created_ms(created_ms);
    auto& ms = *s.mutable_members();
    for (const auto& [user, m] : members) {
      auto& out = ms[user];
      out.set_role(m.role);
      out.set_joined_ms(m.joined_ms);
      out.set_read_seq(m.read_seq);
      out.set_muted_until_ms(m.muted_until_ms);
      out.set_last_post_ms(m.last_post_ms);
    }
    for (const auto& u : banned) s.add_banned(u);
    s.set_last_seq(last_seq);
    s.set_slow_mode_s(slow_mode_s);
    for (const auto& m : tail) *s.add_tail() = m;
    s.mutable_client_keys()->insert(client_keys.begin(), client_keys.end());
    for (const auto& r : reports) *s.add_reports() = r;
    return {type_of<messages::RoomSnapshot>(), s.SerializeAsString()};
  }
};

struct room_state {
  entity_base base;
  room_model model;
  int64_t message_limit = 10;
  int64_t message_window_ms = 10000;
  /// Recent post times per member (not durable: a restarted room forgets them).
  std::map<std::string, std::deque<int64_t>> recent_posts;
  /// The newest seq this activation published live.
  int64_t last_published = 0;
  static inline const char* name = "chorus.social.room";
};

using room_self = envelope_handler::stateful_pointer<room_state>;
using decided = caf::expected<std::vector<new_event>>;

std::vector<new_event> one(const google::protobuf::Message& ev) {
  return std::vector<new_event>{event_of(ev)};
}

caf::error no_room(const std::string& id) {
  return make_error(domain_errc::not_found, "no room " + id);
}

/// The room exists and `by` may see it: members any room, anybody a public one. A private room
/// does not exist for anyone else.
caf::error may_see(const room_model& m, const std::string& by) {
  if (!m.exists() || (m.kind != "public" && m.member(by) == nullptr)) return no_room(m.id);
  return {};
}

/// `by` is a member (of a room it may see).
caf::error must_be_member(const room_model& m, const std::string& by) {
  if (auto err = may_see(m, by)) return err;
  if (m.member(by) == nullptr) return make_error(domain_errc::forbidden, "join the room first");
  return {};
}

caf::error must_moderate(const room_model& m, const std::string& by) {
  if (auto err = must_be_member(m, by)) return err;
  if (!is_moderator(m.role_of(by)))
    return make_error(domain_errc::forbidden, "only the room's owner and moderators may do this");
  return {};
}

messages::RoomInfo info_for(const room_model& m, const std::string& by) {
  messages::RoomInfo out;
  out.set_id(m.id);
  out.set_kind(m.kind);
  out.set_name(m.name);
  out.set_owner(m.owner);
  out.set_created_at(rfc3339(m.created_ms));
  out.set_member_count(static_cast<int32_t>(m.members.size()));
  out.set_last_seq(m.last_seq);
  out.set_slow_mode_s(m.slow_mode_s);
  if (const auto* me = m.member(by)) {
    out.set_role(me->role);
    out.set_read_seq(me->read_seq);
    out.set_unread(std::max<int64_t>(0, m.last_seq - me->read_seq));
  }
  return out;
}

}  // namespace

std::string direct_room_id(const std::string& a, const std::string& b) {
  auto pair = a < b ? a + "\n" + b : b + "\n" + a;
  return "dm-" + persistence::sha256_hex(pair).substr(0, 32);
}

namespace {

/// `user` becomes a member (added by `by`, "" when joining by itself), unless it is one
/// already, banned, or the room is full.
caf::expected<std::vector<new_event>> join(const room_model& m, const std::string& user,
                                           const std::string& by) {
  if (m.member(user) != nullptr) return no_events();
  if (m.banned.count(user) > 0)
    return by.empty() ? make_error(domain_errc::forbidden, "you are banned from this room")
                      : make_error(domain_errc::conflict, "that user is banned from this room");
  if (m.members.size() >= static_cast<size_t>(max_room_members))
    return make_error(domain_errc::conflict, "the room is full");
  messages::MemberJoined ev;
  ev.set_user(user);
  ev.set_role("member");
  ev.set_by(by);
  ev.set_at_ms(unix_ms_now());
  ev.set_read_seq(m.last_seq);
  return one(ev);
}

/// The live event of a new member.
std::string member_joined_json(const std::string& user, const std::string& by) {
  std::string out = R"({"kind":"member_joined","user":")" + user + R"(")";
  if (!by.empty()) out += R"(,"by":")" + by + R"(")";
  return out + "}";
}

envelope_handler::behavior_type room(room_self self, std::string id, entity_context ctx) {
  self->state.base = entity_base{room_kind, id, ctx, social_domain};
  self->state.model.id = id;
  self->state.message_limit = ctx.room_message_limit;
  self->state.message_window_ms = ctx.room_message_window.count();
  auto topic = room_topic(id);
  // Publishes `json` to the room's subscribers on every node.
  auto publish = [self, topic](std::string json) {
    if (self->state.base.live)
      self->send(self->state.base.live, live_event{topic, std::move(json)});
  };
  // Ends `user`'s subscriptions to the room on every node (left, removed or banned).
  auto revoke = [self, topic](const std::string& user) {
    if (self->state.base.live) self->send(self->state.base.live, live_revoke{topic, user});
  };

  return {guarded(self, [self, publish, revoke](entity_envelope& env) -> caf::result<std::string> {
    auto& st = self->state;
    const auto& id = st.base.id;
    if (!st.base.journal) return no_journal(st.base);
    // Commands that answer RoomInfo as `by` sees it, publishing `live(model)` once committed
    // when they changed anything.
    auto info_command = [self](const std::string& by, auto decide,
                               std::function<void(const room_model&)> live = {}) {
      auto changed = std::make_shared<bool>(false);
      return run_command(
          self,
          [decide, changed](room_model& m) mutable -> decided {
            auto out = decide(m);
            *changed = out && !out->empty();
            return out;
          },
          [by, live, changed](const room_model& m) -> caf::expected<std::string> {
            if (*changed && live) live(m);
            return info_for(m, by).SerializeAsString();
          });
    };

    if (messages::RoomGet cmd; parse_as(env, cmd))
      return info_command(cmd.by(), [cmd](room_model& m) -> decided {
        if (auto err = may_see(m, cmd.by())) return err;
        return no_events();
      });

    if (messages::RoomCreate cmd; parse_as(env, cmd)) {
      const auto& k = cmd.kind();
      if (cmd.by().empty() || (k != "direct" && k != "group" && k != "public"))
        return make_error(domain_errc::validation, "RoomCreate needs a caller and a kind");
      if (k == "direct" && (cmd.members_size() != 1 || cmd.members(0) == cmd.by() ||
                            id != direct_room_id(cmd.by(), cmd.members(0))))
        return make_error(domain_errc::validation, "a direct room is for you and one other user");
      if (cmd.members_size() > max_initial_members)
        return make_error(
            domain_errc::validation,
            "at most " + std::to_string(max_initial_members) + " members when creating a room");
      return info_command(cmd.by(), [cmd](room_model& m) -> decided {
        if (m.exists()) {
          // A retried create, or the direct room of the two that exists already.
          if (m.kind == cmd.kind() && (m.owner == cmd.by() || m.member(cmd.by()) != nullptr))
            return no_events();
          return make_error(domain_errc::conflict, "the room exists already");
        }
        messages::RoomCreated ev;
        ev.set_kind(cmd.kind());
        ev.set_name(cmd.name());
        ev.set_owner(cmd.by());
        std::set<std::string> seen{cmd.by()};
        for (const auto& u : cmd.members())
          if (seen.insert(u).second) ev.add_members(u);
        ev.set_at_ms(unix_ms_now());
        return one(ev);
      });
    }

    if (messages::RoomJoin cmd; parse_as(env, cmd))
      return info_command(
          cmd.by(),
          [cmd](room_model& m) -> decided {
            if (auto err = may_see(m, cmd.by())) return err;
            if (m.member(cmd.by()) == nullptr && m.kind != "public")
              return make_error(domain_errc::forbidden, "this room is invite-only");
            return join(m, cmd.by(), "");
          },
          [publish, cmd](const room_model&) { publish(member_joined_json(cmd.by(), "")); });

    if (messages::RoomInvite cmd; parse_as(env, cmd))
      return info_command(
          cmd.by(),
          [cmd](room_model& m) -> decided {
            if (auto err = must_be_member(m, cmd.by())) return err;
            if (m.kind == "direct")
              return make_error(domain_errc::conflict, "a direct room has two members");
            if (m.kind == "group" && !is_moderator(m.role_of(cmd.by())))
              return make_error(domain_errc::forbidden,
                                "only the room's owner and moderators may invite");
            return join(m, cmd.user(), cmd.by());
          },
          [publish, cmd](const room_model&) { publish(member_joined_json(cmd.user(), cmd.by())); });

    if (messages::RoomLeave cmd; parse_as(env, cmd))
      return info_command(
          cmd.by(),
          [cmd](room_model& m) -> decided {
            if (auto err = may_see(m, cmd.by())) return err;
            if (m.member(cmd.by()) == nullptr) return no_events();
            if (m.kind == "direct")
              return make_error(domain_errc::conflict, "a direct room keeps its two members");
            if (m.owner == cmd.by())
              return make_error(domain_errc::conflict, "the owner cannot leave the room");
            messages::MemberLeft ev;
            ev.set_user(cmd.by());
            ev.set_at_ms(unix_ms_now());
            return one(ev);
          },
          [publish, revoke, cmd](const room_model&) {
            publish(R"({"kind":"member_left","user":")" + cmd.by() + "\"}");
            revoke(cmd.by());
          });

    if (messages::RoomSetRole cmd; parse_as(env, cmd))
      return info_command(cmd.by(), [cmd](room_model& m) -> decided {
        if (auto err = must_be_member(m, cmd.by())) return err;
        if (m.owner != cmd.by())
          return make_error(domain_errc::forbidden, "only the room's owner may set roles");
        if (cmd.role() != "moderator" && cmd.role() != "member")
          return make_error(domain_errc::validation, "role must be moderator or member");
        const auto* target = m.member(cmd.user());
        if (target == nullptr) return make_error(domain_errc::not_found, "no such member");
        if (cmd.user() == m.owner)
          return make_error(domain_errc::conflict, "the owner stays the owner");
        if (target->role == cmd.role()) return no_events();
        messages::MemberRoleSet ev;
        ev.set_user(cmd.user());
        ev.set_role(cmd.role());
        return one(ev);
      });

    if (messages::RoomBan cmd; parse_as(env, cmd))
      return info_command(
          cmd.by(),
          [cmd](room_model& m) -> decided {
            if (auto err = must_moderate(m, cmd.by())) return err;
            if (m.kind == "direct")
              return make_error(domain_errc::conflict, "a direct room keeps its two members");
            if (cmd.user() == cmd.by()) return make_error(domain_errc::validation, "not yourself");
            if (cmd.user() == m.owner)
              return make_error(domain_errc::forbidden, "the owner cannot be banned");
            if (m.role_of(cmd.user()) == "moderator" && m.owner != cmd.by())
              return make_error(domain_errc::forbidden, "only the owner may ban a moderator");
            bool is_banned = m.banned.count(cmd.user()) > 0;
            if (cmd.on() == is_banned) return no_events();
            if (!cmd.on()) {
              messages::MemberUnbanned ev;
              ev.set_user(cmd.user());
              return one(ev);
            }
            messages::MemberBanned ev;
            ev.set_user(cmd.user());
            ev.set_by(cmd.by());
            ev.set_at_ms(unix_ms_now());
            return one(ev);
          },
          [publish, revoke, cmd](const room_model&) {
            if (!cmd.on()) return;
            publish(R"({"kind":"member_left","user":")" + cmd.user() + R"(","by":")" + cmd.by() +
                    R"(","banned":true})");
            revoke(cmd.user());
          });

    if (messages::RoomMute cmd; parse_as(env, cmd)) {
      if (cmd.seconds() < 0 || cmd.seconds() > max_mute_s)
        return make_error(domain_errc::validation, "seconds must be 0..2592000");
      return info_command(cmd.by(), [cmd](room_model& m) -> decided {
        if (auto err = must_moderate(m, cmd.by())) return err;
        const auto* target = m.member(cmd.user());
        if (target == nullptr) return make_error(domain_errc::not_found, "no such member");
        if (is_moderator(target->role) && m.owner != cmd.by())
          return make_error(domain_errc::forbidden, "only the owner may mute a moderator");
        if (cmd.user() == m.owner)
          return make_error(domain_errc::forbidden, "the owner cannot be muted");
        messages::MemberMuted ev;
        ev.set_user(cmd.user());
        ev.set_until_ms(cmd.seconds() == 0 ? 0 : unix_ms_now() + cmd.seconds() * 1000);
        return one(ev);
      });
    }

    if (messages::RoomConfigure cmd; parse_as(env, cmd)) {
      if (cmd.has_slow_mode_s() && (cmd.slow_mode_s() < 0 || cmd.slow_mode_s() > max_slow_mode_s))
        return make_error(domain_errc::validation, "slow_mode_s must be 0..3600");
      return info_command(cmd.by(), [cmd](room_model& m) -> decided {
        if (auto err = must_moderate(m, cmd.by())) return err;
        if (m.kind == "direct" && cmd.has_name())
          return make_error(domain_errc::conflict, "a direct room has no name");
        messages::RoomConfigured ev;
        if (cmd.has_name() && cmd.name() != m.name) ev.set_name(cmd.name());
        if (cmd.has_slow_mode_s() && cmd.slow_mode_s() != m.slow_mode_s)
          ev.set_slow_mode_s(cmd.slow_mode_s());
        if (!ev.has_name() && !ev.has_slow_mode_s()) return no_events();
        return one(ev);
      });
    }

    if (messages::RoomRead cmd; parse_as(env, cmd))
      return info_command(cmd.by(), [cmd](room_model& m) -> decided {
        if (auto err = must_be_member(m, cmd.by())) return err;
        auto to = std::min(cmd.seq(), m.last_seq);
        if (to <= m.member(cmd.by())->read_seq) return no_events();
        messages::ReadMoved ev;
        ev.set_user(cmd.by());
        ev.set_seq(to);
        return one(ev);
      });

    if (messages::MessagePost cmd; parse_as(env, cmd)) {
      if (cmd.by().empty() || cmd.text().empty() ||
          cmd.text().size() > static_cast<size_t>(max_message_chars) * 4)
        return make_error(domain_errc::validation, "a message needs an author and text");
      auto duplicate = std::make_shared<int64_t>(0);
      return run_command(
          self,
          [self, cmd, duplicate](room_model& m) -> decided {
            *duplicate = 0;
            if (auto err = must_be_member(m, cmd.by())) return err;
            if (!cmd.client_id().empty()) {
              auto k = m.client_keys.find(client_key(cmd.by(), cmd.client_id()));
              if (k != m.client_keys.end()) {
                *duplicate = k->second;
                return no_events();
              }
            }
            const auto& me = *m.member(cmd.by());
            auto now = unix_ms_now();
            if (me.muted_until_ms > now)
              return make_error(domain_errc::forbidden,
                                "you are muted in this room until " + rfc3339(me.muted_until_ms));
            if (m.slow_mode_s > 0 && !is_moderator(me.role) &&
                now - me.last_post_ms < int64_t{m.slow_mode_s} * 1000)
              return make_error(
                  domain_errc::too_many_attempts,
                  "slow mode: one message every " + std::to_string(m.slow_mode_s) + " s");
            auto& st = self->state;
            if (auto it = st.recent_posts.find(cmd.by()); it != st.recent_posts.end()) {
              auto& recent = it->second;
              while (!recent.empty() && now - recent.front() >= st.message_window_ms)
                recent.pop_front();
              if (recent.empty())
                st.recent_posts.erase(it);
              else if (recent.size() >= static_cast<size_t>(st.message_limit))
                return make_error(domain_errc::too_many_attempts,
                                  "at most " + std::to_string(st.message_limit) + " messages in " +
                                      std::to_string(st.message_window_ms / 1000) +
                                      " s in one room");
            }
            if (cmd.reply_to() < 0 || cmd.reply_to() > m.last_seq)
              return make_error(domain_errc::validation, "reply_to is not a message of this room");
            messages::ChatPosted ev;
            ev.set_seq(m.last_seq + 1);
            ev.set_author(cmd.by());
            ev.set_text(cmd.text());
            ev.set_client_id(cmd.client_id());
            ev.set_reply_to(cmd.reply_to());
            ev.set_track(cmd.track());
            ev.set_at_ms(now);
            // Who hears of it: mentioned members, the author replied to, the other one of a
            // direct room (never the author itself).
            std::set<std::string> mentioned;
            for (const auto& u : cmd.mentions())
              if (u != cmd.by() && m.member(u) != nullptr && mentioned.insert(u).second)
                ev.add_mentioned(u);
            if (cmd.reply_to() > 0)
              if (auto* replied = m.held(cmd.reply_to()); replied && replied->author() != cmd.by())
                ev.set_reply_to_author(replied->author());
            if (m.kind == "direct")
              for (const auto& [u, _] : m.members)
                if (u != cmd.by()) ev.set_direct_to(u);
            return one(ev);
          },
          [self, cmd, duplicate, publish](const room_model& m) -> caf::expected<std::string> {
            auto& st = self->state;
            messages::MessagePostAnswer out;
            auto seq = *duplicate > 0 ? *duplicate : m.last_seq;
            auto* held = const_cast<room_model&>(m).held(seq);
            if (held != nullptr) {
              *out.mutable_message() = *held;
            } else {
              // A retry of a message that left the tail: its place is all it needs to know.
              out.mutable_message()->set_seq(seq);
              out.mutable_message()->set_room(m.id);
              out.mutable_message()->set_author(cmd.by());
              out.mutable_message()->set_client_id(cmd.client_id());
            }
            out.set_duplicate(*duplicate > 0);
            // Counted against the member's limit once committed (a post that failed or lost a
            // race is not). A duplicate newer than what this activation published was committed
            // by one that died before publishing it: published now (clients dedupe by seq).
            if (*duplicate == 0) st.recent_posts[cmd.by()].push_back(unix_ms_now());
            if (seq > st.last_published && seq == m.last_seq) {
              st.last_published = seq;
              publish(R"({"kind":"message","message":)" + proto_json(out.message()) + "}");
            }
            return out.SerializeAsString();
          });
    }

    if (messages::MessageEdit cmd; parse_as(env, cmd)) {
      if (cmd.text().empty() || cmd.text().size() > static_cast<size_t>(max_message_chars) * 4)
        return make_error(domain_errc::validation, "an edit needs text");
      auto changed = std::make_shared<bool>(false);
      return run_command(
          self,
          [cmd, changed](room_model& m) -> decided {
            if (auto err = must_be_member(m, cmd.by())) return err;
            if (cmd.seq() < 1 || cmd.seq() > m.last_seq)
              return make_error(domain_errc::not_found, "no such message");
            auto* held = m.held(cmd.seq());
            if (held == nullptr) return make_error(domain_errc::conflict, too_old("edited"));
            if (held->author() != cmd.by())
              return make_error(domain_errc::forbidden, "only its author may edit a message");
            if (held->deleted()) return make_error(domain_errc::not_found, "message deleted");
            *changed = held->text() != cmd.text();
            if (!*changed) return no_events();
            messages::ChatEdited ev;
            ev.set_seq(cmd.seq());
            ev.set_text(cmd.text());
            ev.set_at_ms(unix_ms_now());
            return one(ev);
          },
          [cmd, changed, publish](const room_model& m) -> caf::expected<std::string> {
            auto* held = const_cast<room_model&>(m).held(cmd.seq());
            if (held == nullptr) return make_error(domain_errc::not_found, "no such message");
            if (*changed)
              publish(R"({"kind":"message_edited","message":)" + proto_json(*held) + "}");
            return held->SerializeAsString();
          });
    }

    if (messages::MessageDelete cmd; parse_as(env, cmd)) {
      auto changed = std::make_shared<bool>(false);
      return run_command(
          self,
          [cmd, changed](room_model& m) -> decided {
            *changed = false;
            if (auto err = must_be_member(m, cmd.by())) return err;
            if (cmd.seq() < 1 || cmd.seq() > m.last_seq)
              return make_error(domain_errc::not_found, "no such message");
            auto* held = m.held(cmd.seq());
            bool moderator = is_moderator(m.role_of(cmd.by()));
            if (held == nullptr && !moderator)
              return make_error(domain_errc::conflict, too_old("deleted by their author"));
            if (held != nullptr && held->author() != cmd.by() && !moderator)
              return make_error(domain_errc::forbidden,
                                "only its author or a moderator may delete a message");
            if (held != nullptr && held->deleted()) return no_events();
            *changed = true;
            messages::ChatDeleted ev;
            ev.set_seq(cmd.seq());
            ev.set_by(cmd.by());
            ev.set_at_ms(unix_ms_now());
            return one(ev);
          },
          [cmd, changed, publish](const room_model& m) -> caf::expected<std::string> {
            if (*changed)
              publish(R"({"kind":"message_deleted","seq":")" + std::to_string(cmd.seq()) +
                      R"(","by":")" + cmd.by() + "\"}");
            messages::ChatMessage out;
            if (auto* held = const_cast<room_model&>(m).held(cmd.seq())) out = *held;
            out.set_seq(cmd.seq());
            out.set_room(m.id);
            out.set_deleted(true);
            out.clear_text();
            return out.SerializeAsString();
          });
    }

    if (messages::MessageReportCreate cmd; parse_as(env, cmd)) {
      if (cmd.reason().size() > 2000)
        return make_error(domain_errc::validation, "reason is too long");
      return run_command(
          self,
          [cmd](room_model& m) -> decided {
            if (auto err = must_be_member(m, cmd.by())) return err;
            if (cmd.seq() < 1 || cmd.seq() > m.last_seq)
              return make_error(domain_errc::not_found, "no such message");
            for (const auto& r : m.reports)
              if (r.seq() == cmd.seq() && r.by() == cmd.by()) return no_events();
            messages::ChatReported ev;
            ev.set_seq(cmd.seq());
            ev.set_by(cmd.by());
            ev.set_reason(cmd.reason());
            ev.set_at_ms(unix_ms_now());
            return one(ev);
          },
          [cmd](const room_model& m) -> caf::expected<std::string> {
            for (auto r = m.reports.rbegin(); r != m.reports.rend(); ++r)
              if (r->seq() == cmd.seq() && r->by() == cmd.by()) return r->SerializeAsString();
            return make_error(domain_errc::not_found, "no such report");
          });
    }

    if (messages::MessageReportsGet cmd; parse_as(env, cmd))
      return run_command(
          self,
          [cmd](room_model& m) -> decided {
            if (auto err = must_moderate(m, cmd.by())) return err;
            return no_events();
          },
          [](const room_model& m) -> caf::expected<std::string> {
            messages::MessageReportPage out;
            for (const auto& r : m.reports) *out.add_reports() = r;
            return out.SerializeAsString();
          });

    if (messages::RoomHistoryGet cmd; parse_as(env, cmd)) {
      if (cmd.limit() < 1 || cmd.limit() > max_history_page || cmd.before() < 0 || cmd.after() < 0)
        return make_error(domain_errc::validation, "limit must be 1..100, before and after >= 0");
      return run_command(
          self,
          [cmd](room_model& m) -> decided {
            if (auto err = must_be_member(m, cmd.by())) return err;
            return no_events();
          },
          [cmd](const room_model& m) -> caf::expected<std::string> {
            // The wanted range [lo, hi] of seqs, clamped to what exists.
            int64_t lo = 0;
            int64_t hi = 0;
            if (cmd.after() > 0) {
              lo = cmd.after() + 1;
              hi = std::min(m.last_seq, cmd.after() + cmd.limit());
            } else {
              hi = cmd.before() > 0 ? std::min(cmd.before() - 1, m.last_seq) : m.last_seq;
              lo = std::max<int64_t>(1, hi - cmd.limit() + 1);
            }
            messages::RoomHistory out;
            if (lo > hi) return out.SerializeAsString();
            int64_t held_from = m.tail.empty() ? m.last_seq + 1 : m.tail.front().seq();
            if (lo < held_from) {
              out.set_missing_from(lo);
              out.set_missing_to(std::min(hi, held_from - 1));
            }
            for (const auto& msg : m.tail)
              if (msg.seq() >= lo && msg.seq() <= hi) *out.add_messages() = msg;
            return out.SerializeAsString();
          });
    }

    if (messages::RoomMembersGet cmd; parse_as(env, cmd)) {
      if (cmd.limit() < 1 || cmd.limit() > 100)
        return make_error(domain_errc::validation, "limit must be 1..100");
      return run_command(
          self,
          [cmd](room_model& m) -> decided {
            if (auto err = must_be_member(m, cmd.by())) return err;
            return no_events();
          },
          [cmd](const room_model& m) -> caf::expected<std::string> {
            messages::RoomMemberPage out;
            auto it = m.members.upper_bound(cmd.cursor());
            auto now = unix_ms_now();
            for (; it != m.members.end() && out.members_size() < cmd.limit(); ++it) {
              auto* x = out.add_members();
              x->set_user(it->first);
              x->set_role(it->second.role);
              x->set_joined_at(rfc3339(it->second.joined_ms));
              if (it->second.muted_until_ms > now)
                x->set_muted_until(rfc3339(it->second.muted_until_ms));
            }
            if (it != m.members.end() && out.members_size() > 0)
              out.set_next_cursor(out.members(out.members_size() - 1).user());
            return out.SerializeAsString();
          });
    }

    return unknown_message(st.base, env);
  })};
}

}  // namespace

entity_factory room_factory() {
  return [](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(room, id, ctx);
  };
}

}  // namespace chorus::social
