#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/social/channels.hpp"
#include "messages/envelope.hpp"

namespace chorus {
class json_log;
}

namespace chorus::persistence {
class presence_store;
}

namespace chorus::social {

/// What the notifier needs (cluster.conf's chorus.notify and the node's services).
struct notifier_config {
  /// Every database the domains use: each has a `notify_pending` queue.
  std::vector<std::string> dsns;
  /// The social domain's database: the `notify_deliveries` queue.
  std::string social_dsn;
  /// The user domain's database: whom a new track's owner is followed by.
  std::string user_dsn;
  /// Where entities are asked (the node's router); set before start().
  envelope_handler router;
  /// A direct message notifies only a recipient who is not online; null: always.
  std::shared_ptr<persistence::presence_store> presence;
  /// Email (url empty: no email), SMS and push provider webhooks (url empty: off).
  smtp_config smtp;
  webhook_config sms;
  webhook_config push;
  /// How long an email of a direct message waits for the next ones (one digest email).
  std::chrono::milliseconds digest_delay{60000};
  /// Retries: base * 2^attempts, at most `retry_max`; `max_attempts` tries in all.
  std::chrono::milliseconds retry_base{1000};
  std::chrono::milliseconds retry_max{600000};
  int max_attempts = 10;
  /// Where deliveries are logged (one line each); may be null.
  json_log* log = nullptr;
  /// How often the queues are looked at when they were empty.
  std::chrono::milliseconds poll{250};
};

/// Turns what happened into notifications and notifications into emails and webhook calls,
/// from two queues in PostgreSQL filled by projections (persistence/notify_store): at least
/// once, with retries and backoff, never on the path of the action that caused them.
///   - `notify_pending` rows (a follow, a new track, a mention, a reply, a direct message) become
///     NotifyPush commands to the user's notifications entity (idempotent by id); a new track
///     goes to every follower of its owner; a direct message only to a recipient offline.
///   - `notify_deliveries` rows go out over their channel: email (a direct message's emails
///     coalesced into one digest), SMS and push webhooks; quiet hours postpone them.
/// Several nodes may run one: rows are claimed with leases. Two threads of its own (blocking
/// PostgreSQL, SMTP and HTTP); owned by the node's main().
class notifier {
 public:
  notifier(caf::actor_system& sys, notifier_config cfg);
  ~notifier();
  notifier(const notifier&) = delete;
  notifier& operator=(const notifier&) = delete;

  void start();
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace chorus::social
