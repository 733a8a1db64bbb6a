#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace chorus::test {

/// A child process started by a test. Killed (SIGKILL) and reaped on destruction if still alive.
class child_process {
 public:
  /// Starts argv[0] (searched in PATH when it has no slash) with stdout and stderr appended to
  /// `output_path`.
  child_process(const std::vector<std::string>& argv, const std::string& output_path);
  ~child_process();

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  void signal(int sig) const;

  /// Waits until the process exits; its exit code (128+N when killed by signal N), or nothing
  /// when it is still running at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  [[nodiscard]] bool running();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// Runs argv to completion with a deadline; returns (exit code, combined output).
struct run_result {
  int exit_code = -1;
  std::string output;
};
run_result run(const std::vector<std::string>& argv,
               std::chrono::milliseconds timeout = std::chrono::seconds{30});

/// A TCP port on 127.0.0.1 that was free a moment ago, chosen at random below the ephemeral
/// range so that outgoing connections cannot take it before a node binds it.
uint16_t free_port();

/// Polls `predicate` every 20 ms until it holds or `timeout` passes. Returns whether it held.
/// Tests wait on conditions with deadlines, never for a guessed time.
template <class Predicate>
bool eventually(std::chrono::milliseconds timeout, Predicate predicate);

/// A fresh directory under $TMPDIR, removed on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

}  // namespace chorus::test

#include <thread>

template <class Predicate>
bool chorus::test::eventually(std::chrono::milliseconds timeout, Predicate predicate) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}
