#include "http_edge/json_body.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <google/protobuf/util/json_util.h>

#include "http_edge/edge_api.hpp"

namespace chorus::edge {

using google::protobuf::Struct;
using google::protobuf::Value;

namespace {

refusal invalid(const char* key, const std::string& rule) {
  return refusal{{422, "validation", 0}, std::string{key} + " must be " + rule};
}

}  // namespace

std::string lower_ascii(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < smallest[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::variant<Struct, refusal> json_object(const http_request& req,
                                          std::initializer_list<std::string_view> allowed) {
  auto type = req.get_header_value("Content-Type");
  if (lower_ascii(type.substr(0, type.find(';'))) != "application/json")
    return refusal{{415, "unsupported_media_type", 0}, "send Content-Type: application/json"};
  Struct out;
  if (!google::protobuf::util::JsonStringToMessage(req.body, &out).ok())
    return refusal{{400, "malformed_json", 0}, "the body is not a JSON object"};
  for (const auto& [key, value] : out.fields())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return refusal{{422, "validation", 0}, "unknown field " + key};
  return out;
}

field<std::string> string_field(const Struct& o, const char* key, size_t min, size_t max) {
  auto it = o.fields().find(key);
  if (it == o.fields().end()) return std::optional<std::string>{};
  if (it->second.kind_case() != Value::kStringValue) return invalid(key, "a string");
  const auto& s = it->second.string_value();
  auto n = utf8_length(s);
  if (n < min || n > max)
    return invalid(key, std::to_string(min) + ".." + std::to_string(max) + " characters");
  return std::optional<std::string>{s};
}

field<int64_t> int_field(const Struct& o, const char* key, int64_t min, int64_t max) {
  auto it = o.fields().find(key);
  if (it == o.fields().end()) return std::optional<int64_t>{};
  auto rule = "a whole number in " + std::to_string(min) + ".." + std::to_string(max);
  if (it->second.kind_case() != Value::kNumberValue) return invalid(key, rule);
  auto v = it->second.number_value();
  if (!std::isfinite(v) || v != std::floor(v) || v < static_cast<double>(min) ||
      v > static_cast<double>(max))
    return invalid(key, rule);
  return std::optional<int64_t>{static_cast<int64_t>(v)};
}

field<double> number_field(const Struct& o, const char* key, double min, double max) {
  auto it = o.fields().find(key);
  if (it == o.fields().end()) return std::optional<double>{};
  auto v = it->second.number_value();
  if (it->second.kind_case() != Value::kNumberValue || !std::isfinite(v) || v < min || v > max)
    return invalid(key, "a number in " + std::to_string(min) + ".." + std::to_string(max));
  return std::optional<double>{v};
}

field<std::vector<std::string>> string_list_field(const Struct& o, const char* key,
                                                  size_t max_items, size_t max_chars) {
  auto it = o.fields().find(key);
  if (it == o.fields().end()) return std::optional<std::vector<std::string>>{};
  auto rule = "a list of at most " + std::to_string(max_items) + " strings of 1.." +
              std::to_string(max_chars) + " characters";
  if (it->second.kind_case() != Value::kListValue) return invalid(key, rule);
  const auto& list = it->second.list_value().values();
  if (static_cast<size_t>(list.size()) > max_items) return invalid(key, rule);
  std::vector<std::string> out;
  for (const auto& v : list) {
    if (v.kind_case() != Value::kStringValue) return invalid(key, rule);
    auto n = utf8_length(v.string_value());
    if (n < 1 || n > max_chars) return invalid(key, rule);
    out.push_back(v.string_value());
  }
  return std::optional<std::vector<std::string>>{std::move(out)};
}

std::variant<page_request, refusal> page_params(const http_request& req) {
  page_request out;
  refusal bad{{422, "validation", 0}, "limit must be 1..100"};
  if (req.has_param("limit")) {
    auto text = req.get_param_value("limit");
    if (text.empty() || text.size() > 3 ||
        !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); }))
      return bad;
    out.limit = std::stoi(text);
  }
  out.cursor = req.get_param_value("cursor");
  if (out.limit < 1 || out.limit > 100) return bad;
  if (out.cursor.size() > 200) return refusal{{422, "validation", 0}, "cursor is too long"};
  return out;
}

void send_refusal(http_response& res, const refusal& r, const std::string& rid) {
  send_error(res, r.error, r.message, rid);
}

}  // namespace chorus::edge
