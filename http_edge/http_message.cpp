#include "http_edge/http_message.hpp"

namespace chorus::edge {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

literal_ends regex_literal_ends(std::string_view p) {
  constexpr std::string_view meta = "\\^$.|?*+()[]{}";
  constexpr std::string_view quantifiers = "?*+{";
  if (p.find('|') != std::string_view::npos) return {};
  size_t i = 0;
  while (i < p.size() && meta.find(p[i]) == std::string_view::npos) ++i;
  // A quantifier makes the character before it optional or repeated: not part of the prefix.
  if (i < p.size() && i > 0 && quantifiers.find(p[i]) != std::string_view::npos) --i;
  size_t j = p.size();
  while (j > i && meta.find(p[j - 1]) == std::string_view::npos) --j;
  // After a backslash the first character is an escape (\d, \w ...), not a literal.
  if (j > 0 && j < p.size() && p[j - 1] == '\\') ++j;
  return {std::string{p.substr(0, i)}, std::string{p.substr(j)}};
}

byte_range parse_range(std::string_view header, uint64_t size) {
  constexpr std::string_view unit = "bytes=";
  if (header.substr(0, unit.size()) != unit) return {};
  auto spec = header.substr(unit.size());
  spec = spec.substr(0, spec.find(','));  // several ranges: the first is served
  while (!spec.empty() && spec.front() == ' ') spec.remove_prefix(1);
  while (!spec.empty() && spec.back() == ' ') spec.remove_suffix(1);
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  auto number = [](std::string_view digits, uint64_t& out) {
    if (digits.empty() || digits.size() > 19) return false;
    out = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
  };
  uint64_t a = 0;
  uint64_t b = 0;
  auto left = spec.substr(0, dash);
  auto right = spec.substr(dash + 1);
  if (left.empty()) {  // a suffix: the last b bytes
    if (!number(right, b)) return {};
    if (b == 0 || size == 0) return {byte_range::unsatisfiable};
    return {byte_range::part, size - std::min(b, size), size - 1};
  }
  if (!number(left, a)) return {};
  if (!right.empty() && (!number(right, b) || b < a)) return {};
  if (a >= size) return {byte_range::unsatisfiable};
  return {byte_range::part, a, right.empty() ? size - 1 : std::min(b, size - 1)};
}

std::multimap<std::string, std::string> parse_query(std::string_view query) {
  std::multimap<std::string, std::string> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto key = pair.substr(0, eq);
    auto value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    out.emplace(percent_decode(key, true), percent_decode(value, true));
  }
  return out;
}

}  // namespace chorus::edge
