#include "persistence/schema_migrator.hpp"

#include <algorithm>

#include <caf/error.hpp>

#include "messages/errors.hpp"
#include "persistence/journal_pg.hpp"

namespace chorus::persistence {

namespace {

constexpr std::chrono::milliseconds first_backoff{200};
constexpr std::chrono::milliseconds max_backoff{5000};

}  // namespace

schema_migrator::schema_migrator(std::vector<std::string> dsns) {
  for (auto& dsn : dsns) state_.emplace(std::move(dsn), std::string{"migrations not yet applied"});
}

schema_migrator::~schema_migrator() {
  stop();
}

void schema_migrator::start(log_fn log) {
  thread_ = std::thread{[this, log = std::move(log)] { run(log); }};
}

void schema_migrator::stop() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<std::string> schema_migrator::problem(const std::string& dsn) const {
  std::lock_guard<std::mutex> guard{mutex_};
  auto it = state_.find(dsn);
  if (it == state_.end()) return std::string{"not a database of this node"};
  return it->second;
}

void schema_migrator::run(const log_fn& log) {
  auto backoff = first_backoff;
  for (;;) {
    std::vector<std::string> todo;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      for (const auto& [dsn, problem] : state_)
        if (problem) todo.push_back(dsn);
    }
    if (todo.empty()) return;
    bool failed = false;
    for (const auto& dsn : todo) {
      auto applied = apply_migrations(dsn);
      std::optional<std::string> problem;
      if (!applied) {
        failed = true;
        problem = "migrations not yet applied: " + error_detail(applied.error());
      }
      {
        std::lock_guard<std::mutex> guard{mutex_};
        state_[dsn] = problem;
      }
      if (log) {
        if (problem)
          log(dsn, *problem, true);
        else
          log(dsn, "schema current (" + std::to_string(*applied) + " migrations applied)", false);
      }
    }
    if (!failed) return;
    std::unique_lock<std::mutex> lock{mutex_};
    if (wake_.wait_for(lock, backoff, [this] { return stopping_; })) return;
    backoff = std::min(backoff * 2, max_backoff);
  }
}

}  // namespace chorus::persistence
