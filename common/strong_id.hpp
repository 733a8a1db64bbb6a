#pragma once

#include <compare>
#include <functional>
#include <string>
#include <utility>

namespace chorus {

/// A string identifier tagged with the kind of thing it names, so that a `node_name` can never be
/// passed where a `user_id` is expected. Value type; cheap to copy for short ids.
template <class Tag>
class strong_id {
 public:
  strong_id() = default;
  explicit strong_id(std::string value) : value_(std::move(value)) {}

  [[nodiscard]] const std::string& str() const noexcept { return value_; }
  [[nodiscard]] bool empty() const noexcept { return value_.empty(); }

  friend auto operator<=>(const strong_id&, const strong_id&) = default;

 private:
  std::string value_;
};

}  // namespace chorus

template <class Tag>
struct std::hash<chorus::strong_id<Tag>> {
  size_t operator()(const chorus::strong_id<Tag>& x) const noexcept {
    return std::hash<std::string>{}(x.str());
  }
};
