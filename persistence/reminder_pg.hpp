#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace chorus::persistence {

/// One row of the `reminders` table.
struct stored_reminder {
  std::string kind;          ///< the entity's kind
  std::string id;            ///< the entity's id
  std::string name;          ///< the reminder's name, unique per entity
  int64_t due_at_us = 0;     ///< due time (or, once claimed, the lease's end), Unix microseconds
  std::string payload_type;  ///< full protobuf name of `payload`
  std::string payload;       ///< serialized protobuf message delivered to the entity
  int32_t attempts = 0;      ///< claims since the reminder was (re)scheduled
};

/// Durable reminders on PostgreSQL (table `reminders`, migrations/0003_reminders.sql). One
/// connection; not thread-safe: owned by one thread (the reminder actor's worker, or a test).
/// Connects lazily, applies pending migrations before its first connection (so reminders work
/// whichever of the node's connections comes first), reconnects after a failure. libpqxx
/// exceptions never leave this class: failures are `errc` values (`postgres_unavailable`,
/// `storage_error`). Due times are compared with PostgreSQL's clock, the one clock all nodes
/// share.
class reminder_pg {
 public:
  explicit reminder_pg(std::string dsn);
  ~reminder_pg();
  reminder_pg(const reminder_pg&) = delete;
  reminder_pg& operator=(const reminder_pg&) = delete;

  /// Stores the reminder `(kind, id, name)` due at `due_unix_ms`, replacing one of the same
  /// name (its due time, payload, and attempts, which restart at 0). Durable once it returns.
  caf::error schedule(const std::string& kind, const std::string& id, const std::string& name,
                      int64_t due_unix_ms, const std::string& payload_type,
                      const std::string& payload);

  /// Deletes the reminder; answers whether there was one.
  caf::expected<bool> cancel(const std::string& kind, const std::string& id,
                             const std::string& name);

  /// Claims up to `limit` due reminders in one transaction: rows locked by another claimer are
  /// skipped (`FOR UPDATE SKIP LOCKED`), and each claimed row's due time moves to now + `lease`
  /// with attempts + 1 before the transaction commits. Two claimers never get the same row while
  /// its lease runs; when the lease ends without `complete`, the row is due again. The rows come
  /// back as claimed (due_at_us = the lease's end, attempts counted).
  caf::expected<std::vector<stored_reminder>> claim_due(size_t limit,
                                                        std::chrono::milliseconds lease);

  /// Deletes a delivered reminder, but only if it still carries the claim `claimed_due_at_us`
  /// (the lease's end returned by claim_due): a reminder rescheduled since the claim survives.
  /// Answers whether it was deleted.
  caf::expected<bool> complete(const std::string& kind, const std::string& id,
                               const std::string& name, int64_t claimed_due_at_us);

  /// The reminder as stored, or nothing (for tests and inspection).
  caf::expected<std::optional<stored_reminder>> find(const std::string& kind, const std::string& id,
                                                     const std::string& name);

 private:
  caf::error connect();
  template <class T>
  T checked(T result);

  struct connection;  // wraps pqxx::connection, so no header above persistence/ sees libpqxx
  std::string dsn_;
  std::unique_ptr<connection> conn_;
  bool migrated_ = false;
};

}  // namespace chorus::persistence
