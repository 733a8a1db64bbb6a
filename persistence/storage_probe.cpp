#include "persistence/storage_probe.hpp"

#include <charconv>
#include <exception>
#include <memory>

#include <hiredis/hiredis.h>
#include <pqxx/pqxx>

#include "persistence/errc.hpp"

namespace chorus::persistence {

const char* to_string(errc x) noexcept {
  switch (x) {
    case errc::none:
      return "none";
    case errc::postgres_unavailable:
      return "postgres_unavailable";
    case errc::redis_unavailable:
      return "redis_unavailable";
    case errc::bad_address:
      return "bad_address";
    case errc::version_conflict:
      return "version_conflict";
    case errc::storage_error:
      return "storage_error";
    case errc::blob_not_found:
      return "blob_not_found";
    case errc::blob_unavailable:
      return "blob_unavailable";
    case errc::blob_error:
      return "blob_error";
    case errc::blob_bad_range:
      return "blob_bad_range";
    case errc::corrupt_stream:
      return "corrupt_stream";
  }
  return "unknown";
}

namespace {

// libpq wants whole seconds and treats anything below 2 as 2.
std::string with_connect_timeout(const std::string& dsn, std::chrono::milliseconds timeout) {
  auto secs = std::max<long long>(2, (timeout.count() + 999) / 1000);
  auto is_uri = dsn.rfind("postgres://", 0) == 0 || dsn.rfind("postgresql://", 0) == 0;
  if (!is_uri) return dsn + " connect_timeout=" + std::to_string(secs);
  auto sep = dsn.find('?') == std::string::npos ? '?' : '&';
  return dsn + sep + "connect_timeout=" + std::to_string(secs);
}

bool parse_int(std::string_view s, int& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && ptr == s.data() + s.size();
}

struct redis_free {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct reply_free {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

}  // namespace

caf::error probe_postgres(const std::string& dsn, std::chrono::milliseconds timeout) {
  // libpqxx throws; nothing thrown here may leave persistence/.
  try {
    pqxx::connection conn{with_connect_timeout(dsn, timeout)};
    pqxx::nontransaction tx{conn};
    tx.exec1("SELECT 1");
    return {};
  } catch (const std::exception& e) {
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    return make_error(errc::postgres_unavailable, what);
  }
}

caf::error parse_redis_url(const std::string& url, redis_address& out) {
  constexpr std::string_view scheme = "redis://";
  if (url.rfind(scheme, 0) != 0)
    return make_error(errc::bad_address, "redis url must start with redis://: " + url);
  std::string_view rest{url};
  rest.remove_prefix(scheme.size());
  redis_address addr;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (!parse_int(rest.substr(slash + 1), addr.db) || addr.db < 0)
      return make_error(errc::bad_address, "bad database number in redis url: " + url);
    rest = rest.substr(0, slash);
  }
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    if (!parse_int(rest.substr(colon + 1), addr.port) || addr.port < 1 || addr.port > 65535)
      return make_error(errc::bad_address, "bad port in redis url: " + url);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return make_error(errc::bad_address, "no host in redis url: " + url);
  addr.host = std::string{rest};
  out = std::move(addr);
  return {};
}

caf::error probe_redis(const std::string& url, std::chrono::milliseconds timeout) {
  redis_address addr;
  if (auto err = parse_redis_url(url, addr)) return err;
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  std::unique_ptr<redisContext, redis_free> ctx{
      redisConnectWithTimeout(addr.host.c_str(), addr.port, tv)};
  if (ctx == nullptr)
    return make_error(errc::redis_unavailable, "redis: out of memory allocating a context");
  if (ctx->err != 0)
    return make_error(errc::redis_unavailable, std::string{"redis: "} + ctx->errstr);
  if (redisSetTimeout(ctx.get(), tv) != REDIS_OK)
    return make_error(errc::redis_unavailable, "redis: cannot set socket timeout");
  std::unique_ptr<redisReply, reply_free> reply{
      static_cast<redisReply*>(redisCommand(ctx.get(), "PING"))};
  if (reply == nullptr)
    return make_error(errc::redis_unavailable, std::string{"redis: "} + ctx->errstr);
  if (reply->type != REDIS_REPLY_STATUS || std::string_view{reply->str, reply->len} != "PONG")
    return make_error(errc::redis_unavailable, "redis: unexpected answer to PING: " +
                                                   std::string{reply->str ? reply->str : ""});
  return {};
}

}  // namespace chorus::persistence
