#include "tests/support/smtp_sink.hpp"

#include <filesystem>
#include <stdexcept>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace chorus::test {

using namespace std::chrono_literals;

namespace {

std::string tools_dir() {
  return std::string{CHORUS_TEST_SOURCE_DIR} + "/.chorus/tools";
}

std::string string_field(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? std::string{} : it->second.string_value();
}

}  // namespace

smtp_sink::smtp_sink(options opts) : port_(free_port()) {
  auto module = tools_dir() + "/node_modules/smtp-server/package.json";
  if (!std::filesystem::exists(module))
    throw std::runtime_error("smtp-server is not installed in " + tools_dir() +
                             ": run scripts/bootstrap (it installs the pinned smtp-server)");
  std::filesystem::create_directories(dir_.path() + "/mail");
  std::vector<std::string> argv{
      "node",    std::string{CHORUS_TEST_SOURCE_DIR} + "/tests/fakes/smtp_sink.js",
      "--port",  std::to_string(port_),
      "--dir",   dir_.path() + "/mail",
      "--tools", tools_dir()};
  for (const auto& a : opts.reject_rcpt) argv.insert(argv.end(), {"--reject-rcpt", a});
  for (const auto& a : opts.defer_rcpt) argv.insert(argv.end(), {"--defer-rcpt", a});
  process_ = std::make_unique<child_process>(argv, dir_.path() + "/sink.log");
  bool up = eventually(
      15s, [&] { return log().find("listening on") != std::string::npos || !process_->running(); });
  if (!up || !process_->running())
    throw std::runtime_error("smtp sink did not start on port " + std::to_string(port_) + ": " +
                             log());
}

smtp_sink::~smtp_sink() = default;

std::vector<smtp_sink::message> smtp_sink::messages() const {
  std::vector<message> out;
  // The sink renames <n>.json into place after <n>.eml: a message is there when its .json is.
  for (int n = 1;; ++n) {
    auto base = dir_.path() + "/mail/" + std::to_string(n);
    if (!std::filesystem::exists(base + ".json")) break;
    google::protobuf::Struct envelope;
    if (!google::protobuf::util::JsonStringToMessage(read_file(base + ".json"), &envelope).ok())
      throw std::runtime_error("smtp sink wrote an unreadable envelope: " + base + ".json");
    message m;
    m.raw = read_file(base + ".eml");
    m.mail_from = string_field(envelope, "mail_from");
    m.user = string_field(envelope, "user");
    auto rcpt = envelope.fields().find("rcpt_to");
    if (rcpt != envelope.fields().end())
      for (const auto& v : rcpt->second.list_value().values())
        m.rcpt_to.push_back(v.string_value());
    out.push_back(std::move(m));
  }
  return out;
}

std::string smtp_sink::log() const {
  return read_file(dir_.path() + "/sink.log");
}

}  // namespace chorus::test
