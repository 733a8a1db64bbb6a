// The notification channels against real servers: an SMTP server (npm smtp-server) and a webhook
// endpoint that checks signatures (Python), each a child process of the test on a free port.

#include <doctest/doctest.h>

#include <chrono>
#include <ctime>
#include <regex>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/social/channels.hpp"
#include "messages/errors.hpp"
#include "tests/support/process.hpp"
#include "tests/support/smtp_sink.hpp"
#include "tests/support/webhook_receiver.hpp"

using namespace chorus;
using namespace chorus::social;
using namespace std::chrono_literals;

namespace {

// A port where a listening socket completes TCP handshakes but nobody ever reads or answers:
// what a hung server looks like to a client. Closed on destruction.
class silent_listener {
 public:
  silent_listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~silent_listener() { ::close(fd_); }
  silent_listener(const silent_listener&) = delete;
  silent_listener& operator=(const silent_listener&) = delete;
  [[nodiscard]] uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

std::string base64_decode(const std::string& in) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int bits = 0;
  unsigned value = 0;
  for (char c : in) {
    auto pos = alphabet.find(c);
    if (pos == std::string::npos) break;  // '=' padding ends it
    value = (value << 6) | static_cast<unsigned>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((value >> bits) & 0xff);
    }
  }
  return out;
}

// The value of header `name` in a raw message, unfolded (CRLF + blank removed).
std::string header(const std::string& raw, const std::string& name) {
  auto head = raw.substr(0, raw.find("\r\n\r\n") + 2);
  auto at = head.find(name + ": ");
  if (at != 0) at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos) return {};
  auto start = head.find(": ", at) + 2;
  std::string value;
  for (auto i = start; i < head.size(); ++i) {
    if (head.compare(i, 2, "\r\n") == 0) {
      if (i + 2 < head.size() && (head[i + 2] == ' ' || head[i + 2] == '\t')) {
        i += 2;  // folded: the next line continues the value
        continue;
      }
      break;
    }
    value += head[i];
  }
  return value;
}

// A Subject made of RFC 2047 B-encoded UTF-8 words (separated by folding blanks), decoded.
std::string decode_words(const std::string& value) {
  static const std::regex word{R"(=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=)"};
  std::string out;
  for (std::sregex_iterator it{value.begin(), value.end(), word}, end; it != end; ++it)
    out += base64_decode((*it)[1].str());
  return out;
}

std::string body_of(const std::string& raw) {
  auto at = raw.find("\r\n\r\n");
  return at == std::string::npos ? std::string{} : raw.substr(at + 4);
}

std::string quoted_printable_decode(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
    } else if (in.compare(i + 1, 2, "\r\n") == 0) {
      i += 2;  // soft line break
    } else {
      out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
      i += 2;
    }
  }
  return out;
}

smtp_config smtp_to(const std::string& url) {
  smtp_config cfg;
  cfg.url = url;
  cfg.from = "noreply@chorus.test";
  cfg.timeout = 5s;
  return cfg;
}

email an_email(std::string id = "n-0001") {
  return email{"listener@example.com", "New follower", "Someone follows you now.\n", std::move(id)};
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// ---- email ----

TEST_CASE("an email reaches the SMTP server with its sender, recipient, subject, body and id") {
  test::smtp_sink sink;
  email e{"listener@example.com", "Neue Kommentare zu »Café ☕« — 3 neue Antworten auf deinen Track",
          "Hallo!\n.a line that starts with a dot\n..and one with two\r\n.\nBye", "n-0001"};
  auto err = send_email(smtp_to(sink.url()), e);
  REQUIRE_MESSAGE(!err, error_detail(err));

  auto got = sink.messages();
  REQUIRE(got.size() == 1);
  CHECK(got[0].mail_from == "noreply@chorus.test");
  CHECK(got[0].rcpt_to == std::vector<std::string>{"listener@example.com"});
  const auto& raw = got[0].raw;
  CHECK(header(raw, "From") == "noreply@chorus.test");
  CHECK(header(raw, "To") == "listener@example.com");
  CHECK(header(raw, "Message-ID") == "<n-0001@chorus.test>");
  CHECK(header(raw, "MIME-Version") == "1.0");
  CHECK(header(raw, "Content-Type") == "text/plain; charset=UTF-8");
  CHECK(header(raw, "Content-Transfer-Encoding") == "8bit");
  CHECK(std::regex_match(
      header(raw, "Date"),
      std::regex{R"([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000)"}));
  // Non-ASCII is encoded, and the encoded words are folded to keep lines short.
  auto subject = header(raw, "Subject");
  CHECK(subject.find("=?UTF-8?B?") == 0);
  CHECK(decode_words(subject) == e.subject);
  for (size_t start = 0, end; (end = raw.find("\r\n", start)) != std::string::npos; start = end + 2)
    CHECK(end - start <= 78);
  // libcurl dot-stuffs on the wire and the server unstuffs: the text arrives as written, with
  // CRLF line endings (a lone "." line would otherwise have ended the message).
  CHECK(body_of(raw) ==
        "Hallo!\r\n.a line that starts with a dot\r\n..and one with two\r\n.\r\nBye\r\n");
}

TEST_CASE("a line longer than SMTP allows is sent quoted-printable and arrives intact") {
  test::smtp_sink sink;
  std::string line(3000, 'x');
  line += " ünïcode = sign ";
  auto e = an_email();
  e.text = "first\n" + line + "\nlast\n";
  auto err = send_email(smtp_to(sink.url()), e);
  REQUIRE_MESSAGE(!err, error_detail(err));
  auto got = sink.messages();
  REQUIRE(got.size() == 1);
  CHECK(header(got[0].raw, "Content-Transfer-Encoding") == "quoted-printable");
  auto body = body_of(got[0].raw);
  for (size_t start = 0, end; (end = body.find("\r\n", start)) != std::string::npos;
       start = end + 2)
    CHECK(end - start <= 76);
  CHECK(quoted_printable_decode(body) == "first\r\n" + line + "\r\nlast\r\n");
}

TEST_CASE(
    "a notification sent twice carries the same Message-ID so a receiver can drop the repeat") {
  test::smtp_sink sink;
  auto cfg = smtp_to(sink.url());
  REQUIRE(!send_email(cfg, an_email("n-42")));
  REQUIRE(!send_email(cfg, an_email("n-42")));
  REQUIRE(!send_email(cfg, an_email("n-43")));
  auto got = sink.messages();
  REQUIRE(got.size() == 3);
  CHECK(header(got[0].raw, "Message-ID") == "<n-42@chorus.test>");
  CHECK(header(got[1].raw, "Message-ID") == header(got[0].raw, "Message-ID"));
  CHECK(header(got[2].raw, "Message-ID") == "<n-43@chorus.test>");
}

TEST_CASE("an SMTP server that offers AUTH gets the configured credentials") {
  test::smtp_sink sink;
  auto cfg = smtp_to(sink.url());
  cfg.username = "mailer";
  cfg.password = "s3cret";
  auto err = send_email(cfg, an_email());
  REQUIRE_MESSAGE(!err, error_detail(err));
  auto got = sink.messages();
  REQUIRE(got.size() == 1);
  CHECK(got[0].user == "mailer");
}

TEST_CASE("a recipient the SMTP server refuses is a permanent failure") {
  test::smtp_sink sink{{.reject_rcpt = {"gone@example.com"}, .defer_rcpt = {}}};
  auto e = an_email();
  e.to = "gone@example.com";
  auto err = send_email(smtp_to(sink.url()), e);
  CHECK_MESSAGE(is(err, social_errc::delivery_failed_permanent), error_detail(err));
  CHECK(!is_retryable(err));
  CHECK(error_detail(err).find("550") != std::string::npos);
  CHECK(sink.messages().empty());
}

TEST_CASE("a recipient the SMTP server defers with 451 is a retryable failure") {
  test::smtp_sink sink{{.reject_rcpt = {}, .defer_rcpt = {"busy@example.com"}}};
  auto e = an_email();
  e.to = "busy@example.com";
  auto err = send_email(smtp_to(sink.url()), e);
  CHECK_MESSAGE(is_retryable(err), error_detail(err));
  CHECK(sink.messages().empty());
}

TEST_CASE("an SMTP server that is not running is a retryable failure") {
  auto err =
      send_email(smtp_to("smtp://127.0.0.1:" + std::to_string(test::free_port())), an_email());
  CHECK_MESSAGE(is_retryable(err), error_detail(err));
}

TEST_CASE("an SMTP server that never answers times out as a retryable failure") {
  silent_listener hung;
  auto cfg = smtp_to("smtp://127.0.0.1:" + std::to_string(hung.port()));
  cfg.timeout = 300ms;
  auto started = std::chrono::steady_clock::now();
  auto err = send_email(cfg, an_email());
  CHECK_MESSAGE(is_retryable(err), error_detail(err));
  CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("an address that could inject a header is refused without connecting") {
  // Nothing listens on the port: had send_email connected, it would be a retryable failure.
  auto cfg = smtp_to("smtp://127.0.0.1:" + std::to_string(test::free_port()));
  for (const char* bad : {"a@b.c\r\nBcc: x@y.z", "a@b.c\nBcc: x@y.z", "a@b.c>\r\nRCPT TO:<x@y.z",
                          "two@at@signs.c", "no-at-sign", "", "a b@c.d", "a@b.c,x@y.z",
                          "Name <a@b.c>", "a@-b.c", "a..b@c.d", "ä@b.c"}) {
    auto e = an_email();
    e.to = bad;
    auto err = send_email(cfg, e);
    CHECK_MESSAGE(is(err, social_errc::invalid_address), bad, ": ", error_detail(err));
  }
  auto long_local = an_email();
  long_local.to = std::string(65, 'a') + "@b.c";
  CHECK(is(send_email(cfg, long_local), social_errc::invalid_address));
  auto bad_from = cfg;
  bad_from.from = "noreply@chorus.test\r\nBcc: x@y.z";
  CHECK(is(send_email(bad_from, an_email()), social_errc::invalid_address));
  CHECK(is_valid_address("first.last+tag@mail.example.com"));
}

TEST_CASE("a subject with line breaks stays one header line") {
  auto e = an_email();
  e.subject = "Hello\r\nBcc: x@y.z";
  auto msg = format_email("noreply@chorus.test", e, std::chrono::system_clock::now());
  REQUIRE(msg);
  CHECK(msg->find("\r\nBcc:") == std::string::npos);
  CHECK(header(*msg, "Subject") == "Hello  Bcc: x@y.z");
}

TEST_CASE("an unusable SMTP configuration or notification id is a permanent failure") {
  auto cfg = smtp_to("http://127.0.0.1:1");
  CHECK(is(send_email(cfg, an_email()), social_errc::delivery_failed_permanent));
  cfg = smtp_to("smtp://127.0.0.1:1");
  CHECK(is(send_email(cfg, an_email("has space")), social_errc::delivery_failed_permanent));
  CHECK(is(send_email(cfg, an_email("")), social_errc::delivery_failed_permanent));
  cfg.timeout = 0ms;
  CHECK(is(send_email(cfg, an_email()), social_errc::delivery_failed_permanent));
}

// ---- webhooks ----

TEST_CASE("the webhook signature is HMAC-SHA256 of the timestamp and body in lowercase hex") {
  // Computed independently: printf '1700000000.{"kind":"follow"}' | openssl dgst -sha256
  // -hmac whsec_test
  CHECK(webhook_signature("whsec_test", 1700000000, R"({"kind":"follow"})") ==
        "5fd57574d202d846681484827608938836922fba799743f5b6abfbbb760fcb3b");
}

TEST_CASE("a webhook arrives with a signature the receiver verifies") {
  test::webhook_receiver receiver{{.secret = "whsec_test", .fail_first = 0}};
  std::string body = R"({"kind":"follow","from":"ab12","text":"Grüße"})";
  auto before = unix_now();
  auto err = post_webhook({receiver.url(), "whsec_test", 5s}, "n-0001", body);
  REQUIRE_MESSAGE(!err, error_detail(err), "\n", receiver.log());
  auto got = receiver.deliveries();
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == "n-0001");
  CHECK(got[0].body == body);
  CHECK(got[0].timestamp >= before);
  CHECK(got[0].timestamp <= unix_now());
}

TEST_CASE("a webhook answered 500 is retryable and its retry is recorded once") {
  test::webhook_receiver receiver{{.secret = "whsec_test", .fail_first = 1}};
  webhook_config cfg{receiver.url(), "whsec_test", 5s};
  auto first = post_webhook(cfg, "n-7", "{}");
  CHECK_MESSAGE(is_retryable(first), error_detail(first));
  CHECK(error_detail(first).find("500") != std::string::npos);
  CHECK(receiver.deliveries().empty());
  auto second = post_webhook(cfg, "n-7", "{}");
  REQUIRE_MESSAGE(!second, error_detail(second));
  REQUIRE(receiver.deliveries().size() == 1);
  // The channel does not dedupe: a repeat is delivered again and the receiver sees the same id.
  REQUIRE(!post_webhook(cfg, "n-7", "{}"));
  auto got = receiver.deliveries();
  REQUIRE(got.size() == 2);
  CHECK(got[0].id == got[1].id);
}

TEST_CASE("webhook answers 400, 404 and 301 are permanent, 408, 429 and 503 retryable") {
  test::webhook_receiver receiver{{.secret = "whsec_test", .fail_first = 0}};
  for (int status : {400, 404, 410, 301}) {
    auto err = post_webhook({receiver.url("/status/" + std::to_string(status)), "whsec_test", 5s},
                            "n-1", "{}");
    CHECK_MESSAGE(is(err, social_errc::delivery_failed_permanent), status, ": ", error_detail(err));
  }
  for (int status : {408, 429, 500, 503}) {
    auto err = post_webhook({receiver.url("/status/" + std::to_string(status)), "whsec_test", 5s},
                            "n-1", "{}");
    CHECK_MESSAGE(is_retryable(err), status, ": ", error_detail(err));
  }
  CHECK(!post_webhook({receiver.url("/status/204"), "whsec_test", 5s}, "n-1", "{}"));
  CHECK(receiver.deliveries().empty());
}

TEST_CASE(
    "a webhook signed with the wrong secret is refused by the receiver as a permanent failure") {
  test::webhook_receiver receiver{{.secret = "whsec_test", .fail_first = 0}};
  auto err = post_webhook({receiver.url(), "not-the-secret", 5s}, "n-1", "{}");
  CHECK_MESSAGE(is(err, social_errc::delivery_failed_permanent), error_detail(err));
  CHECK(error_detail(err).find("401") != std::string::npos);
  CHECK(receiver.deliveries().empty());
}

TEST_CASE("a webhook endpoint that is not running or never answers is a retryable failure") {
  auto down = post_webhook(
      {"http://127.0.0.1:" + std::to_string(test::free_port()) + "/hook", "whsec_test", 5s}, "n-1",
      "{}");
  CHECK_MESSAGE(is_retryable(down), error_detail(down));
  silent_listener hung;
  auto started = std::chrono::steady_clock::now();
  auto slow = post_webhook(
      {"http://127.0.0.1:" + std::to_string(hung.port()) + "/hook", "whsec_test", 300ms}, "n-1",
      "{}");
  CHECK_MESSAGE(is_retryable(slow), error_detail(slow));
  CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("an unusable webhook configuration or notification id is a permanent failure") {
  CHECK(is(post_webhook({"ftp://127.0.0.1:1/x", "s", 5s}, "n-1", "{}"),
           social_errc::delivery_failed_permanent));
  CHECK(is(post_webhook({"http://127.0.0.1:1/x", "", 5s}, "n-1", "{}"),
           social_errc::delivery_failed_permanent));
  CHECK(is(post_webhook({"http://127.0.0.1:1/x", "s", 5s}, "n-1\r\nX-Evil: 1", "{}"),
           social_errc::delivery_failed_permanent));
  CHECK(!is_retryable(make_error(domain_errc::not_found, "not ours")));
  CHECK(!is_retryable(caf::error{}));
}
