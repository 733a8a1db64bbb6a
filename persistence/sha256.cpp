#include "persistence/sha256.hpp"

#include <openssl/evp.h>

namespace chorus::persistence {

struct sha256_stream::impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  ~impl() { EVP_MD_CTX_free(ctx); }
};

sha256_stream::sha256_stream() : impl_(std::make_unique<impl>()) {}

sha256_stream::~sha256_stream() = default;

void sha256_stream::update(std::string_view bytes) {
  if (impl_->ok && !bytes.empty())
    impl_->ok = EVP_DigestUpdate(impl_->ctx, bytes.data(), bytes.size()) == 1;
}

std::string sha256_stream::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!impl_->ok || EVP_DigestFinal_ex(impl_->ctx, digest, &length) != 1) return {};
  impl_->ok = false;
  return to_hex({reinterpret_cast<const char*>(digest), length});
}

std::string sha256_hex(std::string_view bytes) {
  sha256_stream s;
  s.update(bytes);
  return s.hex_digest();
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

bool is_sha256_hex(std::string_view s) noexcept {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace chorus::persistence
