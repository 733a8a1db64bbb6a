#include "actors/social/channels.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <utility>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace chorus::social {

namespace {

// ---- libcurl plumbing ----

// curl_global_init is not thread-safe and curl_easy_init would run it implicitly, racing: every
// call goes through here first.
bool curl_ready() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return rc == CURLE_OK;
}

struct curl_deleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using curl_ptr = std::unique_ptr<CURL, curl_deleter>;

struct slist_deleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using slist_ptr = std::unique_ptr<curl_slist, slist_deleter>;

// Appends to a list that stays owned by `list`; false when curl ran out of memory.
bool append(slist_ptr& list, const std::string& item) {
  auto* grown = curl_slist_append(list.get(), item.c_str());
  if (grown == nullptr) return false;
  (void)list.release();  // curl_slist_append returns the same head when the list was not empty
  list.reset(grown);
  return true;
}

struct upload {
  std::string_view data;
  size_t offset = 0;
};

size_t read_upload(char* buffer, size_t size, size_t count, void* user) {
  auto* up = static_cast<upload*>(user);
  auto n = std::min(size * count, up->data.size() - up->offset);
  std::copy_n(up->data.data() + up->offset, n, buffer);
  up->offset += n;
  return n;
}

// Keeps the start of a webhook answer for the error detail; the rest is read and dropped (without
// a write callback curl would print it to stdout).
size_t keep_head(char* data, size_t size, size_t count, void* user) {
  auto* head = static_cast<std::string*>(user);
  if (head->size() < 200) head->append(data, std::min(size * count, 200 - head->size()));
  return size * count;
}

// Options every request gets: no signals (timeouts on worker threads), one deadline for all of
// it, only the protocols named, errors spelt out in `errbuf`.
bool set_common(CURL* c, const char* protocols, std::chrono::milliseconds timeout, char* errbuf) {
  errbuf[0] = '\0';
  return curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
         curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
         curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols) == CURLE_OK &&
         curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count())) == CURLE_OK &&
         curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count())) ==
             CURLE_OK;
}

std::string describe(const char* what, CURLcode rc, const char* errbuf) {
  std::string out = std::string{what} + ": " + curl_easy_strerror(rc);
  if (errbuf[0] != '\0') out.append(" (").append(errbuf).append(")");
  return out;
}

// A transfer that failed before any usable answer: only a bad URL or protocol is the caller's
// mistake; everything else (refused, reset, timed out, TLS trouble, a garbled reply) may pass.
caf::error transport_failure(const char* what, CURLcode rc, const char* errbuf) {
  switch (rc) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return make_error(social_errc::delivery_failed_permanent, describe(what, rc, errbuf));
    default:
      return make_error(social_errc::delivery_failed_retryable, describe(what, rc, errbuf));
  }
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    auto a = static_cast<unsigned char>(s[i]);
    if (std::tolower(a) != prefix[i]) return false;
  }
  return true;
}

// ---- addresses, ids, headers ----

bool is_ascii_alnum(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool is_atext(unsigned char c) {
  if (is_ascii_alnum(c)) return true;
  return std::string_view{"!#$%&'*+-/=?^_`{|}~"}.find(static_cast<char>(c)) !=
         std::string_view::npos;
}

// dot-atom: atoms of `ok` characters joined by single dots.
template <class Pred>
bool is_dot_atom(std::string_view s, Pred ok) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!ok(static_cast<unsigned char>(c))) {
      return false;
    }
    prev = c;
  }
  return true;
}

bool is_valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
  size_t start = 0;
  while (start <= d.size()) {
    auto end = d.find('.', start);
    if (end == std::string_view::npos) end = d.size();
    auto label = d.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (unsigned char c : label)
      if (!is_ascii_alnum(c) && c != '-') return false;
    start = end + 1;
  }
  return true;
}

bool is_valid_notification_id(std::string_view id) {
  if (id.size() > 128) return false;
  return is_dot_atom(id, [](unsigned char c) { return is_ascii_alnum(c) || c == '_' || c == '-'; });
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(bytes.data()),
                           static_cast<int>(bytes.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

// The Subject header's value: one line, ASCII as is while it fits a line, otherwise RFC 2047
// encoded-words of whole UTF-8 characters, folded so no line passes 78 characters.
std::string encode_subject(std::string s) {
  bool plain = s.size() <= 78 - std::string_view{"Subject: "}.size();
  for (auto& c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';  // CR and LF would end the header: never injectable
    if (u > 0x7f) plain = false;
  }
  if (plain && s.find("=?") == std::string::npos) return s;  // "=?" would read as an encoded-word
  // 42 bytes are 56 base64 characters: "Subject: =?UTF-8?B?" + 56 + "?=" is 77.
  constexpr size_t chunk = 42;
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    auto end = std::min(i + chunk, s.size());
    auto mid = end;
    // Back off to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
    while (mid > i && mid < s.size() && (static_cast<unsigned char>(s[mid]) & 0xc0) == 0x80) --mid;
    if (mid > i) end = mid;  // else: not UTF-8; cut anywhere
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(std::string_view{s}.substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

// Bare CR, bare LF and CRLF all become CRLF; a non-empty text ends with one.
std::string crlf_lines(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 16 + 2);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
      out += "\r\n";
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

// Whether CRLF text can go as 8bit: no NUL, no line over SMTP's 998 octets.
bool fits_8bit(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  while (start < text.size()) {
    auto end = text.find("\r\n", start);
    if (end == std::string_view::npos) end = text.size();
    if (end - start > 998) return false;
    start = end + 2;
  }
  return true;
}

// RFC 2045 quoted-printable of CRLF text: lines of at most 76 characters (soft breaks "=").
std::string quoted_printable(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    auto end = text.find("\r\n", start);
    if (end == std::string_view::npos) end = text.size();
    size_t width = 0;
    for (size_t i = start; i < end; ++i) {
      auto c = static_cast<unsigned char>(text[i]);
      bool last = i + 1 == end;
      bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
      std::string token = literal ? std::string(1, static_cast<char>(c))
                                  : std::string{'=', hex[c >> 4], hex[c & 0xf]};
      if (width + token.size() > 75) {
        out += "=\r\n";
        width = 0;
      }
      out += token;
      width += token.size();
    }
    if (end < text.size()) out += "\r\n";
    start = end + 2;
  }
  return out;
}

std::string rfc5322_date(std::chrono::system_clock::time_point t) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm utc{};
  ::gmtime_r(&secs, &utc);
  char out[40];
  std::snprintf(out, sizeof out, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[utc.tm_wday % 7],
                utc.tm_mday, months[utc.tm_mon % 12], utc.tm_year + 1900, utc.tm_hour, utc.tm_min,
                utc.tm_sec);
  return out;
}

caf::error check_timeout(std::chrono::milliseconds timeout) {
  if (timeout.count() > 0) return {};
  // libcurl reads 0 as "wait forever": a worker thread would hang on a silent server.
  return make_error(social_errc::delivery_failed_permanent, "timeout must be positive");
}

}  // namespace

bool is_valid_address(std::string_view address) {
  if (address.empty() || address.size() > 254) return false;
  auto at = address.find('@');
  if (at == std::string_view::npos || address.find('@', at + 1) != std::string_view::npos)
    return false;
  auto local = address.substr(0, at);
  return local.size() <= 64 && is_dot_atom(local, is_atext) &&
         is_valid_domain(address.substr(at + 1));
}

caf::expected<std::string> format_email(const std::string& from, const email& e,
                                        std::chrono::system_clock::time_point now) {
  if (!is_valid_address(from))
    return make_error(social_errc::invalid_address, "invalid sender address");
  if (!is_valid_address(e.to))
    return make_error(social_errc::invalid_address, "invalid recipient address");
  if (!is_valid_notification_id(e.notification_id))
    return make_error(social_errc::delivery_failed_permanent,
                      "notification id is not usable as a Message-ID");
  auto body = crlf_lines(e.text);
  bool eight_bit = fits_8bit(body);
  std::string msg;
  msg.reserve(body.size() + 512);
  msg += "Date: " + rfc5322_date(now) + "\r\n";
  msg += "From: " + from + "\r\n";
  msg += "To: " + e.to + "\r\n";
  msg += "Subject: " + encode_subject(e.subject) + "\r\n";
  msg += "Message-ID: <" + e.notification_id + "@" + from.substr(from.find('@') + 1) + ">\r\n";
  // RFC 3834: tells vacation responders not to answer a machine.
  msg += "Auto-Submitted: auto-generated\r\n";
  msg += "MIME-Version: 1.0\r\n";
  msg += "Content-Type: text/plain; charset=UTF-8\r\n";
  msg += std::string{"Content-Transfer-Encoding: "} + (eight_bit ? "8bit" : "quoted-printable") +
         "\r\n";
  msg += "\r\n";
  msg += eight_bit ? body : quoted_printable(body);
  return msg;
}

caf::error send_email(const smtp_config& cfg, const email& e) {
  auto msg = format_email(cfg.from, e, std::chrono::system_clock::now());
  if (!msg) return std::move(msg.error());
  if (!starts_with_nocase(cfg.url, "smtp://") && !starts_with_nocase(cfg.url, "smtps://"))
    return make_error(social_errc::delivery_failed_permanent,
                      "smtp url must start with smtp:// or smtps://");
  if (auto err = check_timeout(cfg.timeout)) return err;
  if (!curl_ready())
    return make_error(social_errc::delivery_failed_retryable, "curl_global_init failed");
  curl_ptr c{curl_easy_init()};
  slist_ptr rcpt;
  if (!c || !append(rcpt, "<" + e.to + ">"))
    return make_error(social_errc::delivery_failed_retryable, "smtp: out of memory");
  char errbuf[CURL_ERROR_SIZE];
  upload up{*msg};
  auto mail_from = "<" + cfg.from + ">";
  bool ok =
      set_common(c.get(), "smtp,smtps", cfg.timeout, errbuf) &&
      curl_easy_setopt(c.get(), CURLOPT_URL, cfg.url.c_str()) == CURLE_OK &&
      curl_easy_setopt(c.get(), CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_TRY)) == CURLE_OK &&
      curl_easy_setopt(c.get(), CURLOPT_MAIL_FROM, mail_from.c_str()) == CURLE_OK &&
      curl_easy_setopt(c.get(), CURLOPT_MAIL_RCPT, rcpt.get()) == CURLE_OK &&
      curl_easy_setopt(c.get(), CURLOPT_UPLOAD, 1L) == CURLE_OK &&
      curl_easy_setopt(c.get(), CURLOPT_READFUNCTION, read_upload) == CURLE_OK &&
      curl_easy_setopt(c.get(), CURLOPT_READDATA, &up) == CURLE_OK;
  if (ok && !cfg.username.empty()) {
    ok = curl_easy_setopt(c.get(), CURLOPT_USERNAME, cfg.username.c_str()) == CURLE_OK &&
         curl_easy_setopt(c.get(), CURLOPT_PASSWORD, cfg.password.c_str()) == CURLE_OK;
  }
  if (!ok)
    return make_error(social_errc::delivery_failed_permanent,
                      "smtp: libcurl refused an option: " + std::string{errbuf});
  auto rc = curl_easy_perform(c.get());
  if (rc == CURLE_OK) return {};
  // The last SMTP reply decides when there was one: 5xx is final (a refused recipient, failed
  // authentication, a rejected message), 4xx asks to come back later.
  long reply = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &reply);
  auto detail = describe("smtp", rc, errbuf) + ", last reply " + std::to_string(reply);
  if (reply >= 500 && reply < 600)
    return make_error(social_errc::delivery_failed_permanent, std::move(detail));
  if (reply >= 400 && reply < 500)
    return make_error(social_errc::delivery_failed_retryable, std::move(detail));
  return transport_failure("smtp", rc, errbuf);
}

std::string webhook_signature(const std::string& secret, int64_t unix_s, const std::string& body) {
  auto signed_text = std::to_string(unix_s) + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac,
           &length) == nullptr)
    return {};  // an empty signature is refused by every receiver, never wrongly accepted
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 0xf];
  }
  return out;
}

caf::error post_webhook(const webhook_config& cfg, const std::string& notification_id,
                        const std::string& json_body) {
  if (!starts_with_nocase(cfg.url, "http://") && !starts_with_nocase(cfg.url, "https://"))
    return make_error(social_errc::delivery_failed_permanent,
                      "webhook url must start with http:// or https://");
  if (cfg.secret.empty())
    return make_error(social_errc::delivery_failed_permanent, "webhook secret is empty");
  if (!is_valid_notification_id(notification_id))
    return make_error(social_errc::delivery_failed_permanent,
                      "notification id is not usable in a header");
  if (auto err = check_timeout(cfg.timeout)) return err;
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto signature = webhook_signature(cfg.secret, now, json_body);
  if (signature.empty())
    return make_error(social_errc::delivery_failed_retryable, "webhook: HMAC failed");
  if (!curl_ready())
    return make_error(social_errc::delivery_failed_retryable, "curl_global_init failed");
  curl_ptr c{curl_easy_init()};
  slist_ptr headers;
  // "Expect:" turns off curl's 100-continue round trip for bodies over 1 KiB.
  bool listed =
      c && append(headers, "Content-Type: application/json") &&
      append(headers, "X-Chorus-Notification-Id: " + notification_id) &&
      append(headers, "X-Chorus-Timestamp: " + std::to_string(now)) &&
      append(headers, "X-Chorus-Signature: t=" + std::to_string(now) + ",v1=" + signature) &&
      append(headers, "Expect:");
  if (!listed) return make_error(social_errc::delivery_failed_retryable, "webhook: out of memory");
  char errbuf[CURL_ERROR_SIZE];
  std::string answer;
  bool ok = set_common(c.get(), "http,https", cfg.timeout, errbuf) &&
            curl_easy_setopt(c.get(), CURLOPT_URL, cfg.url.c_str()) == CURLE_OK &&
            curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "chorus-notify/1") == CURLE_OK &&
            curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get()) == CURLE_OK &&
            curl_easy_setopt(c.get(), CURLOPT_POST, 1L) == CURLE_OK &&
            curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, json_body.data()) == CURLE_OK &&
            curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(json_body.size())) == CURLE_OK &&
            curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, keep_head) == CURLE_OK &&
            curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &answer) == CURLE_OK;
  if (!ok)
    return make_error(social_errc::delivery_failed_permanent,
                      "webhook: libcurl refused an option: " + std::string{errbuf});
  auto rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) return transport_failure("webhook", rc, errbuf);
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300) return {};
  auto detail = "webhook: HTTP " + std::to_string(status) + ": " + answer;
  if (status == 408 || status == 429 || (status >= 500 && status < 600))
    return make_error(social_errc::delivery_failed_retryable, std::move(detail));
  return make_error(social_errc::delivery_failed_permanent, std::move(detail));
}

bool is_retryable(const caf::error& err) {
  return is(err, social_errc::delivery_failed_retryable);
}

}  // namespace chorus::social
