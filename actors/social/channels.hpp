#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "actors/social/errc.hpp"

/// The delivery channels of user notifications: email over SMTP and webhooks (the SMS and push
/// providers' endpoints) over HTTP, both through libcurl.
///
/// Every call is blocking (up to its configured timeout) and uses its own curl easy handle, so it
/// is safe from any thread at once; callers run it on worker threads, never on the actor
/// scheduler. libcurl's global initialisation runs once, on first use (std::call_once). Nothing
/// throws: failures are `social_errc` values, and `is_retryable` tells the delivery worker
/// whether to try again later. Deduplication is by notification id on the receiving side (the
/// email's Message-ID, the webhook's X-Chorus-Notification-Id), because a delivery whose answer
/// was lost is retried and arrives twice.
namespace chorus::social {

/// Where and as whom email is sent. Turned from the node's config by its owner; immutable.
struct smtp_config {
  /// `smtp://host:port` (opportunistic STARTTLS) or `smtps://host:port` (TLS from the start).
  /// With plain `smtp://` and a server that offers no STARTTLS, credentials go in the clear.
  std::string url;
  /// The envelope sender and the From header: a bare address, `noreply@chorus.example`.
  std::string from;
  /// SMTP AUTH credentials; none when the username is empty.
  std::string username;
  std::string password;
  /// For the whole exchange, connection included.
  std::chrono::milliseconds timeout{10000};
};

/// One plain-text email to one recipient.
struct email {
  /// A bare address (`someone@example.com`); no display name.
  std::string to;
  /// Any UTF-8; control characters become spaces (a subject is one line), non-ASCII is
  /// RFC 2047-encoded.
  std::string subject;
  /// UTF-8 text; line endings are made CRLF. Sent 8bit, or quoted-printable when a line is longer
  /// than SMTP allows or the text holds a NUL.
  std::string text;
  /// Becomes the Message-ID `<notification_id@from-domain>`, so a resent notification carries the
  /// same id. 1..128 characters of [A-Za-z0-9._-], dots not first, last or doubled.
  std::string notification_id;
};

/// Sends `e` from `cfg.from` through the SMTP server at `cfg.url`. None when the server accepted
/// the message; `invalid_address` (before connecting) for a malformed or header-injecting
/// address; `delivery_failed_permanent` for an SMTP 5xx reply (a refused recipient, failed
/// authentication), an unusable URL or notification id; `delivery_failed_retryable` for an SMTP
/// 4xx reply, a connection failure, a timeout or any other transport failure.
caf::error send_email(const smtp_config& cfg, const email& e);

/// Where webhooks go and the secret they are signed with. Immutable.
struct webhook_config {
  /// `http://` or `https://`; redirects are not followed.
  std::string url;
  /// The HMAC-SHA256 key shared with the receiver; must not be empty.
  std::string secret;
  /// For the whole request, connection included.
  std::chrono::milliseconds timeout{10000};
};

/// POSTs `json_body` to `cfg.url` with the headers `Content-Type: application/json`,
/// `X-Chorus-Notification-Id`, `X-Chorus-Timestamp` (unix seconds) and `X-Chorus-Signature:
/// t=<timestamp>,v1=<webhook_signature(secret, timestamp, body)>`. None on a 2xx answer;
/// `delivery_failed_retryable` on 408, 429, 5xx, a connection failure or a timeout;
/// `delivery_failed_permanent` on any other answer (4xx, an unfollowed 3xx) or an unusable
/// configuration or notification id.
caf::error post_webhook(const webhook_config& cfg, const std::string& notification_id,
                        const std::string& json_body);

/// Lowercase hex of HMAC-SHA256(secret, "<unix_s>.<body>"): what a receiver recomputes to check
/// X-Chorus-Signature (and should compare in constant time, and refuse old timestamps).
std::string webhook_signature(const std::string& secret, int64_t unix_s, const std::string& body);

/// Whether `err` is a delivery failure worth trying again later.
bool is_retryable(const caf::error& err);

/// Whether `address` is a bare addr-spec this module sends to: one '@', a dot-atom local part of
/// at most 64 characters, a domain of letters, digits and hyphens in dot-separated labels, at
/// most 254 characters in all; ASCII only (no SMTPUTF8), no whitespace or control characters,
/// nothing that could end a header or an SMTP command.
bool is_valid_address(std::string_view address);

/// The RFC 5322 message `send_email` sends, with CRLF line endings and not dot-stuffed (libcurl
/// does that on the wire). An error for what `send_email` refuses before connecting.
caf::expected<std::string> format_email(const std::string& from, const email& e,
                                        std::chrono::system_clock::time_point now);

}  // namespace chorus::social
