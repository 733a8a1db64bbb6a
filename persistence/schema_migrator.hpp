#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace chorus::persistence {

/// Applies the migrations to every database a node uses, at node start, on a thread of its own:
/// retried with backoff while PostgreSQL is down or another node holds the migration lock, so
/// the node starts either way. Until a database's schema is current the node is not ready
/// (/readyz names it), and a test or operator can wait for that instead of racing the first
/// request against another node's migration.
class schema_migrator {
 public:
  /// Told the outcome of each attempt: the database, what happened, whether it failed.
  using log_fn = std::function<void(const std::string& dsn, const std::string& what, bool error)>;

  explicit schema_migrator(std::vector<std::string> dsns);
  ~schema_migrator();
  schema_migrator(const schema_migrator&) = delete;
  schema_migrator& operator=(const schema_migrator&) = delete;

  /// `log` is called from the migrator's thread.
  void start(log_fn log = {});
  void stop();

  /// Nothing when `dsn`'s schema is current; otherwise why not (the last error, or "pending").
  [[nodiscard]] std::optional<std::string> problem(const std::string& dsn) const;

 private:
  void run(const log_fn& log);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::map<std::string, std::optional<std::string>> state_;  // dsn -> problem
  std::thread thread_;
};

}  // namespace chorus::persistence
