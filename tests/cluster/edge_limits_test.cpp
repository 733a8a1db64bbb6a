#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/raw_conn.hpp"
#include "tests/support/test_cluster.hpp"

// The edge's own limits against a real node: request and header sizes, JSON depth, and
// clients that send slowly or not at all.

using namespace chorus;
using namespace std::chrono_literals;

namespace {

using test::raw_conn;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

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
