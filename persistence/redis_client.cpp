#include "persistence/redis_client.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <ctime>

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>

#include "persistence/errc.hpp"
#include "persistence/storage_probe.hpp"

namespace chorus::persistence {

const char* to_string(redis_reply::kind x) noexcept {
  switch (x) {
    case redis_reply::kind::nil:
      return "nil";
    case redis_reply::kind::integer:
      return "integer";
    case redis_reply::kind::string:
      return "string";
    case redis_reply::kind::array:
      return "array";
    case redis_reply::kind::status:
      return "status";
    case redis_reply::kind::error:
      return "error";
  }
  return "unknown";
}

caf::error error_of(const redis_reply& error_reply, std::string_view command) {
  std::string_view msg = error_reply.str;
  auto prefix = msg.substr(0, msg.find(' '));
  auto detail = "redis " + std::string{command} + ": " + error_reply.str;
  for (std::string_view transient :
       {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "READONLY", "CLUSTERDOWN"})
    if (prefix == transient) return make_error(errc::redis_unavailable, std::move(detail));
  return make_error(errc::storage_error, std::move(detail));
}

std::string redis_script::sha() const {
  std::lock_guard guard{mtx_};
  return sha_;
}

void redis_script::set_sha(std::string sha) const {
  std::lock_guard guard{mtx_};
  sha_ = std::move(sha);
}

namespace {

using clock_type = std::chrono::steady_clock;

struct context_free {
  void operator()(redisContext* c) const { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_free>;

struct reply_free {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_free>;

timeval to_timeval(std::chrono::milliseconds d) {
  return timeval{static_cast<time_t>(d.count() / 1000),
                 static_cast<suseconds_t>((d.count() % 1000) * 1000)};
}

// hiredis writes with write(2): a write to a connection the server has reset raises SIGPIPE,
// whose default action kills the process. Block it on this thread for the duration of a call and
// swallow the one the call raised (the technique libpq uses), so no process-wide handler is
// needed. A SIGPIPE that was already pending is left alone.
class sigpipe_guard {
 public:
  sigpipe_guard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~sigpipe_guard() {
    if (!blocked_) return;
    sigset_t pending;
    sigemptyset(&pending);
    if (!was_pending_ && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
  bool blocked_ = false;
};

redis_reply convert(const redisReply& r) {
  redis_reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = redis_reply::kind::string;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = redis_reply::kind::status;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = redis_reply::kind::error;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = redis_reply::kind::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_NIL:
      out.type = redis_reply::kind::nil;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = redis_reply::kind::array;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i)
        out.elements.push_back(r.element[i] != nullptr ? convert(*r.element[i]) : redis_reply{});
      break;
    default:
      out.type = redis_reply::kind::error;
      out.str = "ERR hiredis returned an unknown reply type " + std::to_string(r.type);
      break;
  }
  return out;
}

// An idle connection must have nothing to read: Redis sends nothing unasked on a RESP2
// connection, so readable means the server closed it (restart, kill, idle timeout) or sent an
// error. Checking costs one poll(2) and saves a failed command on every restart.
bool usable(redisContext* c) {
  if (c->err != 0 || c->fd < 0) return false;
  pollfd p{c->fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

struct redis_client::impl {
  redis_client_config cfg;
  redis_address addr;
  std::string where;  // host:port/db, for error details

  std::mutex mtx;
  std::condition_variable freed;
  std::vector<context_ptr> idle;
  size_t open = 0;  // connections idle or lent out (or being connected)
  bool down = false;
  clock_type::time_point retry_at{};
  std::chrono::milliseconds backoff{0};

  struct lease {
    context_ptr ctx;
    bool probe = false;  // this call is the one allowed to try while Redis is down
  };

  caf::error unavailable(const std::string& what) const {
    return make_error(errc::redis_unavailable, "redis " + where + ": " + what);
  }

  caf::expected<context_ptr> connect() {
    sigpipe_guard guard;
    auto tv = to_timeval(cfg.connect_timeout);
    context_ptr c{redisConnectWithTimeout(addr.host.c_str(), addr.port, tv)};
    if (c == nullptr) return unavailable("cannot allocate a hiredis context");
    if (c->err != 0) return unavailable(std::string{"connect: "} + c->errstr);
    if (redisSetTimeout(c.get(), tv) != REDIS_OK)
      return unavailable(std::string{"cannot set socket timeout: "} + c->errstr);
    if (redisEnableKeepAlive(c.get()) != REDIS_OK)
      return unavailable(std::string{"cannot enable keep-alive: "} + c->errstr);
    if (addr.db != 0) {
      auto db = std::to_string(addr.db);
      reply_ptr r{static_cast<redisReply*>(redisCommand(c.get(), "SELECT %s", db.c_str()))};
      if (r == nullptr) return unavailable(std::string{"SELECT: "} + c->errstr);
      if (r->type != REDIS_REPLY_STATUS)
        return make_error(errc::bad_address, "redis " + where + ": SELECT " + db + " refused: " +
                                                 std::string{r->str != nullptr ? r->str : ""});
    }
    if (redisSetTimeout(c.get(), to_timeval(cfg.command_timeout)) != REDIS_OK)
      return unavailable(std::string{"cannot set socket timeout: "} + c->errstr);
    return c;
  }

  caf::error fail_fast_locked(clock_type::time_point now) const {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(retry_at - now);
    return unavailable("down, next connection attempt in " + std::to_string(wait.count()) + " ms");
  }

  caf::expected<lease> acquire() {
    std::unique_lock lk{mtx};
    auto now = clock_type::now();
    lease out;
    if (down) {
      if (now < retry_at) return fail_fast_locked(now);
      // This call tries; the others keep failing fast until it knows.
      out.probe = true;
      retry_at = now + backoff;
    }
    auto ready = [&] {
      return !idle.empty() || open < cfg.pool_size ||
             (down && !out.probe && clock_type::now() < retry_at);
    };
    if (!freed.wait_until(lk, now + cfg.pool_wait, ready))
      return unavailable("all " + std::to_string(cfg.pool_size) + " connections busy for " +
                         std::to_string(cfg.pool_wait.count()) + " ms");
    if (down && !out.probe && clock_type::now() < retry_at)
      return fail_fast_locked(clock_type::now());
    if (!idle.empty()) {
      out.ctx = std::move(idle.back());
      idle.pop_back();
    } else {
      ++open;
    }
    lk.unlock();
    if (out.ctx != nullptr && !usable(out.ctx.get())) out.ctx.reset();
    if (out.ctx == nullptr) {
      auto c = connect();
      if (!c) {
        finish(nullptr, false, out.probe);
        return std::move(c.error());
      }
      out.ctx = std::move(*c);
    }
    return out;
  }

  // Returns the connection to the pool (or drops it when null) and records the outcome.
  void finish(context_ptr ctx, bool ok, bool probe) {
    {
      std::lock_guard guard{mtx};
      auto now = clock_type::now();
      if (ctx != nullptr)
        idle.push_back(std::move(ctx));
      else
        --open;
      if (ok) {
        down = false;
        backoff = cfg.backoff_initial;
      } else if (!down) {
        down = true;
        backoff = cfg.backoff_initial;
        retry_at = now + backoff;
      } else if (probe) {
        backoff = std::min(backoff * 2, cfg.backoff_max);
        retry_at = now + backoff;
      }
      // A call that was in flight when another one failed adds nothing: the back-off grows
      // only with failed attempts, not with the number of threads that noticed.
    }
    freed.notify_one();
  }

  caf::expected<redis_reply> run(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds answer_timeout) {
    if (argv.empty()) return make_error(errc::storage_error, "redis: empty command");
    auto l = acquire();
    if (!l) return std::move(l.error());
    auto* c = l->ctx.get();
    std::vector<const char*> args;
    std::vector<size_t> lens;
    args.reserve(argv.size());
    lens.reserve(argv.size());
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    auto custom_timeout = answer_timeout != cfg.command_timeout;
    sigpipe_guard guard;
    if (custom_timeout && redisSetTimeout(c, to_timeval(answer_timeout)) != REDIS_OK) {
      std::string why = c->errstr;
      finish(nullptr, false, l->probe);
      return unavailable("cannot set socket timeout: " + why);
    }
    reply_ptr raw{static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data()))};
    if (raw == nullptr) {
      // The reply may still come later; the connection cannot be reused.
      std::string why = c->err != 0 ? c->errstr : "no reply";
      finish(nullptr, false, l->probe);
      return unavailable(argv.front() + ": " + why);
    }
    auto out = convert(*raw);
    raw.reset();
    if (custom_timeout && redisSetTimeout(c, to_timeval(cfg.command_timeout)) != REDIS_OK)
      l->ctx.reset();  // the answer is good; the connection is not worth keeping
    finish(std::move(l->ctx), true, l->probe);
    return out;
  }
};

redis_client::redis_client(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

redis_client::~redis_client() = default;

caf::expected<std::shared_ptr<redis_client>> redis_client::make(redis_client_config cfg) {
  auto p = std::make_unique<impl>();
  if (auto err = parse_redis_url(cfg.url, p->addr)) return err;
  // A zero timeout means "block forever" to hiredis: never let a config ask for that.
  using ms = std::chrono::milliseconds;
  cfg.pool_size = std::max<size_t>(cfg.pool_size, 1);
  cfg.connect_timeout = std::max(cfg.connect_timeout, ms{1});
  cfg.command_timeout = std::max(cfg.command_timeout, ms{1});
  cfg.backoff_initial = std::max(cfg.backoff_initial, ms{1});
  cfg.backoff_max = std::max(cfg.backoff_max, cfg.backoff_initial);
  p->where = p->addr.host + ":" + std::to_string(p->addr.port) + "/" + std::to_string(p->addr.db);
  p->backoff = cfg.backoff_initial;
  p->cfg = std::move(cfg);
  return std::shared_ptr<redis_client>{new redis_client{std::move(p)}};
}

caf::expected<redis_reply> redis_client::command(const std::vector<std::string>& argv) {
  return impl_->run(argv, impl_->cfg.command_timeout);
}

caf::expected<redis_reply> redis_client::command(const std::vector<std::string>& argv,
                                                 std::chrono::milliseconds answer_timeout) {
  return impl_->run(argv, std::max(answer_timeout, std::chrono::milliseconds{1}));
}

caf::expected<redis_reply> redis_client::call(const std::vector<std::string>& argv) {
  auto r = command(argv);
  if (r && r->is_error()) return error_of(*r, argv.front());
  return r;
}

caf::expected<redis_reply> redis_client::eval_script(const redis_script& script,
                                                     const std::vector<std::string>& keys,
                                                     const std::vector<std::string>& args) {
  auto sha = script.sha();
  if (sha.empty()) {
    auto loaded = call({"SCRIPT", "LOAD", script.source()});
    if (!loaded) return std::move(loaded.error());
    if (!loaded->is_string())
      return make_error(errc::storage_error, "redis SCRIPT LOAD: unexpected " +
                                                 std::string{to_string(loaded->type)} + " reply");
    sha = loaded->str;
    script.set_sha(sha);
  }
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.push_back(sha);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = command(argv);
  if (r && r->is_error() && r->str.rfind("NOSCRIPT", 0) == 0) {
    // The server lost its script cache (restart, SCRIPT FLUSH): EVAL runs and caches it again.
    argv[0] = "EVAL";
    argv[1] = script.source();
    r = command(argv);
  }
  if (r && r->is_error()) return error_of(*r, argv.front());
  return r;
}

caf::expected<std::optional<std::string>> redis_client::get(const std::string& key) {
  auto r = call({"GET", key});
  if (!r) return std::move(r.error());
  if (r->is_nil()) return std::optional<std::string>{};
  if (!r->is_string())
    return make_error(errc::storage_error,
                      "redis GET: unexpected " + std::string{to_string(r->type)} + " reply");
  return std::optional<std::string>{std::move(r->str)};
}

caf::error redis_client::set(const std::string& key, const std::string& value,
                             std::chrono::milliseconds ttl) {
  auto r = ttl.count() > 0 ? call({"SET", key, value, "PX", std::to_string(ttl.count())})
                           : call({"SET", key, value});
  if (!r) return std::move(r.error());
  return {};
}

caf::expected<int64_t> redis_client::del(const std::vector<std::string>& keys) {
  if (keys.empty()) return int64_t{0};
  std::vector<std::string> argv;
  argv.reserve(keys.size() + 1);
  argv.emplace_back("DEL");
  argv.insert(argv.end(), keys.begin(), keys.end());
  auto r = call(argv);
  if (!r) return std::move(r.error());
  if (!r->is_integer())
    return make_error(errc::storage_error,
                      "redis DEL: unexpected " + std::string{to_string(r->type)} + " reply");
  return r->integer;
}

caf::error redis_client::ping() {
  auto r = call({"PING"});
  if (!r) return std::move(r.error());
  if (!r->is_status() || r->str != "PONG")
    return make_error(errc::storage_error, "redis PING: unexpected answer " + r->str);
  return {};
}

bool redis_client::available() const {
  std::lock_guard guard{impl_->mtx};
  return !impl_->down;
}

const redis_client_config& redis_client::config() const noexcept {
  return impl_->cfg;
}

}  // namespace chorus::persistence
