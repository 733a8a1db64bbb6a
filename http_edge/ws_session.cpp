#include <deque>
#include <set>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket.hpp>

#include "http_edge/edge_core.hpp"
#include "messages/errors.hpp"
#include "messages/live.hpp"

// /v1/ws: one WebSocket session per connection, on the event loop. The client sends JSON
// commands ({"type":"subscribe"|"unsubscribe","topic":...}, {"type":"ping"}) and receives
// {"type":"event","topic","data"} for the topics it holds, plus a reply to each command. The
// server pings when the line is quiet and closes a connection that stays silent; a client that
// does not read its events is dropped once its queue passes ws_max_queued_bytes.

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

class ws_session final : public live_client, public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(std::shared_ptr<edge_server::core> core, beast::tcp_stream stream, std::string user_id,
             http_request credentials)
      : core_(std::move(core)),
        ws_(std::move(stream)),
        user_(std::move(user_id)),
        credentials_(std::move(credentials)),
        check_(ws_.get_executor()) {
    ++core_->connections;
  }

  ~ws_session() override {
    for (const auto& t : topics_) core_->live->unsubscribe(t, this);
    if (opened_) core_->probe.ws_closed(reason_.empty() ? "client" : reason_);
    --core_->connections;
  }

  ws_session(const ws_session&) = delete;
  ws_session& operator=(const ws_session&) = delete;

  void run(http::request<http::string_body> upgrade) {
    const auto& cfg = core_->cfg;
    beast::error_code ec;
    // The kernel buffers little per connection; the queue below is what a slow reader may fill.
    beast::get_lowest_layer(ws_).socket().set_option(net::socket_base::send_buffer_size(64 * 1024),
                                                     ec);
    websocket::stream_base::timeout opt{std::chrono::seconds{10}, cfg.ws_idle_timeout, true};
    ws_.set_option(opt);
    ws_.read_message_max(cfg.ws_max_message_bytes);
    ws_.async_accept(upgrade, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->opened_ = true;
      self->core_->probe.ws_opened();
      self->read();
      self->schedule_check();
    });
  }

  void push(std::shared_ptr<const std::string> frame) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), frame = std::move(frame)] {
      self->core_->probe.ws_sent();
      self->enqueue(frame);
    });
  }

 private:
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
    check_.expires_after(core_->cfg.ws_session_check);
    check_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      auto core = self->core_;
      net::post(core->workers, [self, core] {
        auto who = core->ws_auth ? core->ws_auth(self->credentials_, new_request_id())
                                 : caf::expected<std::string>{self->user_};
        bool ended = !who && is(who.error(), domain_errc::unauthenticated);
        net::post(self->ws_.get_executor(), [self, ended] {
          if (self->closed_) return;
          if (!ended) return self->schedule_check();
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
    if (type == "ping")
      return enqueue(std::make_shared<const std::string>(json_of({{"type", "pong"}})));
    if (type != "subscribe" && type != "unsubscribe")
      return reply_error("unknown_type", "type must be subscribe, unsubscribe or ping", "");
    if (topic.empty()) return reply_error("validation", "topic must be a non-empty string", "");
    if (type == "unsubscribe") {
      if (topics_.erase(topic) > 0) core_->live->unsubscribe(topic, this);
      return enqueue(std::make_shared<const std::string>(
          json_of({{"type", "unsubscribed"}, {"topic", topic}})));
    }
    // What a client may see: its own notifications (chat rooms come with the social domain).
    if (topic.rfind("users/", 0) == 0 && topic != notifications_topic(user_))
      return reply_error("forbidden_topic", "only your own notifications", topic);
    if (topic != notifications_topic(user_))
      return reply_error("unknown_topic", "no such topic", topic);
    if (topics_.count(topic) == 0 && topics_.size() >= core_->cfg.ws_max_topics)
      return reply_error("too_many_topics",
                         "at most " + std::to_string(core_->cfg.ws_max_topics) + " topics", topic);
    if (topics_.insert(topic).second) core_->live->subscribe(topic, shared_from_this());
    enqueue(
        std::make_shared<const std::string>(json_of({{"type", "subscribed"}, {"topic", topic}})));
  }

  void reply_error(const char* code, const std::string& message, const std::string& topic) {
    auto json =
        topic.empty()
            ? json_of({{"type", "error"}, {"code", code}, {"message", message}})
            : json_of({{"type", "error"}, {"code", code}, {"message", message}, {"topic", topic}});
    enqueue(std::make_shared<const std::string>(std::move(json)));
  }

  // On the strand.
  void enqueue(std::shared_ptr<const std::string> frame) {
    if (closed_) return;
    if (queued_bytes_ + frame->size() > core_->cfg.ws_max_queued_bytes) {
      // The client does not read: drop it rather than buffer without bound.
      return end("slow_reader");
    }
    queued_bytes_ += frame->size();
    out_.push_back(std::move(frame));
    if (!writing_) write_next();
  }

  void write_next() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(*out_.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->queued_bytes_ -= self->out_.front()->size();
                      self->out_.pop_front();
                      if (ec) return self->end("client");
                      if (self->out_.empty())
                        self->writing_ = false;
                      else
                        self->write_next();
                    });
  }

  void end(const char* reason) {
    if (closed_) return;
    closed_ = true;
    if (reason_.empty()) reason_ = reason;
    for (const auto& t : topics_) core_->live->unsubscribe(t, this);
    topics_.clear();
    beast::error_code ec;
    check_.cancel();
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

  std::shared_ptr<edge_server::core> core_;
  websocket::stream<beast::tcp_stream> ws_;
  std::string user_;
  http_request credentials_;  // the upgrade's Authorization header or access_token
  net::steady_timer check_;
  beast::flat_buffer in_;
  std::deque<std::shared_ptr<const std::string>> out_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool opened_ = false;
  bool closed_ = false;
  std::string reason_;
  std::set<std::string> topics_;
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
