#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "persistence/projection.hpp"

namespace chorus::persistence {

class pg_reader;

/// The projection `notify_triggers`: what should notify whom, from the events of every domain
/// in its database (a follow, a track becoming ready, a chat message that mentions, replies to
/// or is sent directly to someone), as rows of `notify_pending`. Runs on every database the
/// domains use; the row id is made from the cause, so a cause is one row however often it is
/// projected. The notifier (actors/social/notifier) turns rows into notifications.
projection notify_triggers_projection();

/// The projection `notify_delivery`: one row of `notify_deliveries` per external channel of
/// each new notification (`notifications/<user>` streams: the social domain's database).
projection notify_delivery_projection();

/// A row of `notify_pending`: a notification to make (`user` empty for "every follower of the
/// track's owner").
struct pending_notification {
  std::string id;
  std::string user;
  std::string type;
  std::string actor;
  std::string room;
  int64_t seq = 0;
  std::string track;
  std::string text;
  int attempts = 0;
  std::string claim;  ///< the claim that holds it: finishing or retrying needs it
};

/// A row of `notify_deliveries`: one notification to send over one channel.
struct pending_delivery {
  std::string notification_id;
  std::string channel;  ///< "email", "sms" or "push"
  std::string user;
  std::string type;
  std::string text;
  std::string address;  ///< the email address, phone number or push token
  int32_t quiet_start_min = 0;
  int32_t quiet_end_min = 0;
  int32_t utc_offset_min = 0;
  int64_t created_ms = 0;
  int attempts = 0;
  std::string claim;  ///< the claim that holds it: finishing or retrying needs it
};

/// The two work queues of the notifier in one database. Rows are claimed with a lease (the
/// claim moves them `lease` into the future and stamps them with a fresh claim token, FOR
/// UPDATE SKIP LOCKED), so several nodes' workers share a queue and a worker that dies mid-row
/// leaves it to the next claim once the lease runs out: at-least-once. Finishing or retrying a
/// row takes its claim token, so a worker whose lease ran out (and whose row another claimed)
/// changes nothing. Leases compare the nodes' clocks: keep them in sync (NTP). One connection,
/// one caller at a time; errors are values.
class notify_queue {
 public:
  explicit notify_queue(std::string dsn);
  ~notify_queue();
  notify_queue(const notify_queue&) = delete;
  notify_queue& operator=(const notify_queue&) = delete;

  caf::expected<std::vector<pending_notification>> claim_pending(size_t limit,
                                                                 std::chrono::milliseconds lease);
  caf::error finish_pending(const pending_notification& p);
  caf::error retry_pending(const pending_notification& p, int64_t next_ms);

  /// Due deliveries; an email of a direct message is due `digest_delay` after it was made, so
  /// that the ones that follow can go in the same email.
  caf::expected<std::vector<pending_delivery>> claim_deliveries(
      size_t limit, std::chrono::milliseconds lease, std::chrono::milliseconds digest_delay);
  /// Claims the other pending direct-message emails of `user` (for one digest email).
  caf::expected<std::vector<pending_delivery>> claim_digest(const std::string& user,
                                                            std::chrono::milliseconds lease);
  /// `status`: "delivered" or "failed" (with `error`); final.
  caf::error finish_delivery(const pending_delivery& d, const std::string& status,
                             const std::string& error = "");
  /// Tried and failed for now (`counts`: an attempt; false: only postponed, e.g. quiet hours).
  caf::error retry_delivery(const pending_delivery& d, int64_t next_ms, bool counts,
                            const std::string& error = "");

 private:
  std::unique_ptr<pg_reader> db_;
  // The queue's tables exist (the notify projection makes them): asked until they do, then
  // never again.
  bool pending_table_ = false;
  bool deliveries_table_ = false;
};

/// A notification's id: its type and a digest of its cause, so that the same cause is the same
/// notification (and the id is safe in a Message-ID or a header).
std::string notification_id(const std::string& type, const std::string& cause);

/// Quiet hours: when a delivery made at `now_ms` may go, given [start, end) minutes after local
/// midnight (local = UTC + offset; start == end: no quiet hours). `now_ms` when not quiet.
int64_t after_quiet_hours(int64_t now_ms, int32_t start_min, int32_t end_min, int32_t offset_min);

}  // namespace chorus::persistence
