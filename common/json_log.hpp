#pragma once

#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace chorus {

/// Writes one JSON object per line: {"ts","level","node","component","msg", extra fields...}.
/// Owned by a process's main(); components receive a reference. Thread-safe: every line is
/// written and flushed under one mutex, so lines from different threads never interleave.
class json_log {
 public:
  enum class level { debug, info, warn, error };

  using field = std::pair<std::string_view, std::string>;

  /// Logs to stderr until open() succeeds.
  explicit json_log(std::string node);
  ~json_log();

  json_log(const json_log&) = delete;
  json_log& operator=(const json_log&) = delete;

  /// Appends to `path`, creating it. Returns false (and keeps logging to stderr) on failure.
  bool open(const std::string& path);

  void write(level lvl, std::string_view component, std::string_view msg,
             std::initializer_list<field> fields = {});

  void info(std::string_view component, std::string_view msg,
            std::initializer_list<field> fields = {}) {
    write(level::info, component, msg, fields);
  }
  void warn(std::string_view component, std::string_view msg,
            std::initializer_list<field> fields = {}) {
    write(level::warn, component, msg, fields);
  }
  void error(std::string_view component, std::string_view msg,
             std::initializer_list<field> fields = {}) {
    write(level::error, component, msg, fields);
  }

 private:
  std::string node_;
  std::mutex mtx_;
  std::FILE* out_ = nullptr;  // owned unless it is stderr
};

/// Appends `s` to `out` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view s);

}  // namespace chorus
