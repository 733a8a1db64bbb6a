// The client side of `./chorus bench chat` (bench/chat.sh): one room with N members on
// WebSockets across the bench cluster's nodes against Redis PUBLISH to N subscribers.
//
//   chat_bench accounts CACHE KEY COUNT PORTS
//       makes sure COUNT accounts ("chatbench00000".., index 0 is the poster) exist and have a
//       working token, spread over the nodes' HTTP PORTS (comma-separated). CACHE is a TSV of
//       "index user-id token" whose first line names KEY (the bench database): another key means
//       a fresh database and the cache is thrown away. Cached tokens are checked with GET /v1/me;
//       only dead ones log in again. Registration is throttled to 10 per client address and hour
//       and the edge trusts no X-Forwarded-For, so account i registers and logs in from
//       127.77.x.y, ten accounts per address (all of 127/8 is loopback on Linux).
//   chat_bench room CACHE PORTS MEMBERS
//       the poster creates a public room and accounts 1..MEMBERS join it; prints "room <id>"
//   chat_bench chorus CACHE PORTS ROOM MEMBERS SECONDS INTERVAL_MS
//       members 1..MEMBERS open /v1/ws (spread evenly over PORTS) and subscribe to rooms/ROOM;
//       then the poster POSTs a message every INTERVAL_MS for SECONDS (round-robin over the
//       nodes, one keep-alive connection each) whose text is "<send time, µs since the epoch on
//       the system clock>:<index>"; every member takes receive time - send time
//   chat_bench redis PORT MEMBERS SECONDS INTERVAL_MS
//       the peer: MEMBERS RESP connections SUBSCRIBE to one channel, one connection PUBLISHes
//       the same payload on the same schedule
// Both runs print one line: "result <side> members= messages= expected= delivered= dup=
// closed= p50_ms= p99_ms= max_ms= send_p50_ms= send_max_ms= post_failed=".
//
// The receiving clients run on CHAT_BENCH_THREADS event loops (2 by default): one loop for
// 5,000 connections would itself be the bottleneck of the measurement. The sender is a thread
// of its own with blocking I/O.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<uint16_t> parse_ports(const std::string& s) {
  std::vector<uint16_t> out;
  std::stringstream in{s};
  std::string part;
  while (std::getline(in, part, ','))
    if (!part.empty()) out.push_back(static_cast<uint16_t>(std::stoi(part)));
  return out;
}

/// The string value of the first `"key":"..."` in a protobuf-made JSON text (no spaces, no
/// escapes in the values we read: ids, tokens, digits).
std::string json_str(std::string_view body, std::string_view key, size_t from = 0) {
  std::string pat = "\"" + std::string{key} + "\":\"";
  auto at = body.find(pat, from);
  if (at == std::string_view::npos) return {};
  at += pat.size();
  auto end = body.find('"', at);
  return end == std::string_view::npos ? std::string{} : std::string{body.substr(at, end - at)};
}

std::string username_of(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "chatbench%05zu", i);
  return buf;
}

/// The loopback address account `i` registers and logs in from: ten accounts per address.
std::string source_of(size_t i) {
  size_t a = i / 10;
  return "127.77." + std::to_string(a / 250) + "." + std::to_string(a % 250 + 1);
}

// ---- a blocking HTTP/1.1 keep-alive client ----

struct http_answer {
  int status = -1;  // -1: no answer (the body says why)
  std::string body;
};

/// One keep-alive connection to 127.0.0.1:port, optionally from a given source address. Owned
/// by one thread.
class http_conn {
 public:
  explicit http_conn(uint16_t port, std::string source = {})
      : port_(port), source_(std::move(source)) {}

  http_answer call(http::verb verb, const std::string& target, const std::string& body,
                   const std::string& token) {
    for (int attempt = 0;; ++attempt) {
      beast::error_code ec;
      bool fresh = !sock_.is_open();
      if (fresh) connect(ec);
      if (!ec) {
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, "127.0.0.1:" + std::to_string(port_));
        req.keep_alive(true);
        if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
        if (!body.empty()) {
          req.set(http::field::content_type, "application/json");
          req.body() = body;
        }
        req.prepare_payload();
        http::write(sock_, req, ec);
        if (!ec) {
          http::response<http::string_body> res;
          http::read(sock_, buf_, res, ec);
          if (!ec) {
            if (!res.keep_alive()) close();
            return {static_cast<int>(res.result_int()), std::move(res.body())};
          }
        }
      }
      close();
      // A kept-alive connection the server closed meanwhile is retried once on a new one.
      if (fresh || attempt > 0) return {-1, ec.message()};
    }
  }

 private:
  void connect(beast::error_code& ec) {
    sock_.open(tcp::v4(), ec);
    if (ec) return;
    if (!source_.empty()) {
      sock_.bind({net::ip::make_address(source_), 0}, ec);
      if (ec) return;
    }
    sock_.set_option(tcp::no_delay(true), ec);
    sock_.connect({net::ip::make_address("127.0.0.1"), port_}, ec);
  }
  void close() {
    beast::error_code ec;
    sock_.close(ec);
    buf_.clear();
  }

  net::io_context ioc_{1};
  tcp::socket sock_{ioc_};
  beast::flat_buffer buf_;
  uint16_t port_;
  std::string source_;
};

// ---- accounts ----

struct account {
  std::string id;
  std::string token;
};

/// Reads the cache: empty when missing or made for another database.
std::map<size_t, account> load_cache(const std::string& path, const std::string& key) {
  std::map<size_t, account> out;
  std::ifstream in{path};
  std::string line;
  if (!std::getline(in, line) || line != "# chat_bench accounts " + key) return out;
  while (std::getline(in, line)) {
    std::stringstream s{line};
    size_t i = 0;
    account a;
    if (s >> i >> a.id >> a.token) out[i] = a;
  }
  return out;
}

void save_cache(const std::string& path, const std::string& key,
                const std::map<size_t, account>& accounts) {
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp};
    out << "# chat_bench accounts " << key << "\n";
    for (const auto& [i, a] : accounts)
      if (!a.token.empty()) out << i << "\t" << a.id << "\t" << a.token << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

int accounts(const std::string& cache, const std::string& key, size_t count,
             const std::vector<uint16_t>& ports) {
  auto known = load_cache(cache, key);
  std::mutex mu;
  std::atomic<size_t> next{0};
  size_t verified = 0, registered = 0, logged_in = 0, failed = 0, done = 0;
  std::string first_error;
  const std::string password = "correct horse battery";
  auto worker = [&] {
    std::map<uint16_t, std::unique_ptr<http_conn>> conns;
    auto conn = [&](uint16_t port) -> http_conn& {
      auto& c = conns[port];
      if (!c) c = std::make_unique<http_conn>(port);
      return *c;
    };
    for (size_t i; (i = next++) < count;) {
      auto port = ports[i % ports.size()];
      std::optional<account> cached;
      {
        std::lock_guard<std::mutex> g{mu};
        if (auto it = known.find(i); it != known.end()) cached = it->second;
      }
      std::string error;
      account got;
      bool was_verified = false, was_registered = false;
      if (cached) {
        auto me = conn(port).call(http::verb::get, "/v1/me", "", cached->token);
        if (me.status == 200 && json_str(me.body, "id") == cached->id) {
          got = *cached;
          was_verified = true;
        } else if (me.status != 401) {
          error = "GET /v1/me: " + std::to_string(me.status) + " " + me.body;
        }
      }
      if (!was_verified && error.empty()) {
        http_conn from{port, source_of(i)};
        auto name = username_of(i);
        if (!cached) {
          auto reg = from.call(http::verb::post, "/v1/auth/register",
                               R"({"username":")" + name + R"(","email":")" + name +
                                   R"(@example.org","password":")" + password + "\"}",
                               "");
          // 409: registered by an earlier run that did not get to write the cache.
          if (reg.status == 201)
            was_registered = true;
          else if (reg.status != 409)
            error = "register " + name + ": " + std::to_string(reg.status) + " " + reg.body;
        }
        if (error.empty()) {
          auto login =
              from.call(http::verb::post, "/v1/auth/login",
                        R"({"username":")" + name + R"(","password":")" + password + "\"}", "");
          auto user_at = login.body.find("\"user\":");
          got.token = json_str(login.body, "token");
          got.id = user_at == std::string::npos ? "" : json_str(login.body, "id", user_at);
          if (login.status != 200 || got.token.empty() || got.id.empty())
            error = "login " + name + ": " + std::to_string(login.status) + " " + login.body;
        }
      }
      std::lock_guard<std::mutex> g{mu};
      if (!error.empty()) {
        if (failed++ == 0) first_error = error;
      } else {
        known[i] = got;
        if (was_verified)
          ++verified;
        else if (was_registered)
          ++registered, ++logged_in;
        else
          ++logged_in;
      }
      if (++done % 500 == 0) {
        std::fprintf(stderr, "    accounts: %zu/%zu (registered %zu, logged in %zu, failed %zu)\n",
                     done, count, registered, logged_in, failed);
        save_cache(cache, key, known);
      }
    }
  };
  // Password hashing is the cost (argon2id, a few at once per node): two requests per node in
  // flight keep every node's hashing busy without queueing on its semaphore.
  size_t jobs = std::getenv("CHAT_BENCH_JOBS")
                    ? std::strtoul(std::getenv("CHAT_BENCH_JOBS"), nullptr, 10)
                    : 2 * ports.size();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < jobs; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  save_cache(cache, key, known);
  std::printf("accounts %zu verified %zu registered %zu logged_in %zu failed %zu\n", count,
              verified, registered, logged_in, failed);
  if (failed > 0) std::fprintf(stderr, "first failure: %s\n", first_error.c_str());
  return failed == 0 ? 0 : 1;
}

std::vector<account> cached_accounts(const std::string& cache, size_t count) {
  std::ifstream in{cache};
  std::string line;
  std::getline(in, line);
  std::vector<account> out(count);
  while (std::getline(in, line)) {
    std::stringstream s{line};
    size_t i = 0;
    account a;
    if (s >> i >> a.id >> a.token && i < count) out[i] = a;
  }
  for (size_t i = 0; i < count; ++i)
    if (out[i].token.empty()) {
      std::fprintf(stderr, "no cached account %zu in %s: run accounts first\n", i, cache.c_str());
      std::exit(1);
    }
  return out;
}

// ---- the room ----

int make_room(const std::string& cache, const std::vector<uint16_t>& ports, size_t members) {
  auto accts = cached_accounts(cache, members + 1);
  http_conn owner{ports[0]};
  auto made = owner.call(http::verb::post, "/v1/rooms", R"({"kind":"public","name":"bench"})",
                         accts[0].token);
  auto id = json_str(made.body, "id");
  if (made.status != 201 || id.empty()) {
    std::fprintf(stderr, "POST /v1/rooms: %d %s\n", made.status, made.body.c_str());
    return 1;
  }
  std::atomic<size_t> next{1};
  std::atomic<size_t> failed{0};
  std::mutex mu;
  std::string first_error;
  auto worker = [&] {
    std::map<uint16_t, std::unique_ptr<http_conn>> conns;
    for (size_t i; (i = next++) <= members;) {
      auto port = ports[i % ports.size()];
      auto& c = conns[port];
      if (!c) c = std::make_unique<http_conn>(port);
      auto r = c->call(http::verb::post, "/v1/rooms/" + id + "/join", "", accts[i].token);
      if (r.status != 200 && failed++ == 0) {
        std::lock_guard<std::mutex> g{mu};
        first_error = "join " + std::to_string(i) + ": " + std::to_string(r.status) + " " + r.body;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (failed > 0) {
    std::fprintf(stderr, "%zu joins failed; first: %s\n", failed.load(), first_error.c_str());
    return 1;
  }
  std::printf("room %s\n", id.c_str());
  return 0;
}

// ---- the receivers, shared by both sides ----

/// What one run counts. The atomics are touched by every loop; the rest by the main thread.
struct run_state {
  size_t messages = 0;  // messages the sender will send
  std::atomic<size_t> ready{0};
  std::atomic<size_t> failed{0};
  std::atomic<size_t> closed{0};  // closed by the server after being ready
  std::atomic<uint64_t> delivered{0};
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::string first_error;
  void fail(const std::string& why) {
    if (failed++ == 0) {
      std::lock_guard<std::mutex> g{mu};
      first_error = why;
    }
  }
};

/// One event loop and what its receivers measured (touched only by its thread while it runs).
struct loop {
  net::io_context ioc{1};
  std::vector<int64_t> latencies_us;
  std::vector<int64_t> first_us;  // per message, its earliest delivery on this loop
  uint64_t dup = 0;
  uint64_t bad = 0;
  std::vector<std::function<void(std::function<void()>)>> pending;  // receivers to start
  size_t next = 0;
  // Starts the next receiver; each one that is ready (or failed) starts another, so at most
  // `window` handshakes are in flight (a burst of thousands would overflow the listen queue).
  void start_next() {
    if (next >= pending.size()) return;
    auto start = std::move(pending[next++]);
    start([this] { start_next(); });
  }
};

/// Counts one message seen by one receiver: "<send µs>:<index>".
class receiver {
 protected:
  receiver(run_state& run, loop& lp) : run_(run), loop_(lp), got_(run.messages, 0) {}

  void on_payload(std::string_view text) {
    auto now = now_us();
    auto colon = text.find(':');
    if (colon == std::string_view::npos) return void(++loop_.bad);
    int64_t sent = 0;
    size_t k = 0;
    for (char c : text.substr(0, colon)) sent = sent * 10 + (c - '0');
    for (char c : text.substr(colon + 1)) k = k * 10 + static_cast<size_t>(c - '0');
    if (k >= got_.size()) return void(++loop_.bad);
    if (got_[k] != 0) return void(++loop_.dup);
    got_[k] = 1;
    loop_.latencies_us.push_back(now - sent);
    if (loop_.first_us.size() <= k) loop_.first_us.resize(got_.size(), INT64_MAX);
    loop_.first_us[k] = std::min(loop_.first_us[k], now - sent);
    ++run_.delivered;
  }

  run_state& run_;
  loop& loop_;
  std::vector<uint8_t> got_;
};

// ---- chorus: a member on /v1/ws ----

class ws_member : public receiver, public std::enable_shared_from_this<ws_member> {
 public:
  ws_member(run_state& run, loop& lp, uint16_t port, std::string token, std::string topic)
      : receiver(run, lp),
        ws_(lp.ioc),
        port_(port),
        token_(std::move(token)),
        topic_(std::move(topic)) {}

  void start(std::function<void()> done) {
    done_ = std::move(done);
    ws_.next_layer().async_connect(
        {net::ip::make_address("127.0.0.1"), port_},
        [self = shared_from_this()](beast::error_code ec) {
          if (ec) return self->failed("connect: " + ec.message());
          self->ws_.set_option(
              websocket::stream_base::decorator([t = self->token_](websocket::request_type& r) {
                r.set(http::field::authorization, "Bearer " + t);
              }));
          self->ws_.async_handshake(
              "127.0.0.1:" + std::to_string(self->port_), "/v1/ws", [self](beast::error_code ec) {
                if (ec) return self->failed("handshake: " + ec.message());
                self->out_ = R"({"type":"subscribe","topic":")" + self->topic_ + R"("})";
                self->ws_.async_write(net::buffer(self->out_),
                                      [self](beast::error_code ec, size_t) {
                                        if (ec) return self->failed("subscribe: " + ec.message());
                                      });
                self->read();
              });
        });
  }

 private:
  void failed(const std::string& why) {
    run_.fail(why);
    if (auto d = std::exchange(done_, nullptr)) d();
  }

  // Past the handshake the frames are read off the socket and parsed here, as the Redis side
  // parses RESP: the two clients then cost about the same per message, and what differs is the
  // servers. A server's frames are unmasked; this one sends each message as one frame.
  void read() {
    ws_.next_layer().async_read_some(
        net::buffer(chunk_), [self = shared_from_this()](beast::error_code ec, size_t n) {
          if (ec) {
            if (!self->ready_) return self->failed("read: " + ec.message());
            if (!self->run_.stopping) ++self->run_.closed;
            return;
          }
          self->in_.append(self->chunk_.data(), n);
          size_t used = 0;
          while (size_t took = self->parse(std::string_view{self->in_}.substr(used))) used += took;
          self->in_.erase(0, used);
          if (!self->gone_) self->read();
        });
  }

  // One frame at the start of `in`: the bytes it takes, 0 while incomplete.
  size_t parse(std::string_view in) {
    if (gone_ || in.size() < 2) return 0;
    auto b0 = static_cast<uint8_t>(in[0]);
    auto b1 = static_cast<uint8_t>(in[1]);
    size_t head = 2;
    uint64_t len = b1 & 0x7f;
    if (len >= 126) {
      size_t ext = len == 126 ? 2 : 8;
      if (in.size() < 2 + ext) return 0;
      len = 0;
      for (size_t i = 0; i < ext; ++i) len = (len << 8) | static_cast<uint8_t>(in[2 + i]);
      head += ext;
    }
    if ((b1 & 0x80) != 0 || (b0 & 0x80) == 0) {  // masked or fragmented: not what we expect
      ++loop_.bad;
      gone_ = true;
      return 0;
    }
    if (in.size() < head + len) return 0;
    auto payload = in.substr(head, len);
    switch (b0 & 0x0f) {
      case 0x1:
        frame(payload);
        break;
      case 0x8:  // close
        if (!run_.stopping) ++run_.closed;
        gone_ = true;
        break;
      case 0x9:  // ping: answered (Beast masks what a client writes)
        ws_.async_pong(websocket::ping_data{payload.data(), std::min<size_t>(payload.size(), 125)},
                       [](beast::error_code) {});
        break;
      default:
        break;
    }
    return head + len;
  }

  void frame(std::string_view f) {
    if (!ready_) {
      if (f.find(R"("type":"subscribed")") != std::string_view::npos) {
        ready_ = true;
        ++run_.ready;
        if (auto d = std::exchange(done_, nullptr)) d();
      } else if (f.find(R"("type":"error")") != std::string_view::npos) {
        failed("subscribe answered " + std::string{f});
      }
      return;
    }
    if (f.find(R"("kind":"message")") == std::string_view::npos) return;
    const std::string_view key = R"("text":")";
    auto at = f.find(key);
    if (at == std::string_view::npos) return void(++loop_.bad);
    at += key.size();
    auto end = f.find('"', at);
    on_payload(f.substr(at, end - at));
  }

  websocket::stream<tcp::socket> ws_;
  std::array<char, 4096> chunk_{};
  std::string in_;
  bool gone_ = false;
  uint16_t port_;
  std::string token_;
  std::string topic_;
  std::string out_;
  bool ready_ = false;
  std::function<void()> done_;
};

// ---- redis: a subscriber speaking RESP ----

/// Parses one flat RESP reply (an array of bulk strings/integers, or a single value) at the
/// start of `in` into `parts`; returns the bytes it takes, 0 while incomplete.
size_t parse_resp(std::string_view in, std::vector<std::string_view>& parts) {
  parts.clear();
  size_t pos = 0;
  auto line = [&](std::string_view& out) {
    auto e = in.find("\r\n", pos);
    if (e == std::string_view::npos) return false;
    out = in.substr(pos, e - pos);
    pos = e + 2;
    return true;
  };
  // One value: 1 parsed, 0 incomplete.
  auto value = [&]() -> int {
    std::string_view head;
    if (!line(head) || head.empty()) return 0;
    if (head[0] != '$') {
      parts.push_back(head.substr(1));  // :integer, +simple, -error
      return 1;
    }
    long len = std::strtol(std::string{head.substr(1)}.c_str(), nullptr, 10);
    if (len < 0) return parts.emplace_back(), 1;
    if (in.size() < pos + static_cast<size_t>(len) + 2) return 0;
    parts.push_back(in.substr(pos, static_cast<size_t>(len)));
    pos += static_cast<size_t>(len) + 2;
    return 1;
  };
  if (in.empty()) return 0;
  if (in[0] != '*') return value() ? pos : 0;
  std::string_view head;
  if (!line(head)) return 0;
  long n = std::strtol(std::string{head.substr(1)}.c_str(), nullptr, 10);
  for (long i = 0; i < n; ++i)
    if (!value()) return 0;
  return pos;
}

std::string resp_command(std::initializer_list<std::string_view> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (auto a : args) out += "$" + std::to_string(a.size()) + "\r\n" + std::string{a} + "\r\n";
  return out;
}

class redis_member : public receiver, public std::enable_shared_from_this<redis_member> {
 public:
  redis_member(run_state& run, loop& lp, uint16_t port, std::string channel)
      : receiver(run, lp), sock_(lp.ioc), port_(port), channel_(std::move(channel)) {}

  void start(std::function<void()> done) {
    done_ = std::move(done);
    sock_.async_connect({net::ip::make_address("127.0.0.1"), port_}, [self = shared_from_this()](
                                                                         beast::error_code ec) {
      if (ec) return self->failed("connect: " + ec.message());
      self->out_ = resp_command({"SUBSCRIBE", self->channel_});
      net::async_write(self->sock_, net::buffer(self->out_), [self](beast::error_code ec, size_t) {
        if (ec) self->failed("subscribe: " + ec.message());
      });
      self->read();
    });
  }

 private:
  void failed(const std::string& why) {
    run_.fail(why);
    if (auto d = std::exchange(done_, nullptr)) d();
  }

  void read() {
    sock_.async_read_some(net::buffer(chunk_),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) {
                              if (!self->ready_) return self->failed("read: " + ec.message());
                              if (!self->run_.stopping) ++self->run_.closed;
                              return;
                            }
                            self->in_.append(self->chunk_.data(), n);
                            std::string_view rest{self->in_};
                            size_t used = 0;
                            while (size_t took = parse_resp(rest.substr(used), self->parts_)) {
                              used += took;
                              self->reply();
                            }
                            self->in_.erase(0, used);
                            self->read();
                          });
  }

  void reply() {
    if (parts_.size() == 3 && parts_[0] == "message") return on_payload(parts_[2]);
    if (!ready_ && parts_.size() == 3 && parts_[0] == "subscribe") {
      ready_ = true;
      ++run_.ready;
      if (auto d = std::exchange(done_, nullptr)) d();
    }
  }

  tcp::socket sock_;
  uint16_t port_;
  std::string channel_;
  std::string out_;
  std::array<char, 4096> chunk_{};
  std::string in_;
  std::vector<std::string_view> parts_;
  bool ready_ = false;
  std::function<void()> done_;
};

// ---- a run ----

size_t loop_count() {
  auto* v = std::getenv("CHAT_BENCH_THREADS");
  return v ? std::max<size_t>(1, std::strtoul(v, nullptr, 10)) : 2;
}

/// CPU (user + system) this process used so far, in seconds.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

double ms(int64_t us) {
  return static_cast<double>(us) / 1000.0;
}

/// Opens every receiver, runs `send(k)` for k in 0..messages-1 on the schedule, waits for the
/// deliveries and prints the result line. `send` answers the time it took, or -1 on failure.
int run(const char* side, std::vector<std::unique_ptr<loop>>& loops, run_state& st, size_t members,
        int interval_ms, const std::function<int64_t(size_t)>& send) {
  std::vector<std::thread> threads;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  for (auto& l : loops) {
    guards.push_back(net::make_work_guard(l->ioc));
    auto* lp = l.get();
    net::post(lp->ioc, [lp] {
      for (int w = 0; w < 128; ++w) lp->start_next();
    });
    threads.emplace_back([lp] { lp->ioc.run(); });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes{5};
  auto t_open = std::chrono::steady_clock::now();
  while (st.ready + st.failed < members && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  auto open_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_open).count();
  std::fprintf(stderr, "    %s: %zu of %zu subscribed in %.1f s (%zu failed)\n", side,
               st.ready.load(), members, open_s, st.failed.load());
  int rc = 0;
  std::vector<int64_t> send_us;
  size_t post_failed = 0;
  if (st.ready < members) {
    std::fprintf(stderr, "    first failure: %s\n", st.first_error.c_str());
    rc = 1;
  } else {
    auto t0 = std::chrono::steady_clock::now() + std::chrono::milliseconds{200};
    std::string slow;  // the sends over 100 ms, "index:ms", to tell periodic stalls from noise
    for (size_t k = 0; k < st.messages; ++k) {
      std::this_thread::sleep_until(t0 + k * std::chrono::milliseconds{interval_ms});
      auto took = send(k);
      if (took < 0)
        ++post_failed;
      else
        send_us.push_back(took);
      if (took >= 100000) slow += " " + std::to_string(k) + ":" + std::to_string(took / 1000);
    }
    if (!slow.empty())
      std::fprintf(stderr, "    %s: sends over 100 ms (index:ms):%s\n", side, slow.c_str());
    // The stragglers: until every member has every message, or 10 s after the last send.
    auto expected = static_cast<uint64_t>(members) * st.messages;
    auto drain = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    while (st.delivered < expected && std::chrono::steady_clock::now() < drain)
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  st.stopping = true;
  guards.clear();
  for (auto& l : loops) l->ioc.stop();
  for (auto& t : threads) t.join();
  std::vector<int64_t> all;
  // The first member to hear a message: the send and publish path, before most of the fan-out.
  std::vector<int64_t> first(st.messages, INT64_MAX);
  uint64_t dup = 0, bad = 0;
  for (auto& l : loops) {
    all.insert(all.end(), l->latencies_us.begin(), l->latencies_us.end());
    for (size_t k = 0; k < l->first_us.size() && k < first.size(); ++k)
      first[k] = std::min(first[k], l->first_us[k]);
    dup += l->dup;
    bad += l->bad;
  }
  std::sort(all.begin(), all.end());
  first.erase(std::remove(first.begin(), first.end(), INT64_MAX), first.end());
  std::sort(first.begin(), first.end());
  std::sort(send_us.begin(), send_us.end());
  auto pct = [](const std::vector<int64_t>& v, double p) -> int64_t {
    if (v.empty()) return 0;
    auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  std::printf(
      "result %s members=%zu messages=%zu expected=%llu delivered=%llu dup=%llu bad=%llu "
      "closed=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f send_p50_ms=%.2f send_max_ms=%.2f "
      "post_failed=%zu client_cpu_s=%.1f first_p50_ms=%.2f\n",
      side, members, st.messages, static_cast<unsigned long long>(members * st.messages),
      static_cast<unsigned long long>(all.size()), static_cast<unsigned long long>(dup),
      static_cast<unsigned long long>(bad), st.closed.load(), ms(pct(all, 0.5)), ms(pct(all, 0.99)),
      ms(all.empty() ? 0 : all.back()), ms(pct(send_us, 0.5)),
      ms(send_us.empty() ? 0 : send_us.back()), post_failed, cpu_seconds(), ms(pct(first, 0.5)));
  std::fflush(stdout);
  return rc;
}

std::vector<std::unique_ptr<loop>> make_loops() {
  std::vector<std::unique_ptr<loop>> loops;
  for (size_t i = 0; i < loop_count(); ++i) loops.push_back(std::make_unique<loop>());
  return loops;
}

int chorus(const std::string& cache, const std::vector<uint16_t>& ports, const std::string& room,
           size_t members, int seconds, int interval_ms) {
  auto accts = cached_accounts(cache, members + 1);
  run_state st;
  st.messages = static_cast<size_t>(seconds) * 1000 / static_cast<size_t>(interval_ms);
  auto loops = make_loops();
  std::vector<std::shared_ptr<ws_member>> keep;
  for (size_t m = 1; m <= members; ++m) {
    auto& lp = *loops[m % loops.size()];
    auto c = std::make_shared<ws_member>(st, lp, ports[m % ports.size()], accts[m].token,
                                         "rooms/" + room);
    keep.push_back(c);
    lp.pending.emplace_back([c](std::function<void()> done) { c->start(std::move(done)); });
  }
  std::vector<std::unique_ptr<http_conn>> posters;
  for (auto p : ports) posters.push_back(std::make_unique<http_conn>(p));
  auto run_id = std::to_string(now_us());
  std::string first_post_error;
  auto send = [&](size_t k) -> int64_t {
    auto sent = now_us();
    auto body = R"({"text":")" + std::to_string(sent) + ":" + std::to_string(k) +
                R"(","client_id":"cb-)" + run_id + "-" + std::to_string(k) + "\"}";
    auto r = posters[k % posters.size()]->call(http::verb::post, "/v1/rooms/" + room + "/messages",
                                               body, accts[0].token);
    if (r.status != 201 && r.status != 200) {
      if (first_post_error.empty()) first_post_error = std::to_string(r.status) + " " + r.body;
      return -1;
    }
    return now_us() - sent;
  };
  int rc = run("chorus", loops, st, members, interval_ms, send);
  if (!first_post_error.empty())
    std::fprintf(stderr, "    first failed post: %s\n", first_post_error.c_str());
  return rc;
}

int redis(uint16_t port, size_t members, int seconds, int interval_ms) {
  run_state st;
  st.messages = static_cast<size_t>(seconds) * 1000 / static_cast<size_t>(interval_ms);
  auto loops = make_loops();
  std::vector<std::shared_ptr<redis_member>> keep;
  for (size_t m = 1; m <= members; ++m) {
    auto& lp = *loops[m % loops.size()];
    auto c = std::make_shared<redis_member>(st, lp, port, "bench");
    keep.push_back(c);
    lp.pending.emplace_back([c](std::function<void()> done) { c->start(std::move(done)); });
  }
  net::io_context ioc{1};
  tcp::socket pub{ioc};
  pub.connect({net::ip::make_address("127.0.0.1"), port});
  pub.set_option(tcp::no_delay(true));
  net::streambuf answers;
  std::string first_error;
  auto send = [&](size_t k) -> int64_t {
    auto sent = now_us();
    auto cmd = resp_command({"PUBLISH", "bench", std::to_string(sent) + ":" + std::to_string(k)});
    beast::error_code ec;
    net::write(pub, net::buffer(cmd), ec);
    if (!ec) net::read_until(pub, answers, "\r\n", ec);
    if (ec) {
      if (first_error.empty()) first_error = ec.message();
      return -1;
    }
    std::string reply{net::buffers_begin(answers.data()), net::buffers_end(answers.data())};
    answers.consume(answers.size());
    // ":<receivers>": every subscriber must have been handed the message.
    if (reply != ":" + std::to_string(members) + "\r\n") {
      if (first_error.empty()) first_error = reply;
      return -1;
    }
    return now_us() - sent;
  };
  int rc = run("redis", loops, st, members, interval_ms, send);
  if (!first_error.empty())
    std::fprintf(stderr, "    first failed PUBLISH: %s\n", first_error.c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  auto n = [](const std::string& s) { return std::strtoul(s.c_str(), nullptr, 10); };
  if (a.size() == 5 && a[0] == "accounts") return accounts(a[1], a[2], n(a[3]), parse_ports(a[4]));
  if (a.size() == 4 && a[0] == "room") return make_room(a[1], parse_ports(a[2]), n(a[3]));
  if (a.size() == 7 && a[0] == "chorus")
    return chorus(a[1], parse_ports(a[2]), a[3], n(a[4]), static_cast<int>(n(a[5])),
                  static_cast<int>(n(a[6])));
  if (a.size() == 5 && a[0] == "redis")
    return redis(static_cast<uint16_t>(n(a[1])), n(a[2]), static_cast<int>(n(a[3])),
                 static_cast<int>(n(a[4])));
  std::fprintf(stderr,
               "usage: chat_bench accounts CACHE KEY COUNT PORTS | room CACHE PORTS MEMBERS |\n"
               "       chorus CACHE PORTS ROOM MEMBERS SECONDS INTERVAL_MS |\n"
               "       redis PORT MEMBERS SECONDS INTERVAL_MS\n");
  return 2;
}
