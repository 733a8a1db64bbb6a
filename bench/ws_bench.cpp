// The WebSocket side of `./chorus bench edge` (bench/edge.sh):
//   ws_bench serve PORT          a minimal WebSocket server on one Boost.Beast event loop (the
//                                peer): accepts, upgrades, reads and drops what clients send
//   ws_bench hold PORT N SECS [TOKEN [TOPIC]]
//                                opens N WebSocket connections to 127.0.0.1:PORT /v1/ws (with the
//                                bearer TOKEN, subscribing to TOPIC), prints "open N" once all
//                                are up, holds them SECS seconds, then prints "held N" (the ones
//                                still open) and exits
// Both are single-threaded asio programs; the edge script measures the server's memory and CPU.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// ---- the peer: a minimal event-loop WebSocket server ----

class peer_session : public std::enable_shared_from_this<peer_session> {
 public:
  explicit peer_session(tcp::socket s) : ws_(std::move(s)) {}
  void run() {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->read();
    });
  }

 private:
  void read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return;
      self->buf_.consume(self->buf_.size());
      self->read();
    });
  }
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buf_;
};

void serve(uint16_t port) {
  net::io_context ioc{1};
  tcp::acceptor acc{ioc, {net::ip::make_address("127.0.0.1"), port}};
  acc.listen(4096);
  std::function<void()> accept = [&] {
    acc.async_accept([&](beast::error_code ec, tcp::socket s) {
      if (!ec) std::make_shared<peer_session>(std::move(s))->run();
      accept();
    });
  };
  accept();
  std::printf("serving %u\n", port);
  std::fflush(stdout);
  ioc.run();
}

// ---- the client: N idle connections ----

struct hold_state {
  net::io_context ioc{1};
  uint16_t port = 0;
  std::string token;
  std::string topic;
  size_t wanted = 0;
  size_t started = 0;
  size_t open = 0;
  size_t failed = 0;
  size_t closed = 0;
};

class client : public std::enable_shared_from_this<client> {
 public:
  explicit client(hold_state& st) : st_(st), ws_(st.ioc) {}

  void run(std::function<void()> next) {
    next_ = std::move(next);
    ws_.next_layer().async_connect(
        {net::ip::make_address("127.0.0.1"), st_.port},
        [self = shared_from_this()](beast::error_code ec) {
          if (ec) return self->fail();
          self->ws_.set_option(
              websocket::stream_base::decorator([t = self->st_.token](websocket::request_type& r) {
                if (!t.empty()) r.set(http::field::authorization, "Bearer " + t);
              }));
          self->ws_.async_handshake("127.0.0.1:" + std::to_string(self->st_.port), "/v1/ws",
                                    [self](beast::error_code ec) {
                                      if (ec) return self->fail();
                                      if (self->st_.topic.empty()) return self->opened();
                                      self->msg_ = R"({"type":"subscribe","topic":")" +
                                                   self->st_.topic + R"("})";
                                      self->ws_.async_write(net::buffer(self->msg_),
                                                            [self](beast::error_code ec, size_t) {
                                                              if (ec) return self->fail();
                                                              self->opened();
                                                            });
                                    });
        });
  }

 private:
  void opened() {
    ++st_.open;
    read();
    next_();
  }
  void fail() {
    ++st_.failed;
    next_();
  }
  // Reads (answering the server's pings) until the connection ends.
  void read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        ++self->st_.closed;
        return;
      }
      self->buf_.consume(self->buf_.size());
      self->read();
    });
  }

  hold_state& st_;
  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buf_;
  std::string msg_;
  std::function<void()> next_;
};

int hold(uint16_t port, size_t n, int seconds, std::string token, std::string topic) {
  hold_state st;
  st.port = port;
  st.wanted = n;
  st.token = std::move(token);
  st.topic = std::move(topic);
  // At most 256 handshakes in flight: a burst of 10,000 SYNs would overflow the listen queue.
  std::function<void()> start_one = [&] {
    if (st.started >= st.wanted) {
      if (st.open + st.failed == st.wanted) {
        std::printf("open %zu failed %zu\n", st.open, st.failed);
        std::fflush(stdout);
      }
      return;
    }
    ++st.started;
    std::make_shared<client>(st)->run(start_one);
  };
  for (int i = 0; i < 256; ++i) start_one();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes{5};
  while (st.open + st.failed < st.wanted && std::chrono::steady_clock::now() < deadline)
    st.ioc.run_for(std::chrono::milliseconds{100});
  st.ioc.run_for(std::chrono::seconds{seconds});
  std::printf("held %zu\n", st.open - st.closed);
  std::fflush(stdout);
  return st.failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve" && argc == 3) {
    serve(static_cast<uint16_t>(std::atoi(argv[2])));
    return 0;
  }
  if (mode == "hold" && argc >= 5)
    return hold(static_cast<uint16_t>(std::atoi(argv[2])), std::strtoul(argv[3], nullptr, 10),
                std::atoi(argv[4]), argc > 5 ? argv[5] : "", argc > 6 ? argv[6] : "");
  std::fprintf(stderr, "usage: ws_bench serve PORT | ws_bench hold PORT N SECS [TOKEN [TOPIC]]\n");
  return 2;
}
