#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace chorus::persistence {

/// What Redis answered (RESP2), as a plain value with no tie to hiredis. Error replies are values
/// here too (`kind::error`): `redis_client::command` is the raw escape hatch; every other method
/// turns them into `caf::error`.
struct redis_reply {
  enum class kind : uint8_t { nil, integer, string, array, status, error };

  kind type = kind::nil;
  int64_t integer = 0;                ///< for kind::integer
  std::string str;                    ///< for kind::string, kind::status and kind::error
  std::vector<redis_reply> elements;  ///< for kind::array

  [[nodiscard]] bool is_nil() const noexcept { return type == kind::nil; }
  [[nodiscard]] bool is_error() const noexcept { return type == kind::error; }
  [[nodiscard]] bool is_string() const noexcept { return type == kind::string; }
  [[nodiscard]] bool is_array() const noexcept { return type == kind::array; }
  [[nodiscard]] bool is_integer() const noexcept { return type == kind::integer; }
  [[nodiscard]] bool is_status() const noexcept { return type == kind::status; }
};

const char* to_string(redis_reply::kind x) noexcept;

/// The error value of an error reply: `redis_unavailable` for the replies that mean "not now"
/// (LOADING, BUSY, MASTERDOWN, TRYAGAIN, READONLY, CLUSTERDOWN), `storage_error` for the others
/// (WRONGTYPE, a syntax error, a failing script: a bug or bad data, retrying will not help).
caf::error error_of(const redis_reply& error_reply, std::string_view command);

/// Settings of one `redis_client`. Built by whoever composes the node and passed in.
struct redis_client_config {
  /// `redis://host[:port][/db]`.
  std::string url;
  /// Connections kept at most; each is used by one call at a time.
  size_t pool_size = 4;
  /// TCP connect (and the SELECT after it) must finish within this.
  std::chrono::milliseconds connect_timeout{250};
  /// A command must be answered within this (socket send/receive timeout).
  std::chrono::milliseconds command_timeout{500};
  /// How long a call waits for a free connection when all `pool_size` are busy.
  std::chrono::milliseconds pool_wait{500};
  /// After a failure, the next connection attempt waits this long, doubling up to backoff_max.
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
};

/// A Lua script run with EVALSHA. Its SHA-1 is learnt from the first SCRIPT LOAD and kept here,
/// so one static `redis_script` can be shared by every client and thread (the SHA of a source is
/// the same on every server). Thread-safe.
class redis_script {
 public:
  explicit redis_script(std::string source) : source_(std::move(source)) {}

  [[nodiscard]] const std::string& source() const noexcept { return source_; }
  /// The SHA-1 once known, else empty.
  [[nodiscard]] std::string sha() const;
  void set_sha(std::string sha) const;

 private:
  std::string source_;
  mutable std::mutex mtx_;
  mutable std::string sha_;
};

/// A thread-safe client for one Redis URL: a small pool of blocking connections, with connect and
/// command timeouts. Any thread (HTTP handler threads, actors) may call any method concurrently.
/// Shared by its users through a `shared_ptr`; created by the node's composition code.
///
/// Connection loss: a connection that failed or that the server closed is dropped (idle ones are
/// checked before use). After a failure Redis counts as down: calls fail at once with
/// `redis_unavailable` until the back-off (50 ms doubling to 2 s by default) has elapsed, then
/// one call tries to reconnect while the others keep failing fast. A success clears the back-off.
/// Nothing throws; hiredis stays inside the .cpp.
class redis_client {
 public:
  /// A client for `cfg.url`; `bad_address` when the URL does not parse. Connects lazily.
  static caf::expected<std::shared_ptr<redis_client>> make(redis_client_config cfg);

  ~redis_client();
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  /// Runs any command, binary-safe (`{"SET", "k", "v"}`). Error replies are returned as
  /// `redis_reply` values of kind error; only transport failures are `caf::error`s
  /// (`redis_unavailable`).
  caf::expected<redis_reply> command(const std::vector<std::string>& argv);

  /// Same, with a longer answer deadline than `command_timeout`, for blocking commands
  /// (XREADGROUP BLOCK). The connection is busy meanwhile: give blocking readers their own client.
  caf::expected<redis_reply> command(const std::vector<std::string>& argv,
                                     std::chrono::milliseconds answer_timeout);

  /// Like `command`, but an error reply is a `caf::error` (see `error_of`).
  caf::expected<redis_reply> call(const std::vector<std::string>& argv);

  /// EVALSHA of `script`; on NOSCRIPT (a restarted or flushed server) falls back to EVAL, which
  /// also caches the script again. The first use learns the SHA with SCRIPT LOAD. Error replies
  /// (a failing script) are `caf::error`s.
  caf::expected<redis_reply> eval_script(const redis_script& script,
                                         const std::vector<std::string>& keys,
                                         const std::vector<std::string>& args);

  /// GET: the value, or nothing when the key does not exist.
  caf::expected<std::optional<std::string>> get(const std::string& key);

  /// SET, with a PX expiry when `ttl` is positive.
  caf::error set(const std::string& key, const std::string& value,
                 std::chrono::milliseconds ttl = std::chrono::milliseconds{0});

  /// DEL: how many of `keys` existed.
  caf::expected<int64_t> del(const std::vector<std::string>& keys);

  /// PING.
  caf::error ping();

  /// False while Redis is known to be down (between a failure and the next successful call).
  [[nodiscard]] bool available() const;

  [[nodiscard]] const redis_client_config& config() const noexcept;

 private:
  struct impl;
  explicit redis_client(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace chorus::persistence
