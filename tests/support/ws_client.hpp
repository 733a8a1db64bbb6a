#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <doctest/doctest.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

// A blocking WebSocket client for cluster tests (/v1/ws), and reading fields of the JSON it
// receives.

namespace chorus::test {

namespace ws_detail {
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
}  // namespace ws_detail

using namespace ws_detail;

/// A JSON object's field as text ("" when absent); numbers as integers.
inline std::string field(const std::optional<std::string>& json, const std::string& path) {
  if (!json) return "(no message)";
  google::protobuf::Struct s;
  if (!google::protobuf::util::JsonStringToMessage(*json, &s).ok()) return "(not JSON)";
  const google::protobuf::Struct* at = &s;
  std::string rest = path;
  for (;;) {
    auto dot = rest.find('.');
    auto key = rest.substr(0, dot);
    auto it = at->fields().find(key);
    if (it == at->fields().end()) return "";
    if (dot == std::string::npos) {
      const auto& v = it->second;
      if (v.kind_case() == google::protobuf::Value::kStringValue) return v.string_value();
      if (v.kind_case() == google::protobuf::Value::kNumberValue)
        return std::to_string(static_cast<int64_t>(v.number_value()));
      return "(other)";
    }
    if (it->second.kind_case() != google::protobuf::Value::kStructValue) return "";
    at = &it->second.struct_value();
    rest = rest.substr(dot + 1);
  }
}

/// A WebSocket client on its own io_context. Reads are asynchronous and run for a bounded
/// time, so a test never hangs and the client answers the server's pings while it reads (and
/// only then: a client whose next() is never called does not answer).
class ws_client {
 public:
  /// Connects to 127.0.0.1:port and upgrades `target`; with `token`, as a bearer. A small
  /// `rcvbuf` makes the client's kernel buffer little (slow-reader tests).
  ws_client(uint16_t port, const std::string& target, const std::string& token, int rcvbuf = 0) {
    auto& sock = ws_.next_layer();
    sock.open(tcp::v4());
    if (rcvbuf > 0) sock.set_option(net::socket_base::receive_buffer_size(rcvbuf));
    beast::error_code ec;
    sock.connect({net::ip::make_address("127.0.0.1"), port}, ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    ws_.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
      if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    }));
    ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::ping) ++pings_;
    });
    // The asynchronous handshake hands back the server's answer when it declines (Beast 1.74's
    // synchronous one does not).
    websocket::response_type res;
    bool done = false;
    ws_.async_handshake(res, "127.0.0.1:" + std::to_string(port), target,
                        [&](beast::error_code) { done = true; });
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc_.run_for(50ms);
    REQUIRE_MESSAGE(done, "no answer to the upgrade");
    status_ = res.result_int();
  }

  /// 101 once upgraded, else the status the server refused with.
  [[nodiscard]] int status() const { return status_; }
  [[nodiscard]] size_t pings() const { return pings_; }

  void send(const std::string& text) {
    beast::error_code ec;
    ws_.text(true);
    ws_.write(net::buffer(text), ec);
    CHECK_MESSAGE(!ec, ec.message());
  }

  /// The next text message, or nothing when the connection ended or `timeout` passed.
  std::optional<std::string> next(std::chrono::milliseconds timeout = 10s) {
    if (ended_) return std::nullopt;
    if (!reading_) {
      reading_ = true;
      ws_.async_read(buffer_, [this](beast::error_code ec, size_t) {
        reading_ = false;
        if (ec) {
          ended_ = true;
          return;
        }
        message_ = beast::buffers_to_string(buffer_.data());
        buffer_.consume(buffer_.size());
      });
    }
    ioc_.restart();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (reading_ && std::chrono::steady_clock::now() < deadline) ioc_.run_for(50ms);
    if (reading_ || ended_) return std::nullopt;
    return std::move(message_);
  }

  /// Keeps reading (answering pings) until `n` pings arrived; false after `timeout`.
  bool await_pings(size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pings_ < n && std::chrono::steady_clock::now() < deadline) {
      auto m = next(100ms);
      if (m) FAIL("unexpected message while waiting for pings: " << *m);
      if (ended_) return false;
    }
    return pings_ >= n;
  }

  [[nodiscard]] bool ended() const { return ended_; }

 private:
  net::io_context ioc_;
  websocket::stream<tcp::socket> ws_{ioc_};
  beast::flat_buffer buffer_;
  std::string message_;
  bool reading_ = false;
  bool ended_ = false;
  int status_ = 0;
  size_t pings_ = 0;
};

}  // namespace chorus::test
