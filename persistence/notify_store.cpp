#include "persistence/notify_store.hpp"

#include <algorithm>
#include <cstdio>
#include <random>
#include <string_view>

#include "common/clock.hpp"
#include "messages/audio.pb.h"
#include "messages/social.pb.h"
#include "messages/users.pb.h"
#include "persistence/pg_reader.hpp"
#include "persistence/sha256.hpp"

namespace chorus::persistence {

namespace {

std::string num(int64_t x) {
  return std::to_string(x);
}

/// The first `n` characters of UTF-8 `s` (never cutting one in half).
std::string first_chars(const std::string& s, size_t n) {
  size_t i = 0;
  for (size_t chars = 0; i < s.size() && chars < n; ++chars) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  }
  return s.substr(0, i);
}

caf::error add_pending(sql_tx& tx, const pending_notification& p, int64_t at_ms) {
  return sql_done(tx.exec(
      "INSERT INTO notify_pending (id, user_id, type, actor, room, seq, track, body, created_ms, "
      "attempts, next_ms) VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, $8, $9::bigint, 0, "
      "$9::bigint) ON CONFLICT (id) DO NOTHING",
      {p.id, p.user, p.type, p.actor, p.room, num(p.seq), p.track, p.text, num(at_ms)}));
}

caf::error apply_trigger(const stored_event& e, sql_tx& tx) {
  auto cause = e.stream + "@" + num(e.version);
  if (e.stream.rfind("user/", 0) == 0) {
    messages::UserFollowed ev;
    if (!event_as(e, ev)) return {};
    pending_notification p;
    p.id = notification_id("new_follower", cause);
    p.user = ev.target();
    p.type = "new_follower";
    p.actor = e.stream.substr(5);
    return add_pending(tx, p, ev.at_ms());
  }
  if (e.stream.rfind("track/", 0) == 0) {
    messages::TrackReady ev;
    if (!event_as(e, ev)) return {};
    // Every follower of its owner: the notifier looks them up (and whether it is public).
    pending_notification p;
    p.id = notification_id("new_track", e.stream);
    p.type = "new_track";
    p.track = e.stream.substr(6);
    return add_pending(tx, p, ev.at_ms() > 0 ? ev.at_ms() : unix_ms_now());
  }
  if (e.stream.rfind("room/", 0) == 0) {
    messages::ChatPosted ev;
    if (!event_as(e, ev)) return {};
    auto room = e.stream.substr(5);
    auto one = [&](const std::string& user, const char* type) {
      pending_notification p;
      p.id = notification_id(type, e.stream + "@" + num(ev.seq()) + "/" + user);
      p.user = user;
      p.type = type;
      p.actor = ev.author();
      p.room = room;
      p.seq = ev.seq();
      p.text = first_chars(ev.text(), 200);
      return add_pending(tx, p, ev.at_ms());
    };
    for (const auto& u : ev.mentioned())
      if (auto err = one(u, "mention")) return err;
    bool mentioned = std::find(ev.mentioned().begin(), ev.mentioned().end(),
                               ev.reply_to_author()) != ev.mentioned().end();
    if (!ev.reply_to_author().empty() && !mentioned)
      if (auto err = one(ev.reply_to_author(), "reply")) return err;
    if (!ev.direct_to().empty())
      if (auto err = one(ev.direct_to(), "direct_message")) return err;
  }
  return {};
}

caf::error apply_delivery(const stored_event& e, sql_tx& tx) {
  if (e.stream.rfind("notifications/", 0) != 0) return {};
  messages::NotificationAdded ev;
  if (!event_as(e, ev)) return {};
  const auto& n = ev.notification();
  for (const auto& channel : ev.channels()) {
    const auto& address = channel == "email" ? ev.email()
                          : channel == "sms" ? ev.phone()
                                             : ev.push_token();
    if (auto err = sql_done(tx.exec(
            "INSERT INTO notify_deliveries (notification_id, channel, user_id, type, body, "
            "address, quiet_start_min, quiet_end_min, utc_offset_min, created_ms, attempts, "
            "next_ms, status) VALUES ($1, $2, $3, $4, $5, $6, $7::int, $8::int, $9::int, "
            "$10::bigint, 0, $10::bigint, 'pending') ON CONFLICT DO NOTHING",
            {n.id(), channel, e.stream.substr(14), n.type(), n.text(), address,
             num(ev.quiet_start_min()), num(ev.quiet_end_min()), num(ev.utc_offset_min()),
             num(ev.at_ms())})))
      return err;
  }
  return {};
}

pending_delivery delivery_of(const pqxx::row& row) {
  pending_delivery d;
  d.notification_id = row[0].as<std::string>();
  d.channel = row[1].as<std::string>();
  d.user = row[2].as<std::string>();
  d.type = row[3].as<std::string>();
  d.text = row[4].as<std::string>();
  d.address = row[5].as<std::string>();
  d.quiet_start_min = row[6].as<int32_t>();
  d.quiet_end_min = row[7].as<int32_t>();
  d.utc_offset_min = row[8].as<int32_t>();
  d.created_ms = row[9].as<int64_t>();
  d.attempts = row[10].as<int>();
  d.claim = row[11].as<std::string>();
  return d;
}

constexpr const char* delivery_columns =
    "notification_id, channel, user_id, type, body, address, quiet_start_min, quiet_end_min, "
    "utc_offset_min, created_ms, attempts, claim";

/// A claim token: 128 random bits as hex.
std::string new_claim() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

std::string notification_id(const std::string& type, const std::string& cause) {
  return type + "-" + sha256_hex(cause).substr(0, 40);
}

projection notify_triggers_projection() {
  projection p;
  p.name = "notify_triggers";
  p.schema = {
      "CREATE TABLE IF NOT EXISTS notify_pending (id text PRIMARY KEY, user_id text NOT NULL, "
      "type text NOT NULL, actor text NOT NULL, room text NOT NULL, seq bigint NOT NULL, track "
      "text NOT NULL, body text NOT NULL, created_ms bigint NOT NULL, attempts integer NOT NULL, "
      "next_ms bigint NOT NULL)",
      "CREATE INDEX IF NOT EXISTS notify_pending_due ON notify_pending (next_ms)",
      "ALTER TABLE notify_pending ADD COLUMN IF NOT EXISTS claim text NOT NULL DEFAULT ''"};
  p.reset = [](sql_tx& tx) { return sql_done(tx.exec("DELETE FROM notify_pending")); };
  p.apply = apply_trigger;
  return p;
}

projection notify_delivery_projection() {
  projection p;
  p.name = "notify_delivery";
  p.schema = {
      "CREATE TABLE IF NOT EXISTS notify_deliveries (notification_id text NOT NULL, channel text "
      "NOT NULL, user_id text NOT NULL, type text NOT NULL, body text NOT NULL, address text NOT "
      "NULL, quiet_start_min integer NOT NULL, quiet_end_min integer NOT NULL, utc_offset_min "
      "integer NOT NULL, created_ms bigint NOT NULL, attempts integer NOT NULL, next_ms bigint "
      "NOT NULL, status text NOT NULL, error text NOT NULL DEFAULT '', done_ms bigint, PRIMARY "
      "KEY (notification_id, channel))",
      "CREATE INDEX IF NOT EXISTS notify_deliveries_due ON notify_deliveries (next_ms) WHERE "
      "status = 'pending'",
      "ALTER TABLE notify_deliveries ADD COLUMN IF NOT EXISTS claim text NOT NULL DEFAULT ''"};
  // A rebuild must not send anything twice: delivered rows stay.
  p.reset = [](sql_tx& tx) {
    return sql_done(tx.exec("DELETE FROM notify_deliveries WHERE status = 'pending'"));
  };
  p.apply = apply_delivery;
  return p;
}

notify_queue::notify_queue(std::string dsn) : db_(std::make_unique<pg_reader>(dsn)) {}

notify_queue::~notify_queue() = default;

namespace {

// Whether `table` exists; once it has, `known` spares the question (tables are not dropped).
bool has_table(pqxx::transaction_base& tx, const char* table, bool& known) {
  if (!known)
    known =
        tx.exec_params("SELECT to_regclass($1) IS NOT NULL", std::string{table})[0][0].as<bool>();
  return known;
}

}  // namespace

caf::expected<std::vector<pending_notification>> notify_queue::claim_pending(
    size_t limit, std::chrono::milliseconds lease) {
  return db_->with([&](pqxx::connection& c) -> caf::expected<std::vector<pending_notification>> {
    // One statement in autocommit: a poll that finds nothing is one round trip, not four.
    pqxx::nontransaction tx{c};
    std::vector<pending_notification> out;
    if (!has_table(tx, "notify_pending", pending_table_)) return out;
    auto now = unix_ms_now();
    auto rows = tx.exec_params(
        "UPDATE notify_pending SET next_ms = $2::bigint, claim = $4 WHERE id IN (SELECT id FROM "
        "notify_pending WHERE next_ms <= $1::bigint ORDER BY next_ms LIMIT $3 FOR UPDATE SKIP "
        "LOCKED) RETURNING id, user_id, type, actor, room, seq, track, body, attempts, claim",
        now, now + lease.count(), static_cast<int64_t>(limit), new_claim());
    for (const auto& row : rows) {
      pending_notification p;
      p.id = row[0].as<std::string>();
      p.user = row[1].as<std::string>();
      p.type = row[2].as<std::string>();
      p.actor = row[3].as<std::string>();
      p.room = row[4].as<std::string>();
      p.seq = row[5].as<int64_t>();
      p.track = row[6].as<std::string>();
      p.text = row[7].as<std::string>();
      p.attempts = row[8].as<int>();
      p.claim = row[9].as<std::string>();
      out.push_back(std::move(p));
    }
    return out;
  });
}

caf::error notify_queue::finish_pending(const pending_notification& p) {
  auto r = db_->with([&](pqxx::connection& c) -> caf::expected<bool> {
    pqxx::work tx{c};
    tx.exec_params("DELETE FROM notify_pending WHERE id = $1 AND claim = $2", p.id, p.claim);
    tx.commit();
    return true;
  });
  return r ? caf::error{} : r.error();
}

caf::error notify_queue::retry_pending(const pending_notification& p, int64_t next_ms) {
  auto r = db_->with([&](pqxx::connection& c) -> caf::expected<bool> {
    pqxx::work tx{c};
    tx.exec_params(
        "UPDATE notify_pending SET attempts = attempts + 1, next_ms = $2::bigint WHERE id = $1 "
        "AND claim = $3",
        p.id, next_ms, p.claim);
    tx.commit();
    return true;
  });
  return r ? caf::error{} : r.error();
}

caf::expected<std::vector<pending_delivery>> notify_queue::claim_deliveries(
    size_t limit, std::chrono::milliseconds lease, std::chrono::milliseconds digest_delay) {
  return db_->with([&](pqxx::connection& c) -> caf::expected<std::vector<pending_delivery>> {
    pqxx::nontransaction tx{c};
    std::vector<pending_delivery> out;
    if (!has_table(tx, "notify_deliveries", deliveries_table_)) return out;
    auto now = unix_ms_now();
    auto rows = tx.exec_params(
        std::string{"UPDATE notify_deliveries SET next_ms = $2::bigint, claim = $5 WHERE "
                    "(notification_id, "
                    "channel) IN (SELECT notification_id, channel FROM notify_deliveries WHERE "
                    "status = 'pending' AND next_ms <= $1::bigint AND NOT (channel = 'email' AND "
                    "type = 'direct_message' AND created_ms > $4::bigint) ORDER BY next_ms LIMIT "
                    "$3 FOR UPDATE SKIP LOCKED) RETURNING "} +
            delivery_columns,
        now, now + lease.count(), static_cast<int64_t>(limit), now - digest_delay.count(),
        new_claim());
    for (const auto& row : rows) out.push_back(delivery_of(row));
    return out;
  });
}

caf::expected<std::vector<pending_delivery>> notify_queue::claim_digest(
    const std::string& user, std::chrono::milliseconds lease) {
  return db_->with([&](pqxx::connection& c) -> caf::expected<std::vector<pending_delivery>> {
    pqxx::work tx{c};
    auto now = unix_ms_now();
    auto rows = tx.exec_params(
        std::string{"UPDATE notify_deliveries SET next_ms = $2::bigint, claim = $4 WHERE "
                    "(notification_id, "
                    "channel) IN (SELECT notification_id, channel FROM notify_deliveries WHERE "
                    "status = 'pending' AND channel = 'email' AND type = 'direct_message' AND "
                    "user_id = $1 AND next_ms <= $3::bigint FOR UPDATE SKIP LOCKED) RETURNING "} +
            delivery_columns,
        user, now + lease.count(), now, new_claim());
    tx.commit();
    std::vector<pending_delivery> out;
    for (const auto& row : rows) out.push_back(delivery_of(row));
    return out;
  });
}

caf::error notify_queue::finish_delivery(const pending_delivery& d, const std::string& status,
                                         const std::string& error) {
  auto r = db_->with([&](pqxx::connection& c) -> caf::expected<bool> {
    pqxx::work tx{c};
    tx.exec_params(
        "UPDATE notify_deliveries SET status = $3, error = $4, done_ms = $5::bigint, attempts = "
        "attempts + 1 WHERE notification_id = $1 AND channel = $2 AND claim = $6",
        d.notification_id, d.channel, status, error, unix_ms_now(), d.claim);
    tx.commit();
    return true;
  });
  return r ? caf::error{} : r.error();
}

caf::error notify_queue::retry_delivery(const pending_delivery& d, int64_t next_ms, bool counts,
                                        const std::string& error) {
  auto r = db_->with([&](pqxx::connection& c) -> caf::expected<bool> {
    pqxx::work tx{c};
    tx.exec_params(
        "UPDATE notify_deliveries SET next_ms = $3::bigint, attempts = attempts + $4::int, error "
        "= $5 WHERE notification_id = $1 AND channel = $2 AND claim = $6",
        d.notification_id, d.channel, next_ms, counts ? 1 : 0, error, d.claim);
    tx.commit();
    return true;
  });
  return r ? caf::error{} : r.error();
}

int64_t after_quiet_hours(int64_t now_ms, int32_t start_min, int32_t end_min, int32_t offset_min) {
  if (start_min == end_min) return now_ms;
  constexpr int64_t day_ms = 24LL * 3600 * 1000;
  auto local = now_ms + int64_t{offset_min} * 60000;
  auto midnight = local - ((local % day_ms) + day_ms) % day_ms;
  auto minute = (local - midnight) / 60000;
  bool quiet = start_min < end_min ? minute >= start_min && minute < end_min
                                   : minute >= start_min || minute < end_min;
  if (!quiet) return now_ms;
  // The next local `end_min` (today's, or tomorrow's when it has passed).
  auto end = midnight + int64_t{end_min} * 60000;
  if (end <= local) end += day_ms;
  return end - int64_t{offset_min} * 60000;
}

}  // namespace chorus::persistence
