#include "common/json_log.hpp"

#include <chrono>
#include <ctime>

namespace chorus {

namespace {

const char* level_name(json_log::level lvl) {
  switch (lvl) {
    case json_log::level::debug:
      return "debug";
    case json_log::level::info:
      return "info";
    case json_log::level::warn:
      return "warn";
    case json_log::level::error:
      return "error";
  }
  return "info";
}

// RFC 3339 UTC with milliseconds, e.g. 2026-11-25T11:45:05.123Z.
std::string now_rfc3339() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms));
  return buf;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

json_log::json_log(std::string node) : node_(std::move(node)), out_(stderr) {}

json_log::~json_log() {
  if (out_ != stderr) std::fclose(out_);
}

bool json_log::open(const std::string& path) {
  auto* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) return false;
  std::lock_guard<std::mutex> guard{mtx_};
  if (out_ != stderr) std::fclose(out_);
  out_ = f;
  return true;
}

void json_log::write(level lvl, std::string_view component, std::string_view msg,
                     std::initializer_list<field> fields) {
  std::string line;
  line.reserve(128);
  line += "{\"ts\":";
  append_json_string(line, now_rfc3339());
  line += ",\"level\":";
  append_json_string(line, level_name(lvl));
  line += ",\"node\":";
  append_json_string(line, node_);
  line += ",\"component\":";
  append_json_string(line, component);
  line += ",\"msg\":";
  append_json_string(line, msg);
  for (const auto& [key, value] : fields) {
    line += ',';
    append_json_string(line, key);
    line += ':';
    append_json_string(line, value);
  }
  line += "}\n";
  std::lock_guard<std::mutex> guard{mtx_};
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace chorus
