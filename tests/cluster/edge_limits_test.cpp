#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/support/test_cluster.hpp"

// The edge's own limits against a real node: request and header sizes, JSON depth, and
// clients that send slowly or not at all.

using namespace chorus;
using namespace std::chrono_literals;

namespace {

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// A raw TCP connection to 127.0.0.1:port (for requests no HTTP client library would send).
class raw_conn {
 public:
  explicit raw_conn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~raw_conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_conn(const raw_conn&) = delete;
  raw_conn& operator=(const raw_conn&) = delete;
  raw_conn(raw_conn&& o) noexcept : fd_(o.fd_), connected_(o.connected_) { o.fd_ = -1; }

  [[nodiscard]] bool connected() const { return connected_; }

  /// Sends all of `bytes`; false when the server closed meanwhile.
  bool send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  /// Reads until the server closes the connection or `timeout` passes without data; what came.
  std::string read_all(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    char buf[4096];
    for (;;) {
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) {
        closed_ = true;
        break;
      }
      if (n < 0) {
        if (errno == ECONNRESET) closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  /// Whether the last read_all ended because the server closed the connection.
  [[nodiscard]] bool closed_by_server() const { return closed_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
};

std::string status_line(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

}  // namespace

TEST_CASE(
    "the edge refuses a body over 1 MiB with 413, headers over 16 KiB with 431, garbage with "
    "400, and deeply nested JSON with 400, each in the one error shape, and keeps serving") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto port = c.at(0).http_port;

  // A declared body over the limit is refused before it is read.
  {
    raw_conn conn{port};
    REQUIRE(conn.connected());
    conn.send(
        "POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2000000\r\n\r\n");
    auto res = conn.read_all(10s);
    CHECK(status_line(res) == "HTTP/1.1 413 Payload Too Large");
    CHECK(has(res, R"({"error":{"code":"payload_too_large")"));
    CHECK(has(res, R"("request_id":")"));
  }
  // A chunked body that grows past the limit is cut off as it arrives.
  {
    raw_conn conn{port};
    conn.send(
        "POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n");
    std::string chunk(64 * 1024, 'a');
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
    for (int i = 0; i < 17 && conn.send(size + chunk + "\r\n"); ++i) {
    }
    auto res = conn.read_all(10s);
    CHECK(status_line(res) == "HTTP/1.1 413 Payload Too Large");
  }
  // Headers over 16 KiB.
  {
    raw_conn conn{port};
    conn.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(20000, 'b') +
              "\r\n\r\n");
    auto res = conn.read_all(10s);
    CHECK(status_line(res) == "HTTP/1.1 431 Request Header Fields Too Large");
    CHECK(has(res, R"({"error":{"code":"headers_too_large")"));
  }
  // Not HTTP at all.
  {
    raw_conn conn{port};
    conn.send("\x16\x03\x01 this is not http\r\n\r\n");
    auto res = conn.read_all(10s);
    CHECK(status_line(res) == "HTTP/1.1 400 Bad Request");
    CHECK(has(res, R"({"error":{"code":"bad_request")"));
  }
  // JSON nested 100,000 deep (600 KB, under the body limit): refused, the node does not
  // overflow its stack.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += R"({"a":)";
  deep += "1";
  deep += std::string(100000, '}');
  auto r = test::http_call(port, "POST", "/v1/auth/register", deep);
  CHECK(r.status == 400);
  CHECK(has(r.body, R"({"error":{"code":"malformed_json")"));
  CHECK(test::http_get(port, "/healthz").status == 200);
}

TEST_CASE(
    "clients that send half a request cost the edge no thread: 300 of them stall while others "
    "are served, and each is closed after the client timeout") {
  test::test_cluster c{1};
  c.set_section("chorus.edge", "read-limit=0\nwrite-limit=0\nclient-timeout=2s\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto port = c.at(0).http_port;

  std::vector<raw_conn> stalled;
  stalled.reserve(300);
  for (int i = 0; i < 300; ++i) {
    stalled.emplace_back(port);
    REQUIRE(stalled.back().connected());
    // The request line and one header, never the blank line that ends the headers.
    REQUIRE(stalled.back().send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  }
  // Far more stalled clients than worker threads (64): the edge still answers, reads and
  // entity-backed requests alike.
  CHECK(test::http_get(port, "/healthz").status == 200);
  auto reg = test::http_call(port, "POST", "/v1/auth/register",
                             R"({"username":"patient)" + std::to_string(port) +
                                 R"(","email":"patient)" + std::to_string(port) +
                                 R"(@example.org","password":"correct horse battery"})");
  CHECK_MESSAGE(reg.status == 201, reg.body);
  // The stalled clients are closed by the server (not by the 20 s this test waits at most).
  size_t closed = 0;
  for (auto& conn : stalled) {
    conn.read_all(20s);
    closed += conn.closed_by_server() ? 1 : 0;
  }
  CHECK(closed == stalled.size());
}
