#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace chorus::persistence {

/// SHA-256 of bytes that arrive in pieces, so a blob is named while it streams and is never held
/// whole in memory. OpenSSL's EVP stays behind a pimpl. Owned by one caller; not thread-safe.
class sha256_stream {
 public:
  sha256_stream();
  ~sha256_stream();
  sha256_stream(const sha256_stream&) = delete;
  sha256_stream& operator=(const sha256_stream&) = delete;

  void update(std::string_view bytes);

  /// The digest of everything given so far, as 64 lowercase hex characters, or an empty string
  /// if OpenSSL failed (callers turn that into an error). The stream is spent afterwards.
  std::string hex_digest();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// SHA-256 of `bytes` as 64 lowercase hex characters.
std::string sha256_hex(std::string_view bytes);

/// `bytes` as lowercase hex, two characters a byte.
std::string to_hex(std::string_view bytes);

/// Whether `s` is 64 lowercase hex characters: the form of a SHA-256 name.
bool is_sha256_hex(std::string_view s) noexcept;

}  // namespace chorus::persistence
