#include "nodes/cluster_config.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <caf/config_value.hpp>
#include <caf/detail/ini_consumer.hpp>
#include <caf/detail/parser/read_ini.hpp>
#include <caf/parser_state.hpp>
#include <caf/settings.hpp>

#include "actors/social/channels.hpp"
#include "messages/errors.hpp"

namespace chorus {

namespace {

constexpr caf::atom_value config_category = caf::atom("config");

enum class config_errc : uint8_t { invalid = 1 };

const std::vector<std::string> known_roles{"edge", "entity", "transcode"};

bool is_name(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  return std::all_of(s.begin(), s.end(), ok) && s.front() != '-';
}

/// Reads one dictionary of the config against a declared set of keys. Every getter records the
/// key as known; `finish` rejects the rest. The first problem wins and names its key.
class section_reader {
 public:
  section_reader(const caf::settings& dict, std::string prefix, std::string& error)
      : dict_(dict), prefix_(std::move(prefix)), error_(error) {}

  [[nodiscard]] std::string key_name(const std::string& key) const {
    return prefix_.empty() ? key : prefix_ + "." + key;
  }

  bool fail(const std::string& key, const std::string& what) {
    if (error_.empty()) error_ = key_name(key) + ": " + what;
    return false;
  }

  const caf::config_value* lookup(const std::string& key, bool required) {
    known_.insert(key);
    auto i = dict_.find(key);
    if (i == dict_.end()) {
      if (required) fail(key, "missing (required)");
      return nullptr;
    }
    return &i->second;
  }

  template <class T>
  const T* typed(const std::string& key, bool required, const char* expected) {
    auto* value = lookup(key, required);
    if (value == nullptr) return nullptr;
    if (auto* x = caf::get_if<T>(value)) return x;
    fail(key, std::string{"expected "} + expected + ", got " + value->type_name() + " " +
                  caf::to_string(*value));
    return nullptr;
  }

  bool string(const std::string& key, std::string& out, bool required) {
    auto* x = typed<std::string>(key, required, "a string");
    if (x != nullptr) out = *x;
    return error_.empty();
  }

  bool port(const std::string& key, uint16_t& out, bool required) {
    auto* x = typed<int64_t>(key, required, "an integer");
    if (x == nullptr) return error_.empty();
    if (*x < 1 || *x > 65535) return fail(key, std::to_string(*x) + " is out of range 1..65535");
    out = static_cast<uint16_t>(*x);
    return true;
  }

  bool duration(const std::string& key, std::chrono::milliseconds& out) {
    auto* x = typed<caf::timespan>(key, false, "a duration such as 500ms or 2s");
    if (x == nullptr) return error_.empty();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*x);
    if (ms.count() <= 0) return fail(key, "must be positive");
    out = ms;
    return true;
  }

  /// A duration of at most `max`, in microseconds; 0 is allowed (it turns something off).
  bool short_duration(const std::string& key, std::chrono::microseconds& out,
                      std::chrono::microseconds max) {
    auto* x = typed<caf::timespan>(key, false, "a duration such as 300us or 1ms");
    if (x == nullptr) return error_.empty();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(*x);
    if (us.count() < 0 || us > max)
      return fail(key, "must be 0.." + std::to_string(max.count()) + "us");
    out = us;
    return true;
  }

  bool boolean(const std::string& key, bool& out) {
    auto* x = typed<bool>(key, false, "true or false");
    if (x != nullptr) out = *x;
    return error_.empty();
  }

  bool count(const std::string& key, size_t& out) {
    auto* x = typed<int64_t>(key, false, "an integer");
    if (x == nullptr) return error_.empty();
    if (*x < 1) return fail(key, std::to_string(*x) + " must be at least 1");
    out = static_cast<size_t>(*x);
    return true;
  }

  /// Like count, but 0 is allowed (it turns something off).
  bool amount(const std::string& key, size_t& out) {
    auto* x = typed<int64_t>(key, false, "an integer");
    if (x == nullptr) return error_.empty();
    if (*x < 0) return fail(key, std::to_string(*x) + " must not be negative");
    out = static_cast<size_t>(*x);
    return true;
  }

  const caf::config_value::list* list(const std::string& key, bool required) {
    return typed<caf::config_value::list>(key, required, "a list");
  }

  const caf::settings* dict(const std::string& key, bool required) {
    return typed<caf::settings>(key, required, "a section or map");
  }

  /// Rejects every key no getter asked for.
  bool finish() {
    for (const auto& [key, value] : dict_)
      if (known_.count(key) == 0) return fail(key, "unknown key");
    return error_.empty();
  }

 private:
  const caf::settings& dict_;
  std::string prefix_;
  std::string& error_;
  std::set<std::string> known_;
};

// Keys of CAF's own sections must be options CAF declares, with a value of the right type:
// CAF itself keeps unknown keys and silently drops mistyped ones.
bool check_caf_section(const caf::config_option_set& options, const std::string& category,
                       const caf::settings& dict, std::string& error) {
  for (const auto& [key, value] : dict) {
    auto name = category + "." + key;
    if (auto* sub = caf::get_if<caf::settings>(&value)) {
      if (!check_caf_section(options, name, *sub, error)) return false;
      continue;
    }
    auto* opt = options.qualified_name_lookup(category, key);
    if (opt == nullptr) {
      error = name + ": unknown key (not a CAF option)";
      return false;
    }
    if (auto err = opt->check(value)) {
      auto type = opt->type_name();
      error = name + ": expected " + std::string(type.data(), type.size()) + ", got " +
              caf::to_string(value);
      return false;
    }
  }
  return true;
}

bool read_node(const caf::settings& entry, const std::string& prefix, node_spec& out,
               std::string& error) {
  section_reader r{entry, prefix, error};
  std::string name;
  r.string("name", name, true);
  if (error.empty() && !is_name(name, 32))
    return r.fail("name", "\"" + name + "\" must be 1..32 characters of a-z, 0-9 and '-'");
  out.name = node_name{name};
  r.string("host", out.host, true);
  if (error.empty() && out.host.empty()) return r.fail("host", "must not be empty");
  r.port("actor-port", out.actor_port, true);
  r.port("http-port", out.http_port, true);
  r.port("ws-port", out.ws_port, true);
  r.port("metrics-port", out.metrics_port, true);
  if (auto* roles = r.list("roles", true)) {
    if (roles->empty()) return r.fail("roles", "must name at least one role");
    for (const auto& role : *roles) {
      auto* s = caf::get_if<std::string>(&role);
      if (s == nullptr)
        return r.fail("roles", "expected a list of strings, got " + caf::to_string(role));
      if (std::find(known_roles.begin(), known_roles.end(), *s) == known_roles.end())
        return r.fail("roles", "unknown role \"" + *s + "\" (known: edge, entity, transcode)");
      if (std::find(out.roles.begin(), out.roles.end(), *s) != out.roles.end())
        return r.fail("roles", "role \"" + *s + "\" listed twice");
      out.roles.push_back(*s);
    }
  }
  return r.finish();
}

// Every (host, port) pair may be used once: two nodes, or a node and the local storage servers,
// must never be configured onto the same port.
bool check_port_collisions(const cluster_config& cfg, std::string& error) {
  std::map<std::pair<std::string, uint16_t>, std::string> used;
  auto claim = [&](std::string host, uint16_t port, const std::string& key) {
    if (host == "localhost") host = "127.0.0.1";
    auto [i, added] = used.emplace(std::make_pair(host, port), key);
    if (!added) error = key + ": port " + std::to_string(port) + " is already used by " + i->second;
    return added;
  };
  if (!claim("127.0.0.1", cfg.storage.postgres_port, "chorus.storage.postgres-port") ||
      !claim("127.0.0.1", cfg.storage.redis_port, "chorus.storage.redis-port"))
    return false;
  for (size_t i = 0; i < cfg.nodes.size(); ++i) {
    const auto& n = cfg.nodes[i];
    auto prefix = "chorus.nodes[" + std::to_string(i) + "].";
    if (!claim(n.host, n.actor_port, prefix + "actor-port") ||
        !claim(n.host, n.http_port, prefix + "http-port") ||
        !claim(n.host, n.ws_port, prefix + "ws-port") ||
        !claim(n.host, n.metrics_port, prefix + "metrics-port"))
      return false;
  }
  return true;
}

// An origin as browsers send it: http or https, a host, an optional port, nothing more.
bool is_origin(const std::string& s) {
  std::string_view rest = s;
  if (rest.rfind("https://", 0) == 0)
    rest.remove_prefix(8);
  else if (rest.rfind("http://", 0) == 0)
    rest.remove_prefix(7);
  else
    return false;
  auto colon = rest.find(':');
  auto host = rest.substr(0, colon);
  if (host.empty() || host.size() > 253) return false;
  for (char c : host)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  if (colon == std::string_view::npos) return true;
  auto port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  auto n = std::stoi(std::string{port});
  return n >= 1 && n <= 65535;
}

bool read_chorus(const caf::settings& section, const std::string& path, cluster_config& out,
                 std::string& error) {
  section_reader r{section, "chorus", error};
  if (!r.string("cluster-name", out.cluster_name, true)) return false;
  if (!is_name(out.cluster_name, 63))
    return r.fail("cluster-name",
                  "\"" + out.cluster_name + "\" must be 1..63 characters of a-z, 0-9 and '-'");
  std::string data_dir = ".chorus";
  if (!r.string("data-dir", data_dir, false)) return false;
  if (data_dir.empty()) return r.fail("data-dir", "must not be empty");
  namespace fs = std::filesystem;
  auto base = fs::absolute(fs::path{path}).parent_path();
  out.data_dir = (base / data_dir).lexically_normal().string();
  if (out.data_dir.size() > 1 && out.data_dir.back() == '/') out.data_dir.pop_back();

  if (auto* m = r.dict("membership", false)) {
    section_reader mr{*m, "chorus.membership", error};
    mr.duration("dial-timeout", out.membership.dial_timeout);
    mr.duration("retry-min", out.membership.retry_min);
    mr.duration("retry-max", out.membership.retry_max);
    if (!mr.finish()) return false;
    if (out.membership.retry_min > out.membership.retry_max)
      return mr.fail("retry-min", "must not be larger than retry-max");
  }
  if (!error.empty()) return false;

  if (auto* e = r.dict("entities", false)) {
    section_reader er{*e, "chorus.entities", error};
    er.duration("idle-timeout", out.entities.idle_timeout);
    er.count("max-active", out.entities.max_active);
    er.duration("sweep-interval", out.entities.sweep_interval);
    er.duration("max-queue-age", out.entities.max_queue_age);
    er.duration("reminder-poll", out.entities.reminder_poll);
    er.duration("request-timeout", out.entities.request_timeout);
    if (!er.finish()) return false;
    if (out.entities.request_timeout < std::chrono::milliseconds{100} ||
        out.entities.request_timeout > std::chrono::minutes{5})
      return er.fail("request-timeout", "must be 100ms..5min");
    // Polling is one claim query per database and node; a minute bounds how late a reminder
    // may fire.
    if (out.entities.reminder_poll > std::chrono::minutes{1})
      return er.fail("reminder-poll", "must be at most 1min");
  }
  if (!error.empty() || !r.boolean("debug-endpoints", out.debug_endpoints)) return false;

  if (auto* a = r.dict("audio", false)) {
    section_reader ar{*a, "chorus.audio", error};
    ar.amount("max-upload-bytes", out.audio.max_upload_bytes);
    ar.duration("max-duration", out.audio.max_duration);
    ar.count("transcode-workers", out.audio.transcode_workers);
    ar.duration("transcode-timeout", out.audio.transcode_timeout);
    ar.string("stream-url-key", out.audio.stream_url_key, false);
    ar.duration("stream-url-ttl", out.audio.stream_url_ttl);
    if (!ar.finish()) return false;
    if (const char* key = std::getenv("CHORUS_STREAM_URL_KEY"); key != nullptr && *key != 0)
      out.audio.stream_url_key = key;
    if (!out.audio.stream_url_key.empty() && out.audio.stream_url_key.size() < 32)
      return ar.fail("stream-url-key", "must be at least 32 characters (or empty: off)");
    if (out.audio.stream_url_ttl < std::chrono::minutes{1} ||
        out.audio.stream_url_ttl > std::chrono::hours{24 * 7})
      return ar.fail("stream-url-ttl", "must be 1min..168h");
    if (out.audio.max_upload_bytes < 1024 || out.audio.max_upload_bytes > (size_t{16} << 30))
      return ar.fail("max-upload-bytes", "must be 1024..17179869184");
    if (out.audio.max_duration < std::chrono::seconds{1} ||
        out.audio.max_duration > std::chrono::hours{24})
      return ar.fail("max-duration", "must be 1s..24h");
    if (out.audio.transcode_workers == 0 || out.audio.transcode_workers > 64)
      return ar.fail("transcode-workers", "must be 1..64");
    if (out.audio.transcode_timeout < std::chrono::seconds{1} ||
        out.audio.transcode_timeout > std::chrono::hours{24})
      return ar.fail("transcode-timeout", "must be 1s..24h");
  }
  if (!error.empty()) return false;

  if (auto* s = r.dict("social", false)) {
    section_reader sr{*s, "chorus.social", error};
    sr.count("message-limit", out.social.message_limit);
    sr.duration("message-window", out.social.message_window);
    if (!sr.finish()) return false;
    if (out.social.message_limit == 0 || out.social.message_limit > 100000)
      return sr.fail("message-limit", "must be 1..100000");
    if (out.social.message_window < std::chrono::seconds{1} ||
        out.social.message_window > std::chrono::hours{1})
      return sr.fail("message-window", "must be 1s..1h");
  }
  if (!error.empty()) return false;

  if (auto* n = r.dict("notify", false)) {
    section_reader nr{*n, "chorus.notify", error};
    nr.string("smtp-url", out.notify.smtp_url, false);
    nr.string("smtp-from", out.notify.smtp_from, false);
    nr.string("sms-webhook", out.notify.sms_webhook, false);
    nr.string("push-webhook", out.notify.push_webhook, false);
    nr.string("webhook-secret", out.notify.webhook_secret, false);
    nr.duration("digest-delay", out.notify.digest_delay);
    nr.duration("retry-base", out.notify.retry_base);
    nr.duration("retry-max", out.notify.retry_max);
    nr.count("max-attempts", out.notify.max_attempts);
    if (!nr.finish()) return false;
    if (const char* key = std::getenv("CHORUS_WEBHOOK_SECRET"); key != nullptr && *key != 0)
      out.notify.webhook_secret = key;
    auto url_ok = [](const std::string& u, std::initializer_list<const char*> schemes) {
      if (u.empty()) return true;
      for (const char* s : schemes)
        if (u.rfind(s, 0) == 0 && u.size() > std::string_view{s}.size()) return true;
      return false;
    };
    if (!url_ok(out.notify.smtp_url, {"smtp://", "smtps://"}))
      return nr.fail("smtp-url", "must be smtp://host[:port] or smtps://... (or empty: no email)");
    for (auto [key, url] : {std::pair{"sms-webhook", &out.notify.sms_webhook},
                            std::pair{"push-webhook", &out.notify.push_webhook}})
      if (!url_ok(*url, {"http://", "https://"}))
        return nr.fail(key, "must be an http:// or https:// URL (or empty: off)");
    bool hooks = !out.notify.sms_webhook.empty() || !out.notify.push_webhook.empty();
    if (hooks && out.notify.webhook_secret.size() < 16)
      return nr.fail("webhook-secret", "must be at least 16 characters when a webhook is set");
    if (!social::is_valid_address(out.notify.smtp_from))
      return nr.fail("smtp-from", "must be a plain email address (name@example.org)");
    if (out.notify.digest_delay > std::chrono::hours{24})
      return nr.fail("digest-delay", "must be at most 24h");
    if (out.notify.retry_base < std::chrono::milliseconds{10} ||
        out.notify.retry_max < out.notify.retry_base)
      return nr.fail("retry-base", "must be at least 10ms and at most retry-max");
    if (out.notify.max_attempts == 0 || out.notify.max_attempts > 100)
      return nr.fail("max-attempts", "must be 1..100");
  }
  if (!error.empty()) return false;

  if (auto* u = r.dict("users", false)) {
    section_reader ur{*u, "chorus.users", error};
    if (auto* admins = ur.list("admins", false)) {
      for (const auto& a : *admins) {
        auto* name = caf::get_if<std::string>(&a);
        if (name == nullptr || name->empty())
          return ur.fail("admins", "expected a list of usernames, got " + caf::to_string(a));
        std::string lower;
        for (unsigned char c : *name) lower += static_cast<char>(std::tolower(c));
        out.users.admins.push_back(lower);
      }
    }
    ur.boolean("artist-approval", out.users.artist_approval);
    ur.duration("session-idle", out.users.session_idle);
    ur.duration("session-max", out.users.session_max);
    ur.string("common-passwords", out.users.common_passwords, false);
    if (!ur.finish()) return false;
    if (out.users.session_idle > out.users.session_max)
      return ur.fail("session-idle", "must not be longer than session-max");
  }
  if (!error.empty()) return false;

  if (auto* e = r.dict("edge", false)) {
    section_reader edr{*e, "chorus.edge", error};
    if (auto* origins = edr.list("cors-origins", false)) {
      out.edge.cors_origins.clear();
      for (const auto& o : *origins) {
        auto* origin = caf::get_if<std::string>(&o);
        if (origin == nullptr || !is_origin(*origin))
          return edr.fail("cors-origins",
                          "expected a list of origins like \"https://app.example\" "
                          "(scheme://host[:port], no path, no \"*\"), got " +
                              caf::to_string(o));
        out.edge.cors_origins.push_back(*origin);
      }
    }
    edr.amount("read-limit", out.edge.read_limit);
    edr.amount("write-limit", out.edge.write_limit);
    edr.amount("user-read-limit", out.edge.user_read_limit);
    edr.amount("user-write-limit", out.edge.user_write_limit);
    edr.duration("limit-window", out.edge.limit_window);
    edr.duration("client-timeout", out.edge.client_timeout);
    edr.duration("ws-idle-timeout", out.edge.ws_idle_timeout);
    edr.amount("ws-max-queued-bytes", out.edge.ws_max_queued_bytes);
    edr.duration("ws-session-check", out.edge.ws_session_check);
    edr.amount("io-threads", out.edge.io_threads);
    if (!edr.finish()) return false;
    if (out.edge.io_threads > 64)
      return edr.fail("io-threads", "must be 0..64 (0: the host's cores over its edge nodes)");
    if (out.edge.client_timeout < std::chrono::milliseconds{200} ||
        out.edge.client_timeout > std::chrono::minutes{10})
      return edr.fail("client-timeout", "must be 200ms..10min");
    if (out.edge.ws_idle_timeout < std::chrono::milliseconds{200} ||
        out.edge.ws_idle_timeout > std::chrono::hours{1})
      return edr.fail("ws-idle-timeout", "must be 200ms..1h");
    if (out.edge.ws_session_check < std::chrono::milliseconds{200} ||
        out.edge.ws_session_check > std::chrono::hours{1})
      return edr.fail("ws-session-check", "must be 200ms..1h");
    if (out.edge.ws_max_queued_bytes < 4096 || out.edge.ws_max_queued_bytes > (1u << 30))
      return edr.fail("ws-max-queued-bytes", "must be 4096..1073741824");
    if (out.edge.limit_window < std::chrono::seconds{1} ||
        out.edge.limit_window > std::chrono::hours{1})
      return edr.fail("limit-window", "must be 1s..1h");
    for (auto [key, value] : {std::pair{"read-limit", out.edge.read_limit},
                              std::pair{"write-limit", out.edge.write_limit},
                              std::pair{"user-read-limit", out.edge.user_read_limit},
                              std::pair{"user-write-limit", out.edge.user_write_limit}})
      if (value > 1000000) return edr.fail(key, "must be 0..1000000 (0: no limit)");
  }
  if (!error.empty()) return false;

  auto* storage = r.dict("storage", true);
  if (storage == nullptr) return false;
  section_reader sr{*storage, "chorus.storage", error};
  sr.port("postgres-port", out.storage.postgres_port, false);
  sr.port("redis-port", out.storage.redis_port, false);
  for (const auto& domain : storage_domains()) {
    std::string dsn;
    if (!sr.string(domain + "-dsn", dsn, true)) return false;
    if (dsn.empty()) return sr.fail(domain + "-dsn", "must not be empty");
    out.storage.dsns[domain] = dsn;
  }
  sr.count("journal-connections", out.storage.journal_connections);
  sr.short_duration("journal-linger", out.storage.journal_linger, std::chrono::milliseconds{10});
  sr.count("snapshot-every", out.storage.snapshot_every);
  sr.count("relay-batch", out.storage.relay_batch);
  sr.duration("relay-poll", out.storage.relay_poll);
  sr.string("blob-store", out.storage.blob_store, false);
  sr.string("blob-dir", out.storage.blob_dir, false);
  sr.string("s3-endpoint", out.storage.s3_endpoint, false);
  sr.string("s3-region", out.storage.s3_region, false);
  sr.string("s3-bucket", out.storage.s3_bucket, false);
  sr.string("s3-prefix", out.storage.s3_prefix, false);
  if (!sr.string("redis-url", out.storage.redis_url, true) || !sr.finish()) return false;
  if (out.storage.blob_store != "fs" && out.storage.blob_store != "s3")
    return sr.fail("blob-store", "must be \"fs\" or \"s3\"");
  if (out.storage.blob_store == "s3" &&
      (out.storage.s3_endpoint.empty() || out.storage.s3_bucket.empty()))
    return sr.fail("blob-store", "\"s3\" needs s3-endpoint and s3-bucket");
  {
    namespace fs = std::filesystem;
    auto dir = out.storage.blob_dir.empty() ? fs::path{"blobs"} : fs::path{out.storage.blob_dir};
    out.storage.blob_dir = (fs::path{out.data_dir} / dir).lexically_normal().string();
  }
  if (out.storage.journal_connections == 0 || out.storage.journal_connections > 64)
    return sr.fail("journal-connections", "must be 1..64");
  if (out.storage.relay_batch > 10000) return sr.fail("relay-batch", "must be 1..10000");
  if (out.storage.redis_url.rfind("redis://", 0) != 0)
    return sr.fail("redis-url", "must start with redis://");

  auto* nodes = r.list("nodes", true);
  if (nodes == nullptr) return false;
  if (nodes->empty()) return r.fail("nodes", "must list at least one node");
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < nodes->size(); ++i) {
    auto prefix = "chorus.nodes[" + std::to_string(i) + "]";
    auto* entry = caf::get_if<caf::settings>(&(*nodes)[i]);
    if (entry == nullptr) {
      error = prefix + ": expected a map {name=..., host=..., ...}";
      return false;
    }
    node_spec node;
    if (!read_node(*entry, prefix, node, error)) return false;
    auto [it, added] = seen.emplace(node.name.str(), i);
    if (!added) {
      error = prefix + ".name: duplicate node name \"" + node.name.str() +
              "\" (also chorus.nodes[" + std::to_string(it->second) + "])";
      return false;
    }
    out.nodes.push_back(std::move(node));
  }
  return r.finish() && check_port_collisions(out, error);
}

caf::error config_error(const std::string& path, const std::string& what) {
  return make_detailed_error(config_errc::invalid, config_category, path + ": " + what);
}

}  // namespace

bool node_spec::has_role(const std::string& role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

const node_spec* cluster_config::find(const node_name& name) const {
  auto i = std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n.name == name; });
  return i == nodes.end() ? nullptr : &*i;
}

const std::vector<std::string>& storage_domains() {
  static const std::vector<std::string> domains{"user", "audio", "social", "commerce", "analytics"};
  return domains;
}

size_t edge_io_threads(const cluster_config& cfg, const node_spec& self, size_t cores) {
  if (cfg.edge.io_threads > 0) return cfg.edge.io_threads;
  size_t here = 0;
  for (const auto& n : cfg.nodes)
    if (n.host == self.host && n.has_role("edge")) ++here;
  return std::max<size_t>(1, cores / std::max<size_t>(1, here));
}

caf::expected<cluster_config> parse_cluster_config(const std::string& text, const std::string& path,
                                                   const caf::config_option_set& caf_options) {
  // Parse without any declared options so that every key reaches us as written.
  caf::config_option_set no_options;
  caf::settings raw;
  caf::detail::ini_consumer consumer{no_options, raw};
  caf::string_parser_state ps{text.data(), text.data() + text.size()};
  caf::detail::parser::read_ini(ps, consumer);
  if (ps.code != caf::pec::success)
    return config_error(path, "line " + std::to_string(ps.line) + ", column " +
                                  std::to_string(ps.column) + ": syntax error (" +
                                  caf::to_string(ps.code) + ")");
  cluster_config cfg;
  cfg.path = path;
  std::string error;
  const caf::settings* chorus_section = nullptr;
  for (const auto& [key, value] : raw) {
    auto* dict = caf::get_if<caf::settings>(&value);
    if (dict == nullptr) return config_error(path, key + ": keys must sit inside a [section]");
    if (key == "chorus")
      chorus_section = dict;
    else if (!check_caf_section(caf_options, key, *dict, error))
      return config_error(path, error);
  }
  if (chorus_section == nullptr) return config_error(path, "chorus: missing section [chorus]");
  if (!read_chorus(*chorus_section, path, cfg, error)) return config_error(path, error);
  return cfg;
}

caf::expected<cluster_config> load_cluster_config(const std::string& path,
                                                  const caf::config_option_set& caf_options) {
  std::ifstream in{path};
  if (!in) return config_error(path, "cannot open the file");
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_cluster_config(buf.str(), path, caf_options);
}

}  // namespace chorus
