#include "tests/support/webhook_receiver.hpp"

#include <sstream>
#include <stdexcept>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace chorus::test {

using namespace std::chrono_literals;

webhook_receiver::webhook_receiver(options opts) : port_(free_port()) {
  std::vector<std::string> argv{
      "python3",      std::string{CHORUS_TEST_SOURCE_DIR} + "/tests/fakes/webhook_receiver.py",
      "--port",       std::to_string(port_),
      "--secret",     opts.secret,
      "--record",     dir_.path() + "/deliveries.jsonl",
      "--fail-first", std::to_string(opts.fail_first)};
  process_ = std::make_unique<child_process>(argv, dir_.path() + "/receiver.log");
  bool up = eventually(
      15s, [&] { return log().find("listening on") != std::string::npos || !process_->running(); });
  if (!up || !process_->running())
    throw std::runtime_error("webhook receiver did not start on port " + std::to_string(port_) +
                             ": " + log());
}

webhook_receiver::~webhook_receiver() = default;

std::vector<webhook_receiver::delivery> webhook_receiver::deliveries() const {
  std::vector<delivery> out;
  std::istringstream lines{read_file(dir_.path() + "/deliveries.jsonl")};
  std::string line;
  // A line still being written has no newline yet and fails to parse: it is left for next time.
  while (std::getline(lines, line)) {
    if (lines.eof()) break;
    google::protobuf::Struct s;
    if (!google::protobuf::util::JsonStringToMessage(line, &s).ok())
      throw std::runtime_error("webhook receiver wrote an unreadable line: " + line);
    const auto& f = s.fields();
    delivery d;
    if (auto it = f.find("id"); it != f.end()) d.id = it->second.string_value();
    if (auto it = f.find("body"); it != f.end()) d.body = it->second.string_value();
    if (auto it = f.find("timestamp"); it != f.end())
      d.timestamp = static_cast<int64_t>(it->second.number_value());
    out.push_back(std::move(d));
  }
  return out;
}

std::string webhook_receiver::log() const {
  return read_file(dir_.path() + "/receiver.log");
}

}  // namespace chorus::test
