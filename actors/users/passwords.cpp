#include "actors/users/passwords.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <mutex>
#include <semaphore>
#include <thread>

#include <sodium.h>

#include "messages/errors.hpp"

namespace chorus::users {

namespace {

// OWASP's minimum for argon2id: t=2 with 19 MiB.
constexpr unsigned long long ops_limit = 2;
constexpr size_t mem_limit = 19u * 1024u * 1024u;

// Each hash holds 19 MiB for ~50 ms; bound how many run at once so a burst of logins cannot
// take the node's memory or every core.
std::counting_semaphore<64>& hash_slots() {
  static std::counting_semaphore<64> slots{
      static_cast<std::ptrdiff_t>(std::clamp(std::thread::hardware_concurrency(), 2u, 8u))};
  return slots;
}

struct slot {
  slot() { hash_slots().acquire(); }
  ~slot() { hash_slots().release(); }
  slot(const slot&) = delete;
  slot& operator=(const slot&) = delete;
};

bool sodium_ready() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A hash of a password nobody has, made once: what an unknown account is checked against.
const std::string& decoy_hash() {
  static const std::string hash = [] {
    auto h = hash_password("decoy password that no account has");
    return h ? *h : std::string{};
  }();
  return hash;
}

}  // namespace

caf::expected<std::unordered_set<std::string>> load_common_passwords(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return make_error(domain_errc::validation, "cannot read the common password list " + path);
  std::unordered_set<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("#!comment", 0) == 0) continue;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.insert(lower(line));
  }
  return out;
}

caf::error check_password(const password_policy& policy, const std::string& password,
                          const std::string& username) {
  // Length in characters (UTF-8 code points), not bytes.
  size_t chars = 0;
  for (unsigned char c : password) chars += (c & 0xC0) != 0x80;
  if (chars < policy.min_length || chars > policy.max_length)
    return make_error(domain_errc::weak_password,
                      "password must be " + std::to_string(policy.min_length) + ".." +
                          std::to_string(policy.max_length) + " characters");
  auto l = lower(password);
  if (policy.common.count(l) > 0)
    return make_error(domain_errc::weak_password, "password is too common");
  if (!username.empty() && l == lower(username))
    return make_error(domain_errc::weak_password, "password must not be the username");
  return {};
}

caf::expected<std::string> hash_password(const std::string& password) {
  if (!sodium_ready()) return make_error(runtime_errc::entity_failed, "libsodium did not start");
  char out[crypto_pwhash_STRBYTES];
  slot s;
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), ops_limit, mem_limit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    return make_error(runtime_errc::overloaded, "out of memory while hashing a password");
  return std::string{out};
}

bool verify_password(const std::string& hash, const std::string& password) {
  if (!sodium_ready()) return false;
  const auto& h = hash.empty() ? decoy_hash() : hash;
  if (h.empty()) return false;
  bool ok;
  {
    slot s;
    ok = crypto_pwhash_str_verify(h.c_str(), password.data(), password.size()) == 0;
  }
  return ok && !hash.empty();
}

std::string new_session_token() {
  sodium_ready();
  unsigned char bytes[32];
  randombytes_buf(bytes, sizeof bytes);
  char out[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(out, sizeof out, bytes, sizeof bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

bool well_formed_token(const std::string& token) {
  if (token.size() != 43) return false;
  return std::all_of(token.begin(), token.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; });
}

std::string new_user_id() {
  sodium_ready();
  unsigned char bytes[16];
  randombytes_buf(bytes, sizeof bytes);
  char out[33];
  sodium_bin2hex(out, sizeof out, bytes, sizeof bytes);
  return out;
}

}  // namespace chorus::users
