#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <google/protobuf/struct.pb.h>

#include "http_edge/error_table.hpp"
#include "http_edge/http_message.hpp"

// JSON request bodies, read the one way every route group does: a JSON object with only the
// allowed keys, typed fields with their limits, and a refusal (status + message) otherwise.

namespace chorus::edge {

/// A refused body: the HTTP answer and why.
struct refusal {
  http_error error;
  std::string message;
};

/// A field: nothing when absent, the value, or why it was refused.
template <class T>
using field = std::variant<std::optional<T>, refusal>;

std::string lower_ascii(std::string s);

/// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s);

/// Characters (code points) of UTF-8 text.
size_t utf8_length(const std::string& s);

/// The body as a JSON object with no keys but `allowed`: 415 without Content-Type
/// application/json, 400 for anything but a JSON object, 422 for an unknown key.
std::variant<google::protobuf::Struct, refusal> json_object(
    const http_request& req, std::initializer_list<std::string_view> allowed);

/// A string of `min..max` characters.
field<std::string> string_field(const google::protobuf::Struct& o, const char* key, size_t min,
                                size_t max);

/// A whole number in `min..max`.
field<int64_t> int_field(const google::protobuf::Struct& o, const char* key, int64_t min,
                         int64_t max);

/// A number (fractions allowed) in `min..max`.
field<double> number_field(const google::protobuf::Struct& o, const char* key, double min,
                           double max);

/// A list of at most `max_items` strings, each `1..max_chars` characters.
field<std::vector<std::string>> string_list_field(const google::protobuf::Struct& o,
                                                  const char* key, size_t max_items,
                                                  size_t max_chars);

/// The first refusal among `fields`, if any.
template <class... Fields>
const refusal* first_refusal(const Fields&... fields) {
  const refusal* out = nullptr;
  ((out = out != nullptr ? out : std::get_if<refusal>(&fields)), ...);
  return out;
}

/// The value of a field that was not refused (nothing when absent).
template <class T>
const std::optional<T>& value_of(const field<T>& f) {
  return std::get<std::optional<T>>(f);
}

/// `?limit=` (1..100, default 20) and `?cursor=` (at most 200 bytes) of a list route.
struct page_request {
  int limit = 20;
  std::string cursor;
};
std::variant<page_request, refusal> page_params(const http_request& req);

void send_refusal(http_response& res, const refusal& r, const std::string& rid);

}  // namespace chorus::edge
