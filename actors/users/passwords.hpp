#pragma once

#include <string>
#include <unordered_set>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace chorus::users {

/// What a password must be (NIST SP 800-63B): 8..128 characters, not one of the most common
/// passwords, not the account's own name; no composition rules.
struct password_policy {
  size_t min_length = 8;
  size_t max_length = 128;
  /// Lowercased common passwords (e.g. /usr/share/john/password.lst from Debian's john-data).
  std::unordered_set<std::string> common;
};

/// Reads a word list (one per line; lines starting with "#!comment" skipped), lowercased.
caf::expected<std::unordered_set<std::string>> load_common_passwords(const std::string& path);

/// `weak_password` naming what is wrong, or no error.
caf::error check_password(const password_policy& policy, const std::string& password,
                          const std::string& username);

/// argon2id (libsodium, t=2, 19 MiB) in libsodium's string form. Blocking and memory-hungry:
/// call it off the actor threads; at most a few run at once (the others wait their turn).
caf::expected<std::string> hash_password(const std::string& password);

/// Whether `password` matches `hash`. With an empty hash (no such account) it still spends the
/// time of a real check, so the answer's timing does not tell which accounts exist.
bool verify_password(const std::string& hash, const std::string& password);

/// A new session token: 256 random bits, base64url without padding (43 characters).
std::string new_session_token();

/// Whether `token` has the form new_session_token() makes.
bool well_formed_token(const std::string& token);

/// 128 random bits as 32 lowercase hex characters: a new user id.
std::string new_user_id();

}  // namespace chorus::users
