#pragma once

#include <optional>
#include <string>

#include <doctest/doctest.h>
#include <google/protobuf/util/json_util.h>

#include "tests/support/test_cluster.hpp"

// Reading the edge's answers in cluster tests: JSON bodies as protobuf messages, the one error
// shape.

namespace chorus::test {

/// `json` as `Message` (unknown fields ignored); nothing when it does not parse.
template <class Message>
std::optional<Message> parse_json(const std::string& json) {
  Message m;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(json, &m, opts).ok()) return std::nullopt;
  return m;
}

template <class Message>
std::optional<Message> parse_json(const http_reply& r) {
  return parse_json<Message>(r.body);
}

inline bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Whether `r` is the one error shape with `status` and `code` and a request id; says what came
/// instead when not.
inline bool error_is(const http_reply& r, int status, const std::string& code) {
  bool ok = r.status == status && has(r.body, R"({"error":{"code":")" + code + R"(")") &&
            has(r.body, R"("request_id":")");
  if (!ok) MESSAGE("expected " << status << " " << code << ", got " << r.status << ": " << r.body);
  return ok;
}

}  // namespace chorus::test
