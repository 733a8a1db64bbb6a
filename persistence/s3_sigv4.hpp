#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/// AWS Signature Version 4 for S3, as pure functions (HMAC-SHA256 and SHA-256 from OpenSSL), so the
/// signer is checked against AWS's published examples without a server. Used by blob_store_s3.
namespace chorus::persistence::sigv4 {

using param_list = std::vector<std::pair<std::string, std::string>>;

struct credentials {
  std::string access_key;
  std::string secret_key;
};

/// The parts of an HTTP request that a signature covers.
struct request {
  std::string method;
  /// The path, URI-encoded once (S3: each segment encoded, slashes kept; see `uri_encode`).
  std::string canonical_uri;
  /// Query parameters, neither encoded nor sorted; a bare name (`?uploads`) has an empty value.
  param_list query;
  /// The headers to sign, names in any case; must include host and x-amz-date (and, for S3,
  /// x-amz-content-sha256).
  param_list headers;
  /// Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
  std::string payload_hash;
};

/// Hex SHA-256 of an empty body.
inline constexpr std::string_view empty_payload_hash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986 encoding as SigV4 wants it: unreserved characters (A-Z a-z 0-9 - . _ ~) kept, every
/// other byte as %XX with upper-case hex; '/' kept unless `encode_slash`.
std::string uri_encode(std::string_view s, bool encode_slash);

/// Parameters encoded and sorted by name (then value), joined with '&'.
std::string canonical_query(const param_list& query);

/// Lower-case header names, sorted, joined with ';'.
std::string signed_headers(const param_list& headers);

/// Method, URI, query, headers (lower-case names, trimmed values, sorted), signed header names
/// and payload hash, one per line.
std::string canonical_request(const request& r);

/// `<yyyymmdd>/<region>/<service>/aws4_request`.
std::string credential_scope(std::string_view date, std::string_view region,
                             std::string_view service);

/// AWS4-HMAC-SHA256, the time, the scope and the hex SHA-256 of the canonical request.
std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request);

/// The raw 32-byte key: HMAC chain over "AWS4" + secret, date, region, service, "aws4_request".
std::string signing_key(std::string_view secret_key, std::string_view date, std::string_view region,
                        std::string_view service);

/// Raw HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256(std::string_view key, std::string_view data);

/// The value of the Authorization header for `r` made at `amz_date` (yyyymmddThhmmssZ).
std::string authorization(const credentials& creds, std::string_view amz_date,
                          std::string_view region, std::string_view service, const request& r);

/// `t` as yyyymmddThhmmssZ (UTC), the form of x-amz-date.
std::string amz_date(std::chrono::system_clock::time_point t);

}  // namespace chorus::persistence::sigv4
