#include "persistence/s3_sigv4.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "persistence/sha256.hpp"

namespace chorus::persistence::sigv4 {

namespace {

std::string lower(std::string_view s) {
  std::string out{s};
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Leading and trailing blanks removed, inner runs of blanks made one space.
std::string trimmed(std::string_view s) {
  std::string out;
  bool blank = false;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      blank = !out.empty();
      continue;
    }
    if (blank) out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

// Lower-case names with trimmed values, sorted by name; repeated names joined with ','.
std::vector<std::pair<std::string, std::string>> canonical_headers(const param_list& headers) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : headers) out.emplace_back(lower(name), trimmed(value));
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string, std::string>> merged;
  for (auto& h : out) {
    if (!merged.empty() && merged.back().first == h.first)
      merged.back().second += "," + h.second;
    else
      merged.push_back(std::move(h));
  }
  return merged;
}

}  // namespace

std::string uri_encode(std::string_view s, bool encode_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    // ASCII only, whatever the locale.
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum || c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0xf];
    }
  }
  return out;
}

std::string canonical_query(const param_list& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  for (const auto& [name, value] : query)
    encoded.emplace_back(uri_encode(name, true), uri_encode(value, true));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out.append(name).append("=").append(value);
  }
  return out;
}

std::string signed_headers(const param_list& headers) {
  std::string out;
  for (const auto& [name, value] : canonical_headers(headers)) {
    if (!out.empty()) out += ';';
    out += name;
  }
  return out;
}

std::string canonical_request(const request& r) {
  std::string out = r.method + "\n" + r.canonical_uri + "\n" + canonical_query(r.query) + "\n";
  for (const auto& [name, value] : canonical_headers(r.headers))
    out.append(name).append(":").append(value).append("\n");
  out += "\n" + signed_headers(r.headers) + "\n" + r.payload_hash;
  return out;
}

std::string credential_scope(std::string_view date, std::string_view region,
                             std::string_view service) {
  return std::string{date} + "/" + std::string{region} + "/" + std::string{service} +
         "/aws4_request";
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request) {
  return "AWS4-HMAC-SHA256\n" + std::string{amz_date} + "\n" + std::string{scope} + "\n" +
         sha256_hex(canonical_request);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &length) == nullptr)
    return {};  // an empty key makes a signature that the server rejects, never a wrong accept
  return {reinterpret_cast<const char*>(out), length};
}

std::string signing_key(std::string_view secret_key, std::string_view date, std::string_view region,
                        std::string_view service) {
  auto k = hmac_sha256("AWS4" + std::string{secret_key}, date);
  k = hmac_sha256(k, region);
  k = hmac_sha256(k, service);
  return hmac_sha256(k, "aws4_request");
}

std::string authorization(const credentials& creds, std::string_view amz_date,
                          std::string_view region, std::string_view service, const request& r) {
  auto date = amz_date.substr(0, 8);
  auto scope = credential_scope(date, region, service);
  auto to_sign = string_to_sign(amz_date, scope, canonical_request(r));
  auto signature =
      to_hex(hmac_sha256(signing_key(creds.secret_key, date, region, service), to_sign));
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + scope +
         ",SignedHeaders=" + signed_headers(r.headers) + ",Signature=" + signature;
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm utc{};
  ::gmtime_r(&secs, &utc);
  char out[17];
  std::strftime(out, sizeof out, "%Y%m%dT%H%M%SZ", &utc);
  return out;
}

}  // namespace chorus::persistence::sigv4
