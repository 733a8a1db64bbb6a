#pragma once

// Internal to persistence/: PostgreSQL array literals for parameters such as `$1::bigint[]`,
// so that a whole batch travels as a few parameters of one statement.

#include <string>
#include <vector>

namespace chorus::persistence::detail {

/// An array literal of text elements: {"a","b\"c"}.
inline std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + '}';
}

/// An array literal of numbers: {1,2,3}. Also for `bigint[]`, `xid8[]` and, from a
/// std::vector<bool>, `boolean[]` (PostgreSQL reads 1 and 0 as true and false).
template <class Int>
std::string int_array(const std::vector<Int>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(items[i]);
  }
  return out + '}';
}

}  // namespace chorus::persistence::detail
