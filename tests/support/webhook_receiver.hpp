#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace chorus::test {

/// A webhook endpoint of a test's own (tests/fakes/webhook_receiver.py, Python's standard
/// library) on a free port of 127.0.0.1: it checks X-Chorus-Signature with `secret` (401 when
/// wrong), answers 500 to the first `fail_first` requests of each notification id, and records
/// every delivery it accepts, repeats included. `url("/status/404")` answers that status. The
/// constructor returns once it accepts connections and throws when it does not start; killed on
/// destruction. Owned by one test, used from its thread.
class webhook_receiver {
 public:
  struct options {
    std::string secret;
    int fail_first = 0;
  };

  /// One accepted request.
  struct delivery {
    std::string id;
    std::string body;
    int64_t timestamp = 0;
  };

  explicit webhook_receiver(options opts);
  ~webhook_receiver();
  webhook_receiver(const webhook_receiver&) = delete;
  webhook_receiver& operator=(const webhook_receiver&) = delete;

  [[nodiscard]] uint16_t port() const { return port_; }
  /// The endpoint that verifies and records: path "/hook".
  [[nodiscard]] std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  /// The deliveries accepted so far, in order. A delivery is recorded before it is answered 200.
  [[nodiscard]] std::vector<delivery> deliveries() const;

  /// The receiver's own output, one line per request (for failure messages).
  [[nodiscard]] std::string log() const;

 private:
  temp_dir dir_;
  uint16_t port_;
  std::unique_ptr<child_process> process_;
};

}  // namespace chorus::test
