#include "persistence/redis_streams.hpp"

#include <algorithm>

#include "persistence/errc.hpp"
#include "persistence/redis_client.hpp"

namespace chorus::persistence {

namespace {

caf::error unexpected(const char* command, const redis_reply& r) {
  return make_error(errc::storage_error, std::string{"redis "} + command + ": unexpected " +
                                             to_string(r.type) + " reply");
}

// [id, [field, value, ...]] or [id, nil] for a pending entry trimmed since.
caf::error parse_entry(const redis_reply& r, stream_entry& out) {
  if (!r.is_array() || r.elements.size() != 2 || !r.elements[0].is_string())
    return unexpected("XREADGROUP entry", r);
  out.id = r.elements[0].str;
  const auto& kv = r.elements[1];
  if (kv.is_nil()) return {};
  if (!kv.is_array() || kv.elements.size() % 2 != 0) return unexpected("XREADGROUP fields", kv);
  out.fields.reserve(kv.elements.size() / 2);
  for (size_t i = 0; i < kv.elements.size(); i += 2)
    out.fields.emplace_back(kv.elements[i].str, kv.elements[i + 1].str);
  return {};
}

}  // namespace

caf::expected<std::string> xadd(redis_client& redis, const std::string& stream,
                                const stream_fields& fields, size_t maxlen_approx) {
  if (fields.empty())
    return make_error(errc::storage_error, "redis XADD " + stream + ": an entry needs a field");
  std::vector<std::string> argv{"XADD", stream};
  if (maxlen_approx > 0) {
    argv.emplace_back("MAXLEN");
    argv.emplace_back("~");
    argv.push_back(std::to_string(maxlen_approx));
  }
  argv.emplace_back("*");
  for (const auto& [f, v] : fields) {
    argv.push_back(f);
    argv.push_back(v);
  }
  auto r = redis.call(argv);
  if (!r) return std::move(r.error());
  if (!r->is_string()) return unexpected("XADD", *r);
  return std::move(r->str);
}

namespace {

// ARGV: maxlen ("0": no trimming), then per entry its number of field/value pairs and the pairs.
const redis_script xadd_many_script{R"lua(
local maxlen = ARGV[1]
local i = 2
local added = 0
while i <= #ARGV do
  local pairs_n = tonumber(ARGV[i])
  local args = {'XADD', KEYS[1]}
  if maxlen ~= '0' then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = maxlen
  end
  args[#args + 1] = '*'
  for j = i + 1, i + 2 * pairs_n do args[#args + 1] = ARGV[j] end
  redis.call(unpack(args))
  added = added + 1
  i = i + 1 + 2 * pairs_n
end
return added
)lua"};

}  // namespace

caf::expected<size_t> xadd_many(redis_client& redis, const std::string& stream,
                                const std::vector<stream_fields>& entries, size_t maxlen_approx) {
  if (entries.empty()) return size_t{0};
  std::vector<std::string> args{std::to_string(maxlen_approx)};
  for (const auto& fields : entries) {
    if (fields.empty())
      return make_error(errc::storage_error, "redis XADD " + stream + ": an entry needs a field");
    args.push_back(std::to_string(fields.size()));
    for (const auto& [f, v] : fields) {
      args.push_back(f);
      args.push_back(v);
    }
  }
  auto r = redis.eval_script(xadd_many_script, {stream}, args);
  if (!r) return std::move(r.error());
  if (!r->is_integer() || r->integer != static_cast<int64_t>(entries.size()))
    return unexpected("XADD (script)", *r);
  return entries.size();
}

caf::error xgroup_create(redis_client& redis, const std::string& stream, const std::string& group,
                         const std::string& from_id, bool mkstream) {
  std::vector<std::string> argv{"XGROUP", "CREATE", stream, group, from_id};
  if (mkstream) argv.emplace_back("MKSTREAM");
  auto r = redis.command(argv);
  if (!r) return std::move(r.error());
  if (r->is_error()) {
    if (r->str.rfind("BUSYGROUP", 0) == 0) return {};
    return error_of(*r, "XGROUP CREATE");
  }
  return {};
}

caf::expected<std::vector<stream_entry>> xreadgroup(redis_client& redis, const std::string& group,
                                                    const std::string& consumer,
                                                    const std::string& stream, size_t count,
                                                    std::chrono::milliseconds block,
                                                    const std::string& id) {
  std::vector<std::string> argv{"XREADGROUP", "GROUP", group,
                                consumer,     "COUNT", std::to_string(std::max<size_t>(count, 1))};
  auto blocking = block.count() > 0;
  if (blocking) {
    argv.emplace_back("BLOCK");
    argv.push_back(std::to_string(block.count()));
  }
  argv.emplace_back("STREAMS");
  argv.push_back(stream);
  argv.push_back(id);
  // Redis answers a BLOCK at its end at the latest: wait that long plus the usual deadline.
  auto r =
      blocking ? redis.command(argv, block + redis.config().command_timeout) : redis.command(argv);
  if (!r) return std::move(r.error());
  if (r->is_error()) return error_of(*r, "XREADGROUP");
  std::vector<stream_entry> out;
  if (r->is_nil()) return out;  // BLOCK timed out
  // [[stream, [entry, ...]]]: one stream was asked for.
  if (!r->is_array()) return unexpected("XREADGROUP", *r);
  for (const auto& s : r->elements) {
    if (!s.is_array() || s.elements.size() != 2 || !s.elements[1].is_array())
      return unexpected("XREADGROUP stream", s);
    out.reserve(out.size() + s.elements[1].elements.size());
    for (const auto& e : s.elements[1].elements) {
      stream_entry entry;
      if (auto err = parse_entry(e, entry)) return err;
      out.push_back(std::move(entry));
    }
  }
  return out;
}

caf::expected<int64_t> xack(redis_client& redis, const std::string& stream,
                            const std::string& group, const std::vector<std::string>& ids) {
  if (ids.empty()) return int64_t{0};
  std::vector<std::string> argv{"XACK", stream, group};
  argv.insert(argv.end(), ids.begin(), ids.end());
  auto r = redis.call(argv);
  if (!r) return std::move(r.error());
  if (!r->is_integer()) return unexpected("XACK", *r);
  return r->integer;
}

}  // namespace chorus::persistence
