#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "http_edge/live_connections.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

// The edge frames live events itself (one frame for all the subscribers of a node) and writes
// them to the socket under Beast: a WebSocket client must read them as the messages they carry,
// at each boundary of the length encoding (7 bits, 16 bits, 64 bits).
TEST_CASE("frames made by ws_text_frame are read by a WebSocket client as the text sent") {
  std::vector<std::string> payloads;
  for (size_t n : {0, 1, 125, 126, 127, 65535, 65536, 200000}) {
    std::string p(n, 'x');
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>('a' + i % 26);
    payloads.push_back(std::move(p));
  }
  payloads.emplace_back(R"({"type":"event","topic":"rooms/r1","data":{"text":"héllo"}})");

  net::io_context io;
  tcp::acceptor acceptor{io, {net::ip::make_address("127.0.0.1"), 0}};
  auto port = acceptor.local_endpoint().port();
  std::string server_error;
  std::thread server{[&] {
    try {
      websocket::stream<tcp::socket> ws{acceptor.accept()};
      ws.accept();
      // Past the handshake the frames go straight to the socket, as the edge's writer does.
      for (const auto& p : payloads)
        net::write(ws.next_layer(), net::buffer(chorus::edge::ws_text_frame(p)));
      beast::flat_buffer b;
      beast::error_code ec;
      ws.read(b, ec);  // until the client closes
    } catch (const std::exception& e) {
      server_error = e.what();
    }
  }};

  net::io_context cio;
  websocket::stream<tcp::socket> client{cio};
  client.next_layer().connect({net::ip::make_address("127.0.0.1"), port});
  client.handshake("127.0.0.1", "/");
  for (const auto& p : payloads) {
    beast::flat_buffer b;
    client.read(b);
    CHECK(client.got_text());
    CHECK(beast::buffers_to_string(b.data()) == p);
  }
  client.close(websocket::close_code::normal);
  server.join();
  CHECK(server_error.empty());
}

TEST_CASE("a text frame's header is FIN and text, unmasked, with the shortest length encoding") {
  CHECK(chorus::edge::ws_text_frame("hi") == std::string{"\x81\x02hi"});
  auto f126 = chorus::edge::ws_text_frame(std::string(126, 'a'));
  CHECK(f126.substr(0, 4) == std::string{"\x81\x7e\x00\x7e", 4});
  CHECK(f126.size() == 4 + 126);
  auto f64k = chorus::edge::ws_text_frame(std::string(65536, 'a'));
  CHECK(f64k.substr(0, 10) == std::string{"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10});
  CHECK(f64k.size() == 10 + 65536);
}
