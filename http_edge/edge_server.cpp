#include "http_edge/edge_server.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include <cerrno>

#include <fcntl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <caf/sec.hpp>

#include "http_edge/actor_bridge.hpp"
#include "http_edge/edge_core.hpp"
#include "http_edge/error_table.hpp"
#include "http_edge/openapi.hpp"
#include "messages/errors.hpp"
#include "persistence/gcra.hpp"
#include "persistence/rate_limiter.hpp"

// The edge's network side: io_threads Boost.Beast event loops, one thread each, accept, parse and
// write every connection (each connection stays on the loop it was accepted to); a route either
// answers on the loop (route_async: it starts an actor request and finishes from the answer) or
// runs on the worker pool (route: it may block). So a slow or idle client costs a socket and a
// buffer, never a thread.

namespace chorus::edge {

namespace {

// What browsers may send and read across origins (CORS).
constexpr const char* cors_methods = "GET, POST, PUT, PATCH, DELETE";
constexpr const char* cors_request_headers =
    "Authorization, Content-Type, Idempotency-Key, X-Request-Id";
constexpr const char* cors_exposed_headers =
    "X-Request-Id, Retry-After, Location, RateLimit, RateLimit-Policy";

// Pending connections the kernel keeps for the accept loop (somaxconn caps it).
constexpr int listen_backlog = 1024;

const char* method_name(http_method m) {
  static constexpr const char* names[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
  return names[static_cast<int>(m)];
}

/// One HTTP/1.1 connection: reads a request, has the core answer it, writes the answer, and
/// again while the client keeps the connection alive. Everything runs on the connection's
/// loop (one thread); answers from workers and actors are posted back to it.
class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(tcp::socket socket, std::shared_ptr<edge_server::core> core)
      : stream_(std::move(socket)), core_(std::move(core)), io_timer_(stream_.get_executor()) {
    ++core_->connections;
    beast::error_code ec;
    auto peer = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_addr_ = peer.address().to_string();
  }
  ~http_session() {
    drop_upload();
    --core_->connections;
  }

  http_session(const http_session&) = delete;
  http_session& operator=(const http_session&) = delete;

  void run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

 private:
  // The headers first: an upload route then streams its body to a file, every other route
  // reads it into memory under max_body_bytes.
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(core_->cfg.max_header_bytes));
    // The body's limit depends on the route, known once the headers are in (on_header).
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    stream_.expires_after(core_->cfg.request_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read(ec);
    const auto& msg = parser_->get();
    auto target = std::string_view{msg.target().data(), msg.target().size()};
    auto path = percent_decode(target.substr(0, target.find('?')), false);
    if (const auto* r = core_->upload_route(std::string{msg.method_string()}, path))
      return start_upload(*r);
    // A declared length is checked now (the parser checks it only while reading the headers);
    // a chunked body is cut off by the parser as it passes the limit.
    if (auto len = parser_->content_length(); len && *len > core_->cfg.max_body_bytes)
      return on_read(http::error::body_limit);
    parser_->body_limit(core_->cfg.max_body_bytes);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void start_upload(const route_entry& r) {
    upload_.emplace(std::move(*parser_));
    upload_->body_limit(r.upload_limit);
    upload_limit_ = r.upload_limit;
    if (auto len = upload_->content_length(); len && *len > r.upload_limit) {
      upload_.reset();
      return refuse(413, "payload_too_large",
                    "the upload is larger than " + std::to_string(r.upload_limit) + " bytes");
    }
    upload_path_ = core_->cfg.upload_dir + "/upload-" + new_request_id();
    beast::error_code ec;
    upload_->get().body().open(upload_path_.c_str(), beast::file_mode::write, ec);
    if (ec) {
      drop_upload();
      core_->log.error("edge", "cannot store an upload: " + ec.message(),
                       {{"dir", core_->cfg.upload_dir}});
      return refuse(503, "storage_unavailable", "the upload cannot be stored now");
    }
    upload_started_ = std::chrono::steady_clock::now();
    upload_bytes_ = 0;
    if (upload_->is_done()) return on_upload({}, 0);  // no body at all
    read_upload();
  }

  // Each read may wait request_timeout for data; the whole upload may take as long as it
  // keeps up the minimum rate.
  // The deadline is our timer rather than the stream's: the stream's closes the socket when it
  // fires, and a client that stopped sending should still read why (408).
  void read_upload() {
    stream_.expires_never();
    upload_stalled_ = false;
    io_timer_.expires_after(core_->cfg.request_timeout);
    io_timer_.async_wait([self = shared_from_this(), gen = ++timer_gen_](beast::error_code ec) {
      // An expiry that raced the read's completion belongs to a wait that is over.
      if (ec || gen != self->timer_gen_) return;
      self->upload_stalled_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    http::async_read_some(stream_, buffer_, *upload_,
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            ++self->timer_gen_;
                            self->io_timer_.cancel();
                            self->on_upload(ec, n);
                          });
  }

  void on_upload(beast::error_code ec, size_t n) {
    upload_bytes_ += n;
    if (ec == http::error::body_limit) {
      drop_upload();
      return refuse(413, "payload_too_large",
                    "the upload is larger than " + std::to_string(upload_limit_) + " bytes");
    }
    if (ec) {
      drop_upload();
      if (upload_stalled_ || ec == beast::error::timeout)
        return refuse(408, "request_timeout", "the upload stopped sending");
      return close();
    }
    if (!upload_->is_done()) {
      auto elapsed = std::chrono::steady_clock::now() - upload_started_;
      auto secs = std::chrono::duration<double>(elapsed).count();
      if (elapsed > core_->cfg.upload_grace &&
          static_cast<double>(upload_bytes_) / secs <
              static_cast<double>(core_->cfg.upload_min_bytes_per_second)) {
        drop_upload();
        return refuse(408, "upload_too_slow",
                      "the upload arrives slower than " +
                          std::to_string(core_->cfg.upload_min_bytes_per_second) +
                          " bytes a second");
      }
      return read_upload();
    }
    beast::error_code close_ec;
    upload_->get().body().close();
    auto x = make_exchange(upload_->get());
    x->req.body_file = std::move(upload_path_);
    std::error_code size_ec;
    x->req.body_size = std::filesystem::file_size(x->req.body_file, size_ec);
    upload_.reset();
    core_->handle(x, [self = shared_from_this(), x] {
      net::post(self->stream_.get_executor(), [self, x] { self->write(x); });
    });
  }

  void drop_upload() {
    if (upload_) {
      beast::error_code ec;
      upload_->get().body().close();
      upload_.reset();
    }
    if (!upload_path_.empty()) std::remove(upload_path_.c_str());
    upload_path_.clear();
  }

  /// The request as handlers see it (all but the body).
  template <class Body>
  std::shared_ptr<exchange> make_exchange(const http::request<Body>& msg) {
    auto x = std::make_shared<exchange>();
    auto target = std::string_view{msg.target().data(), msg.target().size()};
    auto q = target.find('?');
    x->req.method = std::string{msg.method_string()};
    x->req.path = percent_decode(target.substr(0, q), false);
    if (q != std::string_view::npos) x->req.params = parse_query(target.substr(q + 1));
    for (const auto& field : msg)
      x->req.headers.emplace(std::string{field.name_string()}, std::string{field.value()});
    x->req.remote_addr = remote_addr_;
    x->rid = request_id_of(x->req);
    x->keep_alive = msg.keep_alive();
    x->head = msg.method() == http::verb::head;
    if (x->head) x->req.method = "GET";
    return x;
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted)
      return close();
    if (ec == http::error::body_limit)
      return refuse(
          413, "payload_too_large",
          "the body is larger than " + std::to_string(core_->cfg.max_body_bytes) + " bytes");
    if (ec == http::error::header_limit)
      return refuse(431, "headers_too_large",
                    "the request line and headers are larger than " +
                        std::to_string(core_->cfg.max_header_bytes) + " bytes");
    if (ec) return refuse(400, "bad_request", "malformed HTTP request: " + ec.message());

    auto& msg = parser_->get();
    auto x = make_exchange(msg);

    if (beast::websocket::is_upgrade(msg) && x->req.path == "/v1/ws") return upgrade(x);
    x->req.body = std::move(msg.body());
    core_->handle(x, [self = shared_from_this(), x] {
      net::post(self->stream_.get_executor(), [self, x] { self->write(x); });
    });
  }

  // An upgrade to /v1/ws: authenticated on a worker (the session lookup may wait), then the
  // connection becomes a WebSocket session on this loop.
  void upgrade(const std::shared_ptr<exchange>& x) {
    auto core = core_;
    net::post(core->workers, [self = shared_from_this(), core, x] {
      caf::expected<std::string> who =
          core->ws_auth ? core->ws_auth(x->req, x->rid)
                        : caf::expected<std::string>{
                              make_error(runtime_errc::no_owner, "no WebSocket on this node")};
      net::post(self->stream_.get_executor(), [self, x, who = std::move(who)]() mutable {
        if (!who) {
          if (is(who.error(), domain_errc::unauthenticated))
            x->res.set_header("WWW-Authenticate", "Bearer");
          x->res.set_header("X-Request-Id", x->rid);
          send_error(x->res, who.error(), x->rid);
          self->core_->cors(*x);
          x->keep_alive = false;
          return self->write(x);
        }
        self->stream_.expires_never();  // the WebSocket keeps its own timeouts
        start_websocket(self->core_, std::move(self->stream_), self->parser_->release(),
                        std::move(*who), x->req);
      });
    });
  }

  void refuse(int status, const char* code, const std::string& message) {
    auto x = std::make_shared<exchange>();
    x->rid = new_request_id();
    x->keep_alive = false;
    x->res.set_header("X-Request-Id", x->rid);
    send_error(x->res, {status, code, 0}, message, x->rid);
    core_->probe.begin();
    core_->probe.end("unparsed", "", status, 0.0);
    write(x);
  }

  void write(const std::shared_ptr<exchange>& x) {
    if (!x->res.file_path.empty() && !x->head) return write_file(x);
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(x->res.status == -1 ? 200 : x->res.status));
    for (const auto& [name, value] : x->res.headers) res->insert(name, value);
    // A status that has no body never sends one (Beast refuses to serialize it otherwise).
    auto code = res->result_int();
    if (code == 204 || code == 304 || (code >= 100 && code < 200)) x->res.body.clear();
    auto size = x->res.body.size();
    if (!x->head) res->body() = std::move(x->res.body);
    res->keep_alive(x->keep_alive && !core_->stopping);
    if (x->head)
      res->content_length(x->res.file_path.empty() ? size : x->res.file_length);
    else
      res->prepare_payload();
    stream_.expires_after(core_->cfg.write_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !res->keep_alive()) return self->close();
                        self->read();
                      });
  }

  // A file (or part of one): the header through Beast, then the bytes with sendfile(2) from the
  // file straight to the socket, as nginx does; the file is never in user memory. The socket
  // is non-blocking: when the kernel's send buffer is full, the loop waits (on the connection) for
  // the socket to be writable, at most write_timeout each time.
  struct file_send {
    http::response<http::empty_body> res;
    std::optional<http::response_serializer<http::empty_body>> sr;
    int fd = -1;
    uint64_t offset = 0;
    uint64_t remain = 0;
    ~file_send() {
      if (fd >= 0) ::close(fd);
    }
  };
  // At most this much per sendfile call, so one large answer does not hold the loop.
  static constexpr size_t sendfile_step = size_t{1} << 20;

  void write_file(const std::shared_ptr<exchange>& x) {
    auto f = std::make_shared<file_send>();
    f->fd = ::open(x->res.file_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
      // Gone between the lookup and now (a replaced blob): the answer was not sent yet.
      x->res = http_response{};
      x->res.set_header("X-Request-Id", x->rid);
      send_error(x->res, {503, "unavailable", 1}, "the file is not readable now", x->rid);
      return write(x);
    }
    f->offset = x->res.file_offset;
    f->remain = x->res.file_length;
    auto& res = f->res;
    res.version(11);
    res.result(static_cast<unsigned>(x->res.status == -1 ? 200 : x->res.status));
    for (const auto& [name, value] : x->res.headers) res.insert(name, value);
    res.content_length(f->remain);
    res.keep_alive(x->keep_alive && !core_->stopping);
    f->sr.emplace(res);
    stream_.expires_after(core_->cfg.write_timeout);
    http::async_write_header(stream_, *f->sr,
                             [self = shared_from_this(), f](beast::error_code ec, size_t) {
                               if (ec) return self->close();
                               self->send_file_bytes(f);
                             });
  }

  void send_file_bytes(const std::shared_ptr<file_send>& f) {
    auto& socket = stream_.socket();
    beast::error_code ec;
    socket.native_non_blocking(true, ec);
    if (ec) return close();
    while (f->remain > 0) {
      auto off = static_cast<off_t>(f->offset);
      auto n = ::sendfile(socket.native_handle(), f->fd, &off,
                          static_cast<size_t>(std::min<uint64_t>(f->remain, sendfile_step)));
      if (n > 0) {
        f->offset += static_cast<uint64_t>(n);
        f->remain -= static_cast<uint64_t>(n);
        if (f->remain == 0) break;
        // Other connections on this thread get their turn between steps.
        return net::post(stream_.get_executor(),
                         [self = shared_from_this(), f] { self->send_file_bytes(f); });
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // The client's window is full: wait until it takes more, or give up at the timeout.
        io_timer_.expires_after(core_->cfg.write_timeout);
        io_timer_.async_wait(
            [self = shared_from_this(), gen = ++timer_gen_](beast::error_code timer_ec) {
              if (timer_ec || gen != self->timer_gen_) return;
              beast::error_code ignored;
              self->stream_.socket().cancel(ignored);
            });
        socket.async_wait(tcp::socket::wait_write,
                          [self = shared_from_this(), f](beast::error_code wait_ec) {
                            ++self->timer_gen_;
                            self->io_timer_.cancel();
                            if (wait_ec) return self->close();
                            self->send_file_bytes(f);
                          });
        return;
      }
      return close();  // an error, or the file shrank: cut the connection
    }
    if (!f->res.keep_alive()) return close();
    read();
  }

  // A lingering close: the answer is out (shutdown of our side), then what the client still
  // sends (the rest of a refused upload) is read and dropped for up to 2 s, so that the kernel
  // does not answer it with a reset that would destroy the answer before the client reads it.
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return stream_.close();
    drain_buf_ = std::make_unique<char[]>(drain_size);
    stream_.expires_after(std::chrono::seconds{2});
    drain(0);
  }

  void drain(uint64_t so_far) {
    stream_.async_read_some(net::buffer(drain_buf_.get(), drain_size),
                            [self = shared_from_this(), so_far](beast::error_code ec, size_t n) {
                              if (ec || so_far + n > (uint64_t{64} << 20))
                                return self->stream_.close();
                              self->drain(so_far + n);
                            });
  }

  static constexpr size_t drain_size = 16 * 1024;

  beast::tcp_stream stream_;
  std::shared_ptr<edge_server::core> core_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::request_parser<http::file_body>> upload_;
  // A deadline of our own where Beast's would close the socket before we can answer: a
  // sendfile waiting for the client (write_timeout), an upload read (request_timeout, then 408).
  net::steady_timer io_timer_;
  bool upload_stalled_ = false;
  uint64_t timer_gen_ = 0;  // the io_timer_ wait that may still act; older ones are stale
  std::unique_ptr<char[]> drain_buf_;  // only while closing
  std::string upload_path_;
  uint64_t upload_limit_ = 0;
  uint64_t upload_bytes_ = 0;
  std::chrono::steady_clock::time_point upload_started_;
  std::string remote_addr_;
};

void accept(const std::shared_ptr<edge_server::core>& core, tcp::acceptor& acceptor) {
  acceptor.async_accept(net::any_io_executor{core->pick_loop().get_executor()},
                        [core, &acceptor](beast::error_code ec, tcp::socket socket) {
                          if (ec == net::error::operation_aborted || core->stopping) return;
                          if (!ec) {
                            socket.set_option(tcp::no_delay{true}, ec);
                            if (core->connections.load() >= core->cfg.max_connections) {
                              // Over the limit: closed at once (the client sees a reset, not a
                              // hang).
                              socket.close(ec);
                            } else {
                              std::make_shared<http_session>(std::move(socket), core)->run();
                            }
                          }
                          accept(core, acceptor);
                        });
}

}  // namespace

std::string request_id_of(const http_request& req) {
  auto given = req.get_header_value("X-Request-Id");
  if (given.empty() || given.size() > 128) return new_request_id();
  for (unsigned char c : given)
    if (c < 0x21 || c > 0x7e) return new_request_id();
  return given;
}

// ---- the core ----

bool edge_server::core::cors_allowed(const std::string& origin) const {
  return std::find(cfg.cors_origins.begin(), cfg.cors_origins.end(), origin) !=
         cfg.cors_origins.end();
}

// A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered before
// routing: 204 with the origin, credentials, methods and headers when the origin is allowed,
// 403 in the one error shape when it is not.
void edge_server::core::preflight(exchange& x) {
  auto& req = x.req;
  auto& res = x.res;
  res.set_header("X-Request-Id", x.rid);
  res.set_header("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  auto origin = req.get_header_value("Origin");
  if (origin.empty() || !req.has_header("Access-Control-Request-Method")) {
    // Not a CORS preflight: say what the API speaks.
    res.status = 204;
    res.set_header("Allow", cors_methods);
    return;
  }
  if (!cors_allowed(origin)) {
    send_error(res, {403, "cors_origin_refused", 0},
               "origin " + origin + " may not call this API from a browser", x.rid);
    return;
  }
  res.status = 204;
  res.set_header("Access-Control-Allow-Origin", origin);
  res.set_header("Access-Control-Allow-Credentials", "true");
  res.set_header("Access-Control-Allow-Methods", cors_methods);
  res.set_header("Access-Control-Allow-Headers", cors_request_headers);
  res.set_header("Access-Control-Max-Age", "600");
}

// Every other answer (errors too) names the origin only when it is allowed, and always carries
// Vary: Origin so that a cache never hands one origin's answer to another.
void edge_server::core::cors(exchange& x) {
  x.res.set_header("Vary", "Origin");
  auto origin = x.req.get_header_value("Origin");
  if (origin.empty() || !cors_allowed(origin)) return;
  x.res.set_header("Access-Control-Allow-Origin", origin);
  x.res.set_header("Access-Control-Allow-Credentials", "true");
  x.res.set_header("Access-Control-Expose-Headers", cors_exposed_headers);
}

const route_entry* edge_server::core::upload_route(const std::string& method,
                                                   const std::string& path) const {
  for (const auto& r : routes) {
    std::smatch m;
    if (r.upload_limit > 0 && r.method == method && r.matches(path, m)) return &r;
  }
  return nullptr;
}

void edge_server::core::unmatched(exchange& x, int status) {
  probe.begin();
  probe.end("unmatched", x.req.method, status, 0.0);
  x.res.set_header("X-Request-Id", x.rid);
  auto what = status == 404 ? "no such route" : "method not allowed on this route";
  send_error(x.res, {status, status == 404 ? "not_found" : "method_not_allowed", 0},
             x.req.method + " " + x.req.path + ": " + what, x.rid);
}

bool edge_server::core::admit(const std::string& key, const std::string& policy, int64_t limit,
                              http_response& res, const std::string& rid, const std::string& who) {
  using namespace std::chrono;
  persistence::gcra_limit rule{limit, duration_cast<microseconds>(cfg.limit_window), limit};
  auto d = cfg.limiter->check(key, rule);
  auto window = duration_cast<seconds>(cfg.limit_window).count();
  auto reset = static_cast<int64_t>(std::ceil(duration<double>(d.reset_after).count()));
  // draft-ietf-httpapi-ratelimit-headers (structured fields; a second policy adds a second
  // list member) and the older X-RateLimit-* (of the per-address policy only).
  res.set_header("RateLimit-Policy",
                 "\"" + policy + "\";q=" + std::to_string(limit) + ";w=" + std::to_string(window));
  res.set_header("RateLimit", "\"" + policy + "\";r=" + std::to_string(d.remaining) +
                                  ";t=" + std::to_string(reset));
  if (res.headers.count("X-RateLimit-Limit") == 0) {
    res.set_header("X-RateLimit-Limit", std::to_string(limit));
    res.set_header("X-RateLimit-Remaining", std::to_string(d.remaining));
    res.set_header("X-RateLimit-Reset", std::to_string(reset));
  }
  if (d.allowed) return true;
  auto retry = d.retry_after == persistence::gcra_result::never ? window : d.retry_after_seconds();
  send_error(res, {429, "rate_limited", static_cast<int>(retry)},
             "too many " + policy + " requests from " + who + "; retry after " +
                 std::to_string(retry) + " s",
             rid);
  return false;
}

void edge_server::core::handle(const std::shared_ptr<exchange>& x, std::function<void()> reply) {
  auto& req = x->req;
  if (req.method == "OPTIONS") {
    preflight(*x);
    return reply();
  }
  const route_entry* hit = nullptr;
  bool other_method = false;
  for (const auto& r : routes) {
    if (!r.matches(req.path, req.matches)) continue;
    if (r.method == req.method) {
      hit = &r;
      break;
    }
    other_method = true;
  }
  if (hit == nullptr) {
    unmatched(*x, other_method ? 405 : 404);
    cors(*x);
    return reply();
  }
  probe.begin();
  x->res.set_header("X-Request-Id", x->rid);
  auto self = shared_from_this();
  finish_fn finish = [self, x, hit, reply = std::move(reply)] {
    if (x->res.status == -1) x->res.status = 200;
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - x->start);
    self->probe.end(hit->name, x->req.method, x->res.status, elapsed.count());
    if (x->res.status >= 500 && !x->res.internal_detail.empty())
      self->log.warn(
          "edge", "answered " + std::to_string(x->res.status),
          {{"route", hit->name}, {"request_id", x->rid}, {"error", x->res.internal_detail}});
    self->cors(*x);
    reply();
  };
  auto run = [self, x, hit, finish] {
    if (hit->limit > 0 &&
        !self->admit("edge:" + hit->route_class + ":ip:" + x->req.remote_addr, hit->route_class,
                     hit->limit, x->res, x->rid, "this address"))
      return finish();
    if (hit->blocking) {
      hit->blocking(x->req, x->res, x->rid);
      return finish();
    }
    hit->async(x->req, x->res, x->rid, finish);
  };
  // The rate limiter may wait on Redis: a limited route starts on a worker too.
  if (hit->blocking || hit->limit > 0)
    net::post(workers, std::move(run));
  else
    run();
}

// ---- edge_server ----

edge_server::edge_server(edge_config cfg, health_hooks hooks, caf::actor_system& sys,
                         const entity_gateway& entities, prometheus::Registry& registry,
                         json_log& log, std::shared_ptr<live_connections> live)
    : cfg_(std::move(cfg)),
      hooks_(std::move(hooks)),
      sys_(sys),
      entities_(entities),
      log_(log),
      core_(std::make_shared<core>(cfg_, registry, log, std::move(live))) {
  core_->publish = hooks_.publish_live;
  core_->live->set_sent_counter([w = std::weak_ptr<core>{core_}](size_t n) {
    if (auto c = w.lock()) c->probe.ws_sent(n);
  });
  // The live hub hands each loop an event for all its subscribers at once. Weak: the table
  // may outlive the edge.
  std::vector<live_connections::post_fn> loops;
  for (size_t i = 0; i < core_->loops.size(); ++i)
    loops.emplace_back([w = std::weak_ptr<core>{core_}, i](std::function<void()> fn) {
      if (auto c = w.lock()) net::post(*c->loops[i], std::move(fn));
    });
  core_->live->set_loops(std::move(loops));
  // /healthz never waits: answered on the event loop.
  route_async(http_method::get, "/healthz", "/healthz",
              [](const http_request&, http_response& res, const std::string&, finish_fn done) {
                res.set_content("{\"status\":\"ok\"}", json_type);
                done();
              });
  route(http_method::get, "/readyz", "/readyz",
        [this](const http_request&, http_response& res, const std::string&) {
          auto report = hooks_.readiness();
          res.status = report.ready() ? 200 : 503;
          if (!report.ready()) res.set_header("Retry-After", "1");
          res.set_content(to_json(report), json_type);
        });
  // The API document: public, cacheable, the same on every node of one version.
  route_async(http_method::get, "/v1/openapi.json", "/v1/openapi.json",
              [](const http_request&, http_response& res, const std::string&, finish_fn done) {
                res.set_header("Cache-Control", "public, max-age=300");
                res.set_content(std::string{openapi_document()}, json_type);
                done();
              });
  route(http_method::get, "/statusz", "/statusz",
        [this](const http_request&, http_response& res, const std::string& rid) {
          auto status = hooks_.status();
          if (!status) {
            send_error(res, status.error(), rid);
            return;
          }
          res.set_content(to_json(*status), json_type);
        });
  // A plain GET of the WebSocket endpoint (upgrades never reach the routes).
  route_async(http_method::get, "/v1/ws", "/v1/ws",
              [](const http_request&, http_response& res, const std::string& rid, finish_fn done) {
                res.set_header("Upgrade", "websocket");
                send_error(res, {426, "upgrade_required", 0},
                           "/v1/ws speaks WebSocket: send Connection: Upgrade, Upgrade: websocket",
                           rid);
                done();
              });

  if (cfg_.debug_endpoints) add_debug_routes(*this, hooks_);
}

edge_server::~edge_server() {
  stop();
}

void edge_server::add_route(http_method method, const std::string& pattern, const std::string& name,
                            handler blocking, async_handler async, uint64_t upload_limit) {
  static constexpr const char* names[] = {"get", "post", "put", "patch", "delete"};
  routes_.push_back({names[static_cast<int>(method)], name});
  // Probes (load balancers call them often), the API document and the WebSocket endpoint (its
  // upgrades are not routed) are never limited.
  bool unmetered = name == "/healthz" || name == "/readyz" || name == "/statusz" ||
                   name == "/v1/openapi.json" || name == "/v1/ws";
  route_entry r;
  r.method = method_name(method);
  r.pattern = std::regex{pattern};
  r.literals = regex_literal_ends(pattern);
  r.name = name;
  r.route_class = method == http_method::get ? "read" : "write";
  r.limit = unmetered || !cfg_.limiter   ? 0
            : method == http_method::get ? cfg_.read_limit
                                         : cfg_.write_limit;
  r.blocking = std::move(blocking);
  r.async = std::move(async);
  r.upload_limit = upload_limit;
  core_->routes.push_back(std::move(r));
}

void edge_server::route(http_method method, const std::string& pattern, const std::string& name,
                        handler fn) {
  add_route(method, pattern, name, std::move(fn), nullptr);
}

void edge_server::route_upload(http_method method, const std::string& pattern,
                               const std::string& name, uint64_t max_bytes, handler fn) {
  add_route(method, pattern, name, std::move(fn), nullptr, max_bytes);
}

void edge_server::route_async(http_method method, const std::string& pattern,
                              const std::string& name, async_handler fn) {
  add_route(method, pattern, name, nullptr, std::move(fn));
}

void edge_server::set_websocket_authenticator(websocket_authenticator fn) {
  core_->ws_auth = std::move(fn);
}

void edge_server::add_topic_authorizer(std::string prefix, topic_authorizer fn) {
  core_->topic_authorizers.emplace_back(std::move(prefix), std::move(fn));
}

bool edge_server::admit_user(const std::string& user_id, const http_request& req,
                             http_response& res, const std::string& rid) {
  bool read = req.method == "GET";
  auto limit = read ? cfg_.user_read_limit : cfg_.user_write_limit;
  if (limit <= 0 || !cfg_.limiter) return true;
  auto policy = std::string{read ? "user-read" : "user-write"};
  return core_->admit("edge:" + policy + ":" + user_id, policy, limit, res, rid, "this account");
}

caf::expected<std::string> edge_server::ask_entity(entity_envelope env) {
  using namespace std::chrono;
  env.deadline_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch() + cfg_.entity_timeout)
          .count();
  return wait_for_actor<std::string>(
      sys_, cfg_.entity_timeout,
      [this, env = std::move(env)](caf::event_based_actor* self, auto done) mutable {
        entities_.ask(self, std::move(env), cfg_.entity_timeout, std::move(done));
      });
}

void edge_server::ask_entity_async(entity_envelope env,
                                   std::function<void(caf::expected<std::string>)> then) {
  using namespace std::chrono;
  env.deadline_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch() + cfg_.entity_timeout)
          .count();
  with_actor(sys_, [gw = &entities_, timeout = cfg_.entity_timeout, env = std::move(env),
                    then = std::move(then)](caf::event_based_actor* self) mutable {
    gw->ask(self, std::move(env), timeout, std::move(then));
  });
}

caf::expected<std::string> edge_server::ask_service(const envelope_handler& service,
                                                    entity_envelope env) {
  if (!service) return make_error(runtime_errc::no_owner, "this node does not run that service");
  using namespace std::chrono;
  env.deadline_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch() + cfg_.entity_timeout)
          .count();
  return ask<std::string>(sys_, service, cfg_.entity_timeout, std::move(env));
}

caf::error edge_server::bind() {
  for (auto [key, port] : {std::pair{"http-port", cfg_.port}, std::pair{"ws-port", cfg_.ws_port}}) {
    if (port == 0 && std::string_view{key} == "ws-port") continue;
    beast::error_code ec;
    auto fail = [&](const std::string& what) {
      return caf::make_error(caf::sec::cannot_open_port,
                             std::string{key} + " " + std::to_string(port) + " on " + cfg_.host +
                                 " cannot be bound (" + what + ")");
    };
    auto address = net::ip::make_address(cfg_.host, ec);
    if (ec) return fail("not an IP address: " + ec.message());
    auto acc = std::make_unique<tcp::acceptor>(*core_->loops.front());
    tcp::endpoint ep{address, port};
    acc->open(ep.protocol(), ec);
    // SO_REUSEADDR: a node restarted right after kill -9 binds through TIME_WAIT; a port another
    // process listens on still fails.
    if (!ec) acc->set_option(net::socket_base::reuse_address{true}, ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(listen_backlog, ec);
    if (ec) return fail(ec.message() + "; in use?");
    core_->acceptors.push_back(std::move(acc));
  }
  return {};
}

void edge_server::start() {
  for (auto& acc : core_->acceptors) accept(core_, *acc);
  for (auto& loop : core_->loops)
    core_->threads.emplace_back([c = core_, io = loop.get()] { io->run(); });
  log_.info("edge", "http listening",
            {{"host", cfg_.host},
             {"port", std::to_string(cfg_.port)},
             {"io_threads", std::to_string(core_->loops.size())}});
}

void edge_server::stop() {
  if (!core_ || core_->stopping.exchange(true)) return;
  // A raw pointer: a handler left queued in the loop must not keep the core (which owns the
  // loop) alive; the loop's threads are joined below, before the core can go.
  net::post(*core_->loops.front(), [c = core_.get()] {
    beast::error_code ec;
    for (auto& acc : c->acceptors) acc->close(ec);
  });
  // Blocking handlers finish (each within the entity deadline), then the loop stops; the
  // connections still open are closed when the io_context goes with the last reference.
  core_->workers.join();
  core_->keep.clear();
  for (auto& loop : core_->loops) loop->stop();
  for (auto& t : core_->threads)
    if (t.joinable()) t.join();
  // The loops may have stopped before the close above ran: the listeners go now, with no loop
  // left to race.
  for (auto& acc : core_->acceptors) {
    beast::error_code ec;
    acc->close(ec);
  }
  // Handlers hold actor handles (query services): release them now, not when the last pending
  // completion lets go of the core, so that the actor system can shut down.
  core_->routes.clear();
  core_->ws_auth = nullptr;
  core_->topic_authorizers.clear();
  core_->publish = nullptr;
}

}  // namespace chorus::edge
