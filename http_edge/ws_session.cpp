#include <deque>
#include <map>
#include <random>
#include <set>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket.hpp>

#include "http_edge/edge_core.hpp"
#include "messages/errors.hpp"
#include "messages/live.hpp"
#include "persistence/presence.hpp"

// /v1/ws: one WebSocket session per connection, on the event loop. The client sends JSON
// commands ({"type":"subscribe"|"unsubscribe","topic":...}, {"type":"ping"},
// {"type":"typing","topic":"rooms/<id>"}, {"type":"presence","status":"online"|"away"}) and
// receives {"type":"event","topic","data"} for the topics it holds, plus a reply to each
// subscription command. Topics: the user's own notifications, "presence/<user id>" (anybody's
// online status), and those an authorizer allows (a chat room's members: "rooms/<id>"). The
// server pings when the line is quiet and closes a connection that stays silent; a client that
// does not read its events is dropped once its queue passes ws_max_queued_bytes. While a user
// has a connection open it is online in Redis (refreshed at every session check).

namespace chorus::edge {

namespace {

namespace websocket = beast::websocket;
using google::protobuf::Struct;
using google::protobuf::Value;

std::string json_of(std::initializer_list<std::pair<const char*, std::string>> fields) {
  Struct s;
  for (const auto& [k, v] : fields) (*s.mutable_fields())[k].set_string_value(v);
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(s, &out);
  return out;
}

/// Where the session's writer takes bytes for the wire (ws_transport hands it Beast's writes).
class frame_sink {
 public:
  virtual ~frame_sink() = default;
  /// Sends or queues `bytes` after everything given before; false when the connection is gone.
  virtual bool put(std::shared_ptr<const std::string> bytes) = 0;
  /// Calls `fn` once everything given so far is on the wire (or the connection is gone).
  virtual void when_drained(std::function<void()> fn) = 0;
};

/// The layer under the session's websocket::stream. Reads go to the socket. Every write Beast
/// makes (the upgrade's answer, pongs, pings, the close frame) is copied to the session's
/// writer, which also takes the frames the session and the live hub frame themselves: one
/// writer puts whole frames on the wire in order, and an event goes out with one send(2),
/// without an asynchronous operation per frame.
class ws_transport {
 public:
  using executor_type = beast::tcp_stream::executor_type;
  using next_layer_type = beast::tcp_stream;

  ws_transport(beast::tcp_stream stream, frame_sink* sink)
      : stream_(std::move(stream)), sink_(sink) {}

  executor_type get_executor() noexcept { return stream_.get_executor(); }
  next_layer_type& next_layer() noexcept { return stream_; }
  [[nodiscard]] const next_layer_type& next_layer() const noexcept { return stream_; }
  frame_sink& sink() noexcept { return *sink_; }

  template <class MutableBufferSequence, class ReadHandler>
  auto async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    return stream_.async_read_some(buffers, std::forward<ReadHandler>(handler));
  }

  template <class ConstBufferSequence, class WriteHandler>
  auto async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    return net::async_initiate<WriteHandler, void(beast::error_code, size_t)>(
        [this](auto h, const ConstBufferSequence& b) {
          std::string bytes(net::buffer_size(b), '\0');
          net::buffer_copy(net::buffer(bytes), b);
          size_t n = bytes.size();
          beast::error_code ec;
          if (!sink_->put(std::make_shared<const std::string>(std::move(bytes)))) {
            ec = net::error::connection_aborted;
            n = 0;
          }
          auto ex = net::get_associated_executor(h, stream_.get_executor());
          net::post(ex, beast::bind_front_handler(std::move(h), ec, n));
        },
        handler, buffers);
  }

 private:
  beast::tcp_stream stream_;
  frame_sink* sink_;
};

// Beast closes a WebSocket with a teardown of its next layer: here once the writer has put the
// close frame (and all before it) on the wire.
template <class TeardownHandler>
void async_teardown(beast::role_type role, ws_transport& t, TeardownHandler&& handler) {
  auto h = std::make_shared<std::decay_t<TeardownHandler>>(std::forward<TeardownHandler>(handler));
  t.sink().when_drained([role, &t, h] {
    using beast::websocket::async_teardown;
    async_teardown(role, t.next_layer(), std::move(*h));
  });
}

class ws_session final : public live_client,
                         public frame_sink,
                         public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(std::shared_ptr<edge_server::core> core, beast::tcp_stream stream, std::string user_id,
             http_request credentials)
      : core_(std::move(core)),
        ws_(std::move(stream), this),
        loop_(core_->loop_of(ws_.get_executor())),
        user_(std::move(user_id)),
        credentials_(std::move(credentials)),
        check_(ws_.get_executor()) {
    ++core_->connections;
  }

  ~ws_session() override {
    for (const auto& t : topics_) core_->live->unsubscribe(t, this);
    if (opened_) {
      core_->probe.ws_closed(reason_.empty() ? "client" : reason_);
      // The user's last connection on this node: this node's mark goes, and the watchers hear
      // what the other nodes' marks leave (online when the user is connected elsewhere).
      if (core_->live->count_user(user_, -1) == 0)
        net::post(core_->workers, [core = core_, user = user_] {
          auto left = persistence::presence_status::offline;
          if (core->cfg.presence)
            if (auto now = core->cfg.presence->set_offline(user_id{user})) left = *now;
          publish_presence(*core, user, persistence::to_string(left));
        });
    }
    --core_->connections;
  }

  [[nodiscard]] const std::string& user() const override { return user_; }

  void subscribed(const std::string& topic) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), topic] {
      self->send_json(json_of({{"type", "subscribed"}, {"topic", topic}}));
    });
  }

  void revoked(const std::string& topic) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), topic] {
      self->last_typing_.erase(topic);
      if (self->topics_.erase(topic) == 0) return;
      self->send_json(json_of({{"type", "unsubscribed"}, {"topic", topic}, {"reason", "removed"}}));
    });
  }

  static void publish_presence(edge_server::core& core, const std::string& user,
                               const std::string& status) {
    if (core.publish)
      core.publish("presence/" + user,
                   R"({"kind":"presence","user":")" + user + R"(","status":")" + status + "\"}");
  }

  ws_session(const ws_session&) = delete;
  ws_session& operator=(const ws_session&) = delete;

  void run(http::request<http::string_body> upgrade) {
    const auto& cfg = core_->cfg;
    beast::error_code ec;
    // The kernel buffers little per connection; the queue below is what a slow reader may fill.
    socket().set_option(net::socket_base::send_buffer_size(64 * 1024), ec);
    // put() writes at once what the kernel takes now, and leaves the rest to the loop.
    socket().non_blocking(true, ec);
    websocket::stream_base::timeout opt{std::chrono::seconds{10}, cfg.ws_idle_timeout, true};
    ws_.set_option(opt);
    ws_.read_message_max(cfg.ws_max_message_bytes);
    ws_.async_accept(upgrade, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->opened_ = true;
      self->core_->probe.ws_opened();
      bool first = self->core_->live->count_user(self->user_, +1) == 1;
      self->store_presence(first);
      self->read();
      self->schedule_check();
    });
  }

  [[nodiscard]] size_t loop() const override { return loop_; }

  // On the loop (live_connections posts there; a session whose loop the core does not know
  // gets it posted).
  bool push(const std::string& topic, const std::shared_ptr<const std::string>& frame) override {
    if (loop_ >= core_->loops.size()) {
      net::post(ws_.get_executor(), [self = shared_from_this(), topic, frame] {
        if (self->open_for(topic)) self->put(frame);
      });
      return true;
    }
    return open_for(topic) && put(frame);
  }

  // Whether an event of `topic` may go out: the client still holds the topic (an event framed
  // before an unsubscribe may arrive after it) and no close handshake has begun (nothing
  // follows a Close frame).
  [[nodiscard]] bool open_for(const std::string& topic) const {
    return !closed_ && ws_.is_open() && topics_.count(topic) > 0;
  }

  // On the loop: straight to the socket when nothing is queued, as much as the kernel takes;
  // the rest waits its turn. Frames are whole (ws_text_frame, or a write Beast made).
  bool put(std::shared_ptr<const std::string> bytes) override {
    if (ended_) return false;
    if (out_.empty()) {
      beast::error_code ec;
      size_t n = socket().write_some(net::buffer(*bytes), ec);  // non-blocking
      if (ec == net::error::would_block || ec == net::error::try_again) {
        ec = {};
        n = 0;
      }
      if (ec) {
        end("client");
        return false;
      }
      if (n == bytes->size()) return true;
      sent_ = n;
    }
    if (queued_bytes_ + bytes->size() > core_->cfg.ws_max_queued_bytes) {
      // The client does not read: drop it rather than buffer without bound.
      end("slow_reader");
      return false;
    }
    queued_bytes_ += bytes->size();
    out_.push_back(std::move(bytes));
    if (out_.size() == 1) write_queued();
    return true;
  }

  void when_drained(std::function<void()> fn) override {
    if (out_.empty() || ended_) return fn();
    drained_.push_back(std::move(fn));
  }

 private:
  /// How long a presence mark lasts unless a session check renews it.
  [[nodiscard]] std::chrono::milliseconds presence_ttl() const {
    return std::max(std::chrono::milliseconds{30000}, 3 * core_->cfg.ws_session_check);
  }

  // Marks the user online or away in Redis (on a worker: Redis may wait) and, when `announce`,
  // tells the watchers of its presence topic.
  void store_presence(bool announce) {
    auto status = away_ ? std::string{"away"} : std::string{"online"};
    net::post(core_->workers, [core = core_, user = user_, status, announce, ttl = presence_ttl()] {
      if (!core->cfg.presence) {
        if (announce) publish_presence(*core, user, status);
        return;
      }
      // What watchers hear is the user's status over every node: away here is still online
      // when another node holds an active connection.
      auto now =
          core->cfg.presence->set_online(user_id{user},
                                         status == "away" ? persistence::presence_status::away
                                                          : persistence::presence_status::online,
                                         ttl);
      if (announce) publish_presence(*core, user, now ? persistence::to_string(*now) : status);
    });
  }

  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->end(ec == beast::error::timeout ? "idle" : "client");
      auto text = beast::buffers_to_string(self->in_.data());
      self->in_.consume(self->in_.size());
      self->command(text);
      self->read();
    });
  }

  // The session behind the token is checked again every ws_session_check: a logout or an
  // expiry ends the connection (close code 1008). A check that fails for another reason
  // (storage down) keeps the connection and tries again next time.
  void schedule_check() {
    // Spread over 75..125% of the period: connections opened together (a node restart, a
    // benchmark) would otherwise all be re-checked in the same second and stall the workers.
    thread_local std::minstd_rand rng{std::random_device{}()};
    auto period = core_->cfg.ws_session_check;
    check_.expires_after(period * 3 / 4 + period * (rng() % 1000) / 2000);
    check_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      auto core = self->core_;
      std::vector<std::string> held{self->topics_.begin(), self->topics_.end()};
      net::post(core->workers, [self, core, held = std::move(held)] {
        auto who = core->ws_auth ? core->ws_auth(self->credentials_, new_request_id())
                                 : caf::expected<std::string>{self->user_};
        bool ended = !who && is(who.error(), domain_errc::unauthenticated);
        // The topics an authorizer let in are asked again: a member removed while its
        // subscription was being set up (or whose removal this node missed) stops hearing here.
        std::vector<std::string> lost;
        for (const auto& t : ended ? std::vector<std::string>{} : held)
          for (const auto& [prefix, authorize] : core->topic_authorizers)
            if (t.rfind(prefix, 0) == 0) {
              auto err = authorize(self->user_, t);
              if (is(err, domain_errc::forbidden) || is(err, domain_errc::not_found))
                lost.push_back(t);
            }
        net::post(self->ws_.get_executor(), [self, ended, lost = std::move(lost)] {
          if (self->closed_) return;
          for (const auto& t : lost) {
            self->core_->live->unsubscribe(t, self.get());
            self->revoked(t);
          }
          if (!ended) {
            self->store_presence(false);
            return self->schedule_check();
          }
          self->reason_ = "session_ended";
          self->closed_ = true;
          for (const auto& t : self->topics_) self->core_->live->unsubscribe(t, self.get());
          self->topics_.clear();
          self->ws_.async_close({websocket::close_code::policy_error, "session ended"},
                                [self](beast::error_code) {});
        });
      });
    });
  }

  void command(const std::string& text) {
    Struct msg;
    if (!ws_.got_text() || !google::protobuf::util::JsonStringToMessage(text, &msg).ok())
      return reply_error("malformed_json", "send one JSON object per text message", "");
    auto field = [&msg](const char* key) {
      auto it = msg.fields().find(key);
      return it != msg.fields().end() && it->second.kind_case() == Value::kStringValue
                 ? it->second.string_value()
                 : std::string{};
    };
    auto type = field("type");
    auto topic = field("topic");
    if (type == "ping") return send_json(json_of({{"type", "pong"}}));
    if (type == "typing") return typing(topic);
    if (type == "presence") {
      auto status = field("status");
      if (status != "online" && status != "away")
        return reply_error("validation", "status must be online or away", "");
      bool changed = away_ != (status == "away");
      away_ = status == "away";
      if (changed) store_presence(true);
      return;
    }
    if (type != "subscribe" && type != "unsubscribe")
      return reply_error("unknown_type",
                         "type must be subscribe, unsubscribe, typing, presence or ping", "");
    if (topic.empty()) return reply_error("validation", "topic must be a non-empty string", "");
    if (type == "unsubscribe") {
      last_typing_.erase(topic);
      if (topics_.erase(topic) > 0) core_->live->unsubscribe(topic, this);
      return send_json(json_of({{"type", "unsubscribed"}, {"topic", topic}}));
    }
    if (topics_.count(topic) == 0 && topics_.size() + pending_ >= core_->cfg.ws_max_topics)
      return reply_error("too_many_topics",
                         "at most " + std::to_string(core_->cfg.ws_max_topics) + " topics", topic);
    // What a client may see: its own notifications, anybody's presence, and what an authorizer
    // allows (a room's members its room).
    if (topic == notifications_topic(user_)) return subscribe(topic);
    if (topic.rfind("users/", 0) == 0)
      return reply_error("forbidden_topic", "only your own notifications", topic);
    if (topic.rfind("presence/", 0) == 0 && valid_entity_id(topic.substr(9)))
      return subscribe(topic);
    for (const auto& [prefix, authorize] : core_->topic_authorizers) {
      if (topic.rfind(prefix, 0) != 0) continue;
      // The authorizer asks an entity: on a worker, then back on this loop.
      ++pending_;
      net::post(core_->workers, [self = shared_from_this(), topic, fn = authorize] {
        auto err = fn(self->user_, topic);
        net::post(self->ws_.get_executor(), [self, topic, err] {
          --self->pending_;
          if (self->closed_) return;
          if (!err) return self->subscribe(topic);
          if (is(err, domain_errc::not_found))
            return self->reply_error("unknown_topic", "no such topic", topic);
          if (is(err, domain_errc::forbidden) || is(err, domain_errc::unauthenticated))
            return self->reply_error("forbidden_topic", error_detail(err), topic);
          self->reply_error("unavailable", "try again", topic);
        });
      });
      return;
    }
    reply_error("unknown_topic", "no such topic", topic);
  }

  // The reply waits until the subscription is in place on every node (live_connections).
  void subscribe(const std::string& topic) {
    if (topics_.insert(topic).second) return core_->live->subscribe(topic, shared_from_this());
    subscribed(topic);
  }

  // A typing indicator for a room the client holds, at most one per topic every 2 s; it lasts
  // typing_ttl unless repeated (clients drop it then).
  void typing(const std::string& topic) {
    if (topics_.count(topic) == 0 || topic.rfind("rooms/", 0) != 0)
      return reply_error("not_subscribed", "subscribe to the room first", topic);
    auto now = std::chrono::steady_clock::now();
    auto& last = last_typing_[topic];
    if (last.time_since_epoch().count() != 0 && now - last < std::chrono::seconds{2}) return;
    last = now;
    if (core_->publish)
      core_->publish(topic, R"({"kind":"typing","user":")" + user_ + R"(","expires_in_ms":6000})");
  }

  void reply_error(const char* code, const std::string& message, const std::string& topic) {
    auto json =
        topic.empty()
            ? json_of({{"type", "error"}, {"code", code}, {"message", message}})
            : json_of({{"type", "error"}, {"code", code}, {"message", message}, {"topic", topic}});
    send_json(std::move(json));
  }

  // On the loop: one JSON text message to the client, unless the session is closing.
  void send_json(const std::string& json) {
    if (!closed_ && ws_.is_open()) put(std::make_shared<const std::string>(ws_text_frame(json)));
  }

  tcp::socket& socket() { return beast::get_lowest_layer(ws_).socket(); }

  // The queue's head (from sent_ on) and what follows it, up to 16 frames, in one writev.
  void write_queued() {
    std::vector<net::const_buffer> bufs;
    for (const auto& f : out_) {
      if (bufs.size() == 16) break;
      bufs.push_back(net::buffer(*f) + (bufs.empty() ? sent_ : 0));
    }
    socket().async_write_some(bufs, [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (self->ended_) return;
      if (ec) return self->end("client");
      while (n > 0) {
        auto left = self->out_.front()->size() - self->sent_;
        if (n < left) {
          self->sent_ += n;
          break;
        }
        n -= left;
        self->queued_bytes_ -= self->out_.front()->size();
        self->out_.pop_front();
        self->sent_ = 0;
      }
      if (!self->out_.empty()) return self->write_queued();
      for (auto& fn : std::exchange(self->drained_, {})) fn();
    });
  }

  // Ends the session and closes the socket; also after a close handshake began (closed_ is
  // set then, the socket still open). The queue is left to the pending write's handler, which
  // still points into it.
  void end(const char* reason) {
    if (!closed_) {
      closed_ = true;
      if (reason_.empty()) reason_ = reason;
      for (const auto& t : topics_) core_->live->unsubscribe(t, this);
      topics_.clear();
    }
    if (ended_) return;
    ended_ = true;
    beast::error_code ec;
    check_.cancel();
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
    for (auto& fn : std::exchange(drained_, {})) fn();
  }

  std::shared_ptr<edge_server::core> core_;
  websocket::stream<ws_transport> ws_;
  size_t loop_;  // the index of the loop this connection lives on (core::loops)
  std::string user_;
  http_request credentials_;  // the upgrade's Authorization header or access_token
  net::steady_timer check_;
  beast::flat_buffer in_;
  // The writer (put): frames waiting for the socket, the bytes of the first already sent, and
  // who waits for the queue to empty (a close's teardown).
  std::deque<std::shared_ptr<const std::string>> out_;
  size_t sent_ = 0;
  size_t queued_bytes_ = 0;
  std::vector<std::function<void()>> drained_;
  bool opened_ = false;
  bool closed_ = false;  // no more events or replies (the connection is ending)
  bool ended_ = false;   // the socket is closed
  std::string reason_;
  std::set<std::string> topics_;
  size_t pending_ = 0;  // subscriptions waiting for their authorizer
  bool away_ = false;
  std::map<std::string, std::chrono::steady_clock::time_point> last_typing_;
};

}  // namespace

void start_websocket(std::shared_ptr<edge_server::core> core, beast::tcp_stream stream,
                     http::request<http::string_body> upgrade, std::string user_id,
                     const http_request& req) {
  // Only what identifies the session is kept for the later checks.
  http_request credentials;
  if (req.has_header("Authorization"))
    credentials.headers.emplace("Authorization", req.get_header_value("Authorization"));
  if (req.has_param("access_token"))
    credentials.params.emplace("access_token", req.get_param_value("access_token"));
  std::make_shared<ws_session>(std::move(core), std::move(stream), std::move(user_id),
                               std::move(credentials))
      ->run(std::move(upgrade));
}

}  // namespace chorus::edge
