#pragma once

#include <cstdint>
#include <map>
#include <regex>
#include <string>
#include <string_view>

#include <strings.h>

namespace chorus::edge {

/// Header names compare without case (RFC 9110 §5.1).
struct header_name_less {
  bool operator()(const std::string& a, const std::string& b) const {
    return ::strcasecmp(a.c_str(), b.c_str()) < 0;
  }
};

using header_map = std::multimap<std::string, std::string, header_name_less>;

/// One HTTP request as a route handler sees it, parsed by the edge's event loop (Boost.Beast).
/// The member names follow cpp-httplib's, which the handlers were first written against.
struct http_request {
  std::string method;  ///< "GET", "POST", ...
  std::string path;    ///< percent-decoded, without the query
  header_map headers;
  std::multimap<std::string, std::string> params;  ///< the query, percent-decoded
  std::string body;
  std::smatch matches;      ///< the route's pattern matched against `path`
  std::string remote_addr;  ///< the TCP peer
  /// Upload routes (edge_api::route_upload): the body was streamed to this file instead of
  /// `body` (removed once the answer is sent), `body_size` bytes.
  std::string body_file;
  uint64_t body_size = 0;

  [[nodiscard]] bool has_header(const std::string& key) const { return headers.count(key) > 0; }
  /// The first value of `key`, or "" when absent.
  [[nodiscard]] std::string get_header_value(const std::string& key) const {
    auto it = headers.find(key);
    return it == headers.end() ? std::string{} : it->second;
  }
  [[nodiscard]] bool has_param(const std::string& key) const { return params.count(key) > 0; }
  [[nodiscard]] std::string get_param_value(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? std::string{} : it->second;
  }
};

/// What a handler answers. `status` stays -1 until someone sets it; the edge sends 200 then.
struct http_response {
  int status = -1;
  /// Whether the answer so far is a success that nobody gave a status yet (200 when sent).
  [[nodiscard]] bool ok_so_far() const { return status == -1 || status == 200; }
  header_map headers;
  std::string body;
  /// For the node's log, never sent: what an internal error (5xx) really was.
  std::string internal_detail;
  /// Instead of `body`: bytes [file_offset, file_offset + file_length) of this file, sent in
  /// straight from the file with sendfile (Content-Length is file_length).
  std::string file_path;
  uint64_t file_offset = 0;
  uint64_t file_length = 0;

  /// Adds a header (a second call with the same name adds a second line, as in cpp-httplib).
  void set_header(const std::string& key, const std::string& value) {
    // CR or LF in a value would split the header: such a value is never sent.
    if (value.find_first_of("\r\n") != std::string::npos) return;
    headers.emplace(key, value);
  }
  void set_content(std::string content, const char* content_type) {
    body = std::move(content);
    headers.erase("Content-Type");
    headers.emplace("Content-Type", content_type);
  }
  [[nodiscard]] std::string get_header_value(const std::string& key) const {
    auto it = headers.find(key);
    return it == headers.end() ? std::string{} : it->second;
  }
};

/// "%41+b" -> "A b" (with `plus_is_space`, as in a query) or "A+b" (a path). A malformed
/// escape is kept as it is.
std::string percent_decode(std::string_view in, bool plus_is_space);

/// What a Range header asks of a representation of `size` bytes (RFC 9110 §14).
struct byte_range {
  enum kind_t { whole, part, unsatisfiable } kind = whole;
  uint64_t first = 0;  ///< with `part`: the first byte
  uint64_t last = 0;   ///< with `part`: the last byte (inclusive)
};
/// "bytes=0-99", "bytes=100-", "bytes=-500". A header that is not a bytes range is ignored
/// (`whole`, as RFC 9110 allows); of several ranges only the first is served; a range that
/// starts at or past the end is `unsatisfiable` (416).
byte_range parse_range(std::string_view header, uint64_t size);

/// Literal text that every full match of the ECMAScript regex `pattern` starts and ends with
/// ("" where that cannot be told simply, e.g. with an alternation). The edge compares them
/// before running a route's regex: with dozens of routes, most are ruled out by a string compare.
struct literal_ends {
  std::string prefix;
  std::string suffix;
};
literal_ends regex_literal_ends(std::string_view pattern);

/// "a=1&b=x%20y" -> {a: "1", b: "x y"}.
std::multimap<std::string, std::string> parse_query(std::string_view query);

}  // namespace chorus::edge
