#include "actors/social/notifier.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include <caf/scoped_actor.hpp>

#include "actors/audio/audio.hpp"
#include "actors/entity_messages.hpp"
#include "actors/social/errc.hpp"
#include "actors/social/social.hpp"
#include "common/clock.hpp"
#include "common/json_log.hpp"
#include "messages/audio.pb.h"
#include "messages/social.pb.h"
#include "persistence/follows.hpp"
#include "persistence/notify_store.hpp"
#include "persistence/presence.hpp"

namespace chorus::social {

namespace {

constexpr std::chrono::seconds ask_timeout{10};
/// Rows claimed at once, and for how long: a batch must be done well within its lease (each
/// row may take an ask, or an SMTP or HTTP call, of up to 10 s), or another node takes its
/// rows again (harmless: claims are checked, sends are deduplicated by id, but wasted).
constexpr size_t trigger_batch = 10;
constexpr std::chrono::milliseconds trigger_lease{std::chrono::minutes{3}};
constexpr size_t delivery_batch = 5;
constexpr std::chrono::milliseconds delivery_lease{std::chrono::minutes{2}};

std::string describe(const std::string& type) {
  if (type == "new_follower") return "You have a new follower";
  if (type == "new_track") return "A new track from an artist you follow";
  if (type == "mention") return "You were mentioned";
  if (type == "reply") return "Someone replied to you";
  return "A new direct message";
}

}  // namespace

struct notifier::impl {
  impl(caf::actor_system& sys, notifier_config cfg) : sys(sys), cfg(std::move(cfg)) {}

  caf::actor_system& sys;
  notifier_config cfg;
  std::mutex mtx;
  std::condition_variable cv;
  bool stopping = false;
  std::atomic<bool> stop_now{false};  ///< read between rows, so that stop() never waits long
  std::thread triggers;
  std::thread deliveries;

  /// Waits `d` unless stopping; false once stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock{mtx};
    return !cv.wait_for(lock, d, [this] { return stopping; });
  }

  [[nodiscard]] int64_t backoff_until(int attempts) const {
    auto wait = cfg.retry_base * (int64_t{1} << std::min(attempts, 20));
    return unix_ms_now() + std::min(wait, cfg.retry_max).count();
  }

  /// Asks entity (kind, id) and waits for the answer.
  caf::expected<std::string> ask(const std::string& kind, const std::string& id,
                                 const google::protobuf::Message& msg) {
    entity_envelope env;
    env.kind = kind;
    env.id = id;
    env.type = msg.GetDescriptor()->full_name();
    env.payload = msg.SerializeAsString();
    env.deadline_ms = unix_ms_now() + std::chrono::milliseconds{ask_timeout}.count();
    env.redeliverable = true;  // every command sent from here is idempotent
    caf::scoped_actor self{sys};
    caf::expected<std::string> out{caf::error{}};
    self->request(cfg.router, ask_timeout, std::move(env))
        .receive([&](std::string& bytes) { out = std::move(bytes); },
                 [&](caf::error& err) { out = std::move(err); });
    return out;
  }

  caf::error push(const std::string& user, messages::Notification n) {
    messages::NotifyPush cmd;
    *cmd.mutable_notification() = std::move(n);
    auto r = ask(notifications_kind, user, cmd);
    return r ? caf::error{} : r.error();
  }

  /// One pending row: a notification (or, for a new track, one per follower of its owner).
  caf::error make(const persistence::pending_notification& p,
                  persistence::follows_reader& follows) {
    messages::Notification n;
    n.set_type(p.type);
    n.set_actor(p.actor);
    n.set_room(p.room);
    n.set_seq(p.seq);
    n.set_track(p.track);
    n.set_text(p.text);
    if (p.type != "new_track") {
      // A direct message is news only to someone not reading along.
      if (p.type == "direct_message" && cfg.presence)
        if (auto status = cfg.presence->get(user_id{p.user});
            status && *status == persistence::presence_status::online)
          return {};
      n.set_id(p.id);
      return push(p.user, std::move(n));
    }
    messages::TrackInfo track;
    auto bytes = ask(audio::track_kind, p.track, messages::TrackGet{});
    if (!bytes) return bytes.error();
    if (!track.ParseFromString(*bytes)) return make_error(runtime_errc::bad_payload, "TrackInfo");
    if (track.visibility() != "public" || track.status() != "ready") return {};
    n.set_actor(track.owner());
    n.set_text(track.title());
    // One follower failing does not keep the others from hearing: the row is tried again
    // (the ones that got it already are not notified twice: same id).
    caf::error first_failure;
    std::string cursor;
    do {
      auto page = follows.list(track.owner(), true, cursor, 100);
      if (!page) return page.error();
      for (const auto& row : page->rows) {
        if (stop_now) return make_error(runtime_errc::overloaded, "stopping");
        n.set_id(persistence::notification_id("new_track", p.track + "/" + row.user_id));
        if (auto err = push(row.user_id, n); err && !first_failure) first_failure = err;
      }
      cursor = page->next_cursor;
    } while (!cursor.empty());
    return first_failure;
  }

  void run_triggers() {
    std::vector<std::unique_ptr<persistence::notify_queue>> queues;
    for (const auto& dsn : cfg.dsns)
      queues.push_back(std::make_unique<persistence::notify_queue>(dsn));
    persistence::follows_reader follows{cfg.user_dsn};
    for (;;) {
      size_t worked = 0;
      for (auto& q : queues) {
        auto rows = q->claim_pending(trigger_batch, trigger_lease);
        if (!rows) continue;  // the database is down: the next round tries again
        for (const auto& p : *rows) {
          if (stop_now) return;  // the rest come back when their lease runs out
          ++worked;
          auto err = make(p, follows);
          if (cfg.log != nullptr)
            cfg.log->write(err ? json_log::level::warn : json_log::level::info, "notify",
                           err ? "notification failed" : "notification made",
                           {{"notification", p.id},
                            {"user", p.user},
                            {"attempt", std::to_string(p.attempts + 1)},
                            {"error", error_detail(err)}});
          if (!err) {
            (void)q->finish_pending(p);
          } else if (p.attempts + 1 >= cfg.max_attempts || is(err, domain_errc::validation)) {
            (void)q->finish_pending(p);  // given up: it would never pass
          } else {
            (void)q->retry_pending(p, backoff_until(p.attempts));
          }
        }
      }
      if (!pause(worked > 0 ? std::chrono::milliseconds{0} : cfg.poll)) return;
    }
  }

  /// Sends one delivery (or the digest it heads); the error decides what happens to it.
  caf::error send(persistence::notify_queue& q, const persistence::pending_delivery& d,
                  std::vector<persistence::pending_delivery>& also) {
    if (d.channel == "email") {
      if (cfg.smtp.url.empty())
        return make_error(social_errc::delivery_failed_permanent, "no SMTP server configured");
      email e;
      e.to = d.address;
      e.notification_id = d.notification_id;
      e.subject = describe(d.type);
      e.text = d.text;
      if (d.type == "direct_message") {
        // One email for every direct message waiting for this user: those claimed with it,
        // and those not due yet.
        if (auto more = q.claim_digest(d.user, delivery_lease))
          also.insert(also.end(), more->begin(), more->end());
        if (!also.empty()) {
          e.subject = std::to_string(also.size() + 1) + " new direct messages";
          e.text = "- " + d.text;
          for (const auto& x : also) e.text += "\n- " + x.text;
        }
      }
      return send_email(cfg.smtp, e);
    }
    const auto& hook = d.channel == "sms" ? cfg.sms : cfg.push;
    if (hook.url.empty())
      return make_error(social_errc::delivery_failed_permanent, "no " + d.channel + " webhook");
    std::string body = R"({"id":")" + d.notification_id + R"(","type":")" + d.type + R"(","to":)";
    append_json_string(body, d.address);
    body += R"(,"title":)";
    append_json_string(body, describe(d.type));
    body += R"(,"text":)";
    append_json_string(body, d.text);
    body += "}";
    return post_webhook(hook, d.notification_id, body);
  }

  void run_deliveries() {
    persistence::notify_queue q{cfg.social_dsn};
    for (;;) {
      auto rows = q.claim_deliveries(delivery_batch, delivery_lease, cfg.digest_delay);
      size_t worked = rows ? rows->size() : 0;
      // A user's direct-message emails claimed together go in the first one's digest.
      std::map<std::string, std::vector<persistence::pending_delivery>> digests;
      std::vector<persistence::pending_delivery> batch;
      for (auto& d : rows ? *rows : std::vector<persistence::pending_delivery>{}) {
        bool digest = d.channel == "email" && d.type == "direct_message";
        if (!digest) {
          batch.push_back(std::move(d));
          continue;
        }
        auto& group = digests[d.user];
        if (group.empty()) batch.push_back(d);
        group.push_back(std::move(d));
      }
      for (const auto& d : batch) {
        if (stop_now) return;
        std::vector<persistence::pending_delivery> also;
        if (d.channel == "email" && d.type == "direct_message")
          also.assign(digests[d.user].begin() + 1, digests[d.user].end());
        auto now = unix_ms_now();
        auto allowed = persistence::after_quiet_hours(now, d.quiet_start_min, d.quiet_end_min,
                                                      d.utc_offset_min);
        if (allowed > now) {
          also.insert(also.begin(), d);
          for (const auto& x : also) (void)q.retry_delivery(x, allowed, false, "quiet hours");
          continue;
        }
        auto err = send(q, d, also);
        if (cfg.log != nullptr)
          cfg.log->write(err ? json_log::level::warn : json_log::level::info, "notify",
                         err ? "delivery failed" : "delivered",
                         {{"notification", d.notification_id},
                          {"channel", d.channel},
                          {"with", std::to_string(also.size())},
                          {"attempt", std::to_string(d.attempts + 1)},
                          {"error", error_detail(err)}});
        also.insert(also.begin(), d);
        for (const auto& x : also) {
          if (!err)
            (void)q.finish_delivery(x, "delivered");
          else if (!is_retryable(err) || x.attempts + 1 >= cfg.max_attempts)
            (void)q.finish_delivery(x, "failed", error_detail(err));
          else
            (void)q.retry_delivery(x, backoff_until(x.attempts), true, error_detail(err));
        }
      }
      if (!pause(worked > 0 ? std::chrono::milliseconds{0} : cfg.poll)) return;
    }
  }
};

notifier::notifier(caf::actor_system& sys, notifier_config cfg)
    : impl_(std::make_unique<impl>(sys, std::move(cfg))) {}

notifier::~notifier() {
  stop();
}

void notifier::start() {
  impl_->triggers = std::thread{[this] { impl_->run_triggers(); }};
  impl_->deliveries = std::thread{[this] { impl_->run_deliveries(); }};
}

void notifier::stop() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->stopping = true;
    impl_->stop_now = true;
  }
  impl_->cv.notify_all();
  if (impl_->triggers.joinable()) impl_->triggers.join();
  if (impl_->deliveries.joinable()) impl_->deliveries.join();
}

}  // namespace chorus::social
