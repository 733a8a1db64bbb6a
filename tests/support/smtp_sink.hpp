#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace chorus::test {

/// A real SMTP server of a test's own (tests/fakes/smtp_sink.js over the npm smtp-server that
/// scripts/bootstrap installs into .chorus/tools) on a free port of 127.0.0.1, keeping every
/// message it accepts in a temp dir. The constructor returns once it accepts connections and
/// throws when it does not start; killed on destruction. Owned by one test, used from its thread.
class smtp_sink {
 public:
  struct options {
    /// Recipients answered 550 (permanent) at RCPT TO.
    std::vector<std::string> reject_rcpt;
    /// Recipients answered 451 (try again later) at RCPT TO.
    std::vector<std::string> defer_rcpt;
  };

  /// One accepted message: its raw RFC 5322 data (after the final dot, dot-unstuffed) and its
  /// SMTP envelope.
  struct message {
    std::string raw;
    std::string mail_from;
    std::vector<std::string> rcpt_to;
    /// The AUTH user name, empty without AUTH.
    std::string user;
  };

  smtp_sink() : smtp_sink(options{}) {}
  explicit smtp_sink(options opts);
  ~smtp_sink();
  smtp_sink(const smtp_sink&) = delete;
  smtp_sink& operator=(const smtp_sink&) = delete;

  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

  /// The messages accepted so far, in order. A message is accepted (and here) before the sink
  /// answers 250 to its data.
  [[nodiscard]] std::vector<message> messages() const;

  /// The sink's own output (for failure messages).
  [[nodiscard]] std::string log() const;

 private:
  temp_dir dir_;
  uint16_t port_;
  std::unique_ptr<child_process> process_;
};

}  // namespace chorus::test
