#include "persistence/blob_store_s3.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include <httplib.h>
#include <sys/stat.h>

#include "persistence/errc.hpp"
#include "persistence/s3_sigv4.hpp"
#include "persistence/sha256.hpp"
#include "persistence/unique_fd.hpp"

namespace chorus::persistence {

namespace {

constexpr uint64_t min_part_size = 5ull << 20;
constexpr uint64_t max_part_size = 5ull << 30;
constexpr uint64_t max_parts = 10000;
// Idle keep-alive connections kept for reuse; more may be open while busy.
constexpr size_t max_idle_connections = 8;

caf::error file_error(const std::string& what, const std::string& path, int err) {
  return make_error(errc::blob_error, what + " " + path + ": " +
                                          std::error_code{err, std::generic_category()}.message());
}

// Reads exactly `n` bytes at `offset`; a short file is an error.
caf::error read_at(int fd, char* out, size_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    auto got = ::pread(fd, out, n, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return file_error("cannot read", path, errno);
    }
    if (got == 0) return make_error(errc::blob_error, path + " shrank while it was uploaded");
    out += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return {};
}

// The text of the first <tag> element; S3's answers are small and flat enough for this.
std::string xml_value(std::string_view xml, std::string_view tag) {
  auto open = "<" + std::string{tag} + ">";
  auto begin = xml.find(open);
  if (begin == std::string_view::npos) return {};
  begin += open.size();
  auto end = xml.find("</" + std::string{tag} + ">", begin);
  if (end == std::string_view::npos) return {};
  return std::string{xml.substr(begin, end - begin)};
}

struct endpoint {
  std::string scheme;
  std::string host;  // as written, brackets kept for IPv6
  int port = 0;
};

std::optional<endpoint> parse_endpoint(std::string_view s) {
  endpoint out;
  if (s.rfind("http://", 0) == 0) {
    out.scheme = "http";
    out.port = 80;
  } else if (s.rfind("https://", 0) == 0) {
    out.scheme = "https";
    out.port = 443;
  } else {
    return std::nullopt;
  }
  s.remove_prefix(out.scheme.size() + 3);
  if (!s.empty() && s.back() == '/') s.remove_suffix(1);
  if (s.empty() || s.find('/') != std::string_view::npos) return std::nullopt;
  auto colon = s.rfind(':');
  if (colon != std::string_view::npos && s.find(']', colon) == std::string_view::npos) {
    auto digits = s.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out.port);
    if (ec != std::errc{} || ptr != digits.data() + digits.size() || out.port <= 0 ||
        out.port > 65535)
      return std::nullopt;
    s = s.substr(0, colon);
  }
  if (s.empty()) return std::nullopt;
  out.host = std::string{s};
  return out;
}

bool valid_bucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  return std::all_of(b.begin(), b.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

struct reply {
  int status = 0;
  httplib::Headers headers;
  std::string body;
};

// httplib is third-party code: whatever it throws stops here.
template <class F>
auto guarded(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return make_error(errc::blob_error, std::string{"S3 client failed: "} + e.what());
  }
}

}  // namespace

struct blob_store_s3::impl {
  blob_store_s3_config config;
  std::string base_url;     // what httplib connects to
  std::string host_header;  // what is sent and signed
  sigv4::credentials creds;
  std::mutex mutex;
  std::vector<std::unique_ptr<httplib::Client>> idle;  // guarded by mutex

  struct lease {
    std::unique_ptr<httplib::Client> client;
    bool reused = false;  // from the pool, so possibly closed by the server while idle
  };

  lease acquire() {
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (!idle.empty()) {
        auto client = std::move(idle.back());
        idle.pop_back();
        return {std::move(client), true};
      }
    }
    auto client = std::make_unique<httplib::Client>(base_url);
    client->set_tcp_nodelay(true);
    client->set_keep_alive(true);
    client->set_url_encode(false);  // paths and queries are encoded once, as signed
    client->set_decompress(false);  // a Range must count the stored bytes
    client->set_connection_timeout(config.connect_timeout);
    client->set_read_timeout(config.io_timeout);
    client->set_write_timeout(config.io_timeout);
    return {std::move(client), false};
  }

  void release(std::unique_ptr<httplib::Client> client) {
    std::lock_guard<std::mutex> guard{mutex};
    if (idle.size() < max_idle_connections) idle.push_back(std::move(client));
  }

  // After a pooled connection failed: the others have idled as long, so start afresh.
  void drop_idle() {
    std::lock_guard<std::mutex> guard{mutex};
    idle.clear();
  }

  [[nodiscard]] std::string path_of(const std::string& key) const {
    return "/" + sigv4::uri_encode(config.bucket, true) + "/" + sigv4::uri_encode(key, false);
  }

  static std::string target(const std::string& path, const sigv4::param_list& query) {
    return query.empty() ? path : path + "?" + sigv4::canonical_query(query);
  }

  httplib::Headers sign(const std::string& method, const std::string& path,
                        const sigv4::param_list& query, sigv4::param_list headers,
                        std::string_view payload_hash) const {
    auto date = sigv4::amz_date(std::chrono::system_clock::now());
    headers.emplace_back("Host", host_header);
    headers.emplace_back("x-amz-date", date);
    headers.emplace_back("x-amz-content-sha256", std::string{payload_hash});
    sigv4::request r{method, path, query, headers, std::string{payload_hash}};
    httplib::Headers out;
    for (auto& [name, value] : headers) out.emplace(name, value);
    out.emplace("Authorization", sigv4::authorization(creds, date, config.region, "s3", r));
    return out;
  }

  [[nodiscard]] caf::error unreachable(const std::string& what, httplib::Error err) const {
    return make_error(errc::blob_unavailable, "S3 at " + config.endpoint + " did not answer " +
                                                  what + ": " + httplib::to_string(err));
  }

  // An answer that is not a success, as an error value that says what S3 said.
  [[nodiscard]] caf::error refused(const std::string& what, int status,
                                   const std::string& body) const {
    auto code = xml_value(body, "Code");
    auto message = xml_value(body, "Message");
    auto detail = "S3 refused " + what + ": HTTP " + std::to_string(status);
    if (!code.empty()) detail += " " + code;
    if (!message.empty()) detail += ": " + message;
    auto kind = errc::blob_error;
    if (status == 404 && code != "NoSuchBucket" && code != "NoSuchUpload")
      kind = errc::blob_not_found;
    else if (status == 416)
      kind = errc::blob_bad_range;
    else if (status >= 500 || status == 429 || code == "SlowDown" || code == "RequestTimeout")
      kind = errc::blob_unavailable;
    if (status == 403 || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch")
      detail += " (check the access key, the secret key and the bucket's permissions)";
    if (code == "NoSuchBucket") detail += " (bucket \"" + config.bucket + "\" does not exist)";
    return make_error(kind, std::move(detail));
  }

  // Sends one request on a pooled connection; `issue` makes the httplib call. A server closes
  // idle keep-alive connections (s3rver after 5 s), and a request on such a connection fails
  // before the server sees it: that case is tried once more on a new connection.
  template <class Issue>
  caf::expected<reply> call(const std::string& what, Issue issue) {
    for (int attempt = 0;; ++attempt) {
      auto [client, reused] = acquire();
      httplib::Result res = issue(*client);
      if (res) {
        reply out{res->status, std::move(res->headers), std::move(res->body)};
        release(std::move(client));
        return out;
      }
      // The failed connection is dropped with `client`.
      if (!reused || attempt > 0 || res.error() == httplib::Error::Canceled)
        return unreachable(what, res.error());
      drop_idle();
    }
  }

  // The object's size, or nothing when there is no such object.
  caf::expected<std::optional<uint64_t>> head(const std::string& key) {
    auto path = path_of(key);
    auto what = "HEAD " + path;
    auto headers = sign("HEAD", path, {}, {}, sigv4::empty_payload_hash);
    auto r = call(what, [&](httplib::Client& c) { return c.Head(path, headers); });
    if (!r) return r.error();
    if (r->status == 404) return std::optional<uint64_t>{};
    if (r->status != 200) return refused(what, r->status, r->body);
    auto it = r->headers.find("Content-Length");
    uint64_t size = 0;
    if (it == r->headers.end()) return make_error(errc::blob_error, what + ": no Content-Length");
    const auto& v = it->second;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), size);
    if (ec != std::errc{} || ptr != v.data() + v.size())
      return make_error(errc::blob_error, what + ": bad Content-Length \"" + v + "\"");
    return std::optional<uint64_t>{size};
  }

  caf::error put_single(const std::string& key, int fd, const std::string& file, uint64_t size,
                        const std::string& sha256) {
    auto path = path_of(key);
    auto what = "PUT " + path;
    auto headers = sign("PUT", path, {}, {}, sha256);
    std::vector<char> buffer(std::min<uint64_t>(blob_chunk_size, std::max<uint64_t>(size, 1)));
    caf::error read_error;
    // Streamed from the file: the body is never in memory as a whole.
    auto provider = [&](size_t offset, size_t length, httplib::DataSink& sink) {
      auto n = std::min(length, buffer.size());
      if (auto err = read_at(fd, buffer.data(), n, offset, file)) {
        read_error = std::move(err);
        return false;
      }
      return sink.write(buffer.data(), n);
    };
    auto r = call(what, [&](httplib::Client& c) {
      if (size == 0) return c.Put(path, headers, std::string{}, "application/octet-stream");
      return c.Put(path, headers, static_cast<size_t>(size), provider, "application/octet-stream");
    });
    if (read_error) return read_error;
    if (!r) return r.error();
    if (r->status != 200) return refused(what, r->status, r->body);
    return {};
  }

  caf::error put_multipart(const std::string& key, int fd, const std::string& file, uint64_t size) {
    auto path = path_of(key);
    sigv4::param_list create_query{{"uploads", ""}};
    auto what = "POST " + path + "?uploads";
    auto r = call(what, [&, headers = sign("POST", path, create_query, {},
                                           sigv4::empty_payload_hash)](httplib::Client& c) {
      return c.Post(target(path, create_query), headers, std::string{}, std::string{});
    });
    if (!r) return r.error();
    if (r->status != 200) return refused(what, r->status, r->body);
    auto upload_id = xml_value(r->body, "UploadId");
    if (upload_id.empty())
      return make_error(errc::blob_error, what + ": no UploadId in the answer");
    auto err = upload_parts(path, upload_id, fd, file, size);
    if (err) abort_upload(path, upload_id, err);
    return err;
  }

  caf::error upload_parts(const std::string& path, const std::string& upload_id, int fd,
                          const std::string& file, uint64_t size) {
    auto part_size = std::max(config.part_size, (size + max_parts - 1) / max_parts);
    std::string part;
    std::string complete = "<CompleteMultipartUpload>";
    uint64_t number = 1;
    for (uint64_t offset = 0; offset < size; offset += part_size, ++number) {
      // One part in memory at a time: its hash must be known before it is sent.
      part.resize(static_cast<size_t>(std::min(part_size, size - offset)));
      if (auto err = read_at(fd, part.data(), part.size(), offset, file)) return err;
      sigv4::param_list query{{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
      auto what = "PUT " + path + " part " + std::to_string(number);
      auto headers = sign("PUT", path, query, {}, sha256_hex(part));
      auto r = call(what, [&](httplib::Client& c) {
        return c.Put(target(path, query), headers, part, "application/octet-stream");
      });
      if (!r) return r.error();
      if (r->status != 200) return refused(what, r->status, r->body);
      auto etag = r->headers.find("ETag");
      if (etag == r->headers.end()) return make_error(errc::blob_error, what + ": no ETag");
      complete += "<Part><PartNumber>" + std::to_string(number) + "</PartNumber><ETag>" +
                  etag->second + "</ETag></Part>";
    }
    complete += "</CompleteMultipartUpload>";
    sigv4::param_list query{{"uploadId", upload_id}};
    auto what = "POST " + path + "?uploadId (complete)";
    auto headers = sign("POST", path, query, {}, sha256_hex(complete));
    auto r = call(what, [&](httplib::Client& c) {
      return c.Post(target(path, query), headers, complete, "application/xml");
    });
    if (!r) return r.error();
    // S3 may answer 200 and still fail, with an <Error> body.
    if (r->status != 200 || r->body.find("<Error>") != std::string::npos)
      return refused(what, r->status, r->body);
    return {};
  }

  // Best effort: parts of an aborted upload cost storage until a lifecycle rule removes them.
  void abort_upload(const std::string& path, const std::string& upload_id, caf::error& err) {
    sigv4::param_list query{{"uploadId", upload_id}};
    auto what = "DELETE " + path + "?uploadId (abort)";
    auto headers = sign("DELETE", path, query, {}, sigv4::empty_payload_hash);
    auto r = call(what, [&](httplib::Client& c) { return c.Delete(target(path, query), headers); });
    std::string note;
    if (!r)
      note = error_detail(r.error());
    else if (r->status != 204 && r->status != 200)
      note = "HTTP " + std::to_string(r->status);
    if (!note.empty())
      err = make_error(static_cast<errc>(err.code()), error_detail(err) +
                                                          "; aborting the upload "
                                                          "failed too: " +
                                                          note);
  }
};

blob_store_s3::blob_store_s3(std::unique_ptr<impl> impl) : impl_(std::move(impl)) {}

blob_store_s3::~blob_store_s3() = default;

caf::expected<std::unique_ptr<blob_store_s3>> blob_store_s3::open(blob_store_s3_config config) {
  auto ep = parse_endpoint(config.endpoint);
  if (!ep)
    return make_error(errc::bad_address, "blob store endpoint \"" + config.endpoint +
                                             "\" is not http(s)://host[:port]");
  if (!valid_bucket(config.bucket))
    return make_error(errc::blob_error,
                      "blob store bucket \"" + config.bucket + "\" is not a valid S3 bucket name");
  if (config.region.empty()) return make_error(errc::blob_error, "blob store region is empty");
  if (config.access_key.empty() || config.secret_key.empty())
    return make_error(errc::blob_error, "blob store access key or secret key is empty");
  if (config.part_size < min_part_size || config.part_size > max_part_size)
    return make_error(errc::blob_error, "blob store part size " + std::to_string(config.part_size) +
                                            " is outside S3's 5 MiB..5 GiB");
  auto state = std::make_unique<impl>();
  bool default_port = ep->port == (ep->scheme == "https" ? 443 : 80);
  state->host_header = default_port ? ep->host : ep->host + ":" + std::to_string(ep->port);
  state->base_url = ep->scheme + "://" + ep->host + ":" + std::to_string(ep->port);
  state->creds = {config.access_key, config.secret_key};
  state->config = std::move(config);
  return std::unique_ptr<blob_store_s3>{new blob_store_s3{std::move(state)}};
}

std::string blob_store_s3::key_of(const blob_id& id) const {
  return impl_->config.key_prefix + id.hex();
}

caf::expected<blob_ref> blob_store_s3::put_file(const std::string& path) {
  return guarded([&]() -> caf::expected<blob_ref> {
    unique_fd fd{open_file(path, O_RDONLY)};
    if (!fd) return file_error("cannot open", path, errno);
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    // First pass: the name, which is the object key and the signed payload hash of a single PUT.
    sha256_stream hash;
    std::vector<char> buffer(blob_chunk_size);
    uint64_t size = 0;
    for (;;) {
      auto n = ::pread(fd.get(), buffer.data(), buffer.size(), static_cast<off_t>(size));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return file_error("cannot read", path, errno);
      if (n == 0) break;
      hash.update({buffer.data(), static_cast<size_t>(n)});
      size += static_cast<uint64_t>(n);
    }
    auto id = blob_id::parse(hash.hex_digest());
    if (!id) return make_error(errc::blob_error, "SHA-256 failed (OpenSSL)");
    blob_ref ref{*id, size};
    auto key = key_of(*id);
    auto stored = impl_->head(key);
    if (!stored) return stored.error();
    if (*stored == size) return ref;  // same name and size: already there
    auto err = size > impl_->config.multipart_threshold
                   ? impl_->put_multipart(key, fd.get(), path, size)
                   : impl_->put_single(key, fd.get(), path, size, id->hex());
    if (err) return err;
    return ref;
  });
}

caf::expected<blob_ref> blob_store_s3::put(const blob_source& source) {
  return guarded([&]() -> caf::expected<blob_ref> {
    // The object's name is known only at the end, and a multipart upload needs each part's hash
    // before it is sent: spool to a file, then upload that.
    std::string dir = impl_->config.spool_dir;
    if (dir.empty()) {
      std::error_code ec;
      dir = std::filesystem::temp_directory_path(ec).string();
      if (ec) return make_error(errc::blob_error, "no temp directory to spool to: " + ec.message());
    }
    auto spool = dir + "/chorus-blob-XXXXXX";
    unique_fd fd{::mkostemp(spool.data(), O_CLOEXEC)};
    if (!fd) return file_error("cannot create a spool file in", dir, errno);
    struct remover {
      const std::string& path;
      ~remover() { ::unlink(path.c_str()); }
    } remove_spool{spool};
    std::vector<char> buffer(blob_chunk_size);
    for (;;) {
      auto n = source(buffer.data(), buffer.size());
      if (!n) return n.error();
      if (*n == 0) break;
      if (*n > buffer.size())
        return make_error(errc::blob_error, "a blob source gave more bytes than it was asked for");
      for (size_t done = 0; done < *n;) {
        auto w = ::write(fd.get(), buffer.data() + done, *n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return file_error("cannot write", spool, errno);
        done += static_cast<size_t>(w);
      }
    }
    return put_file(spool);
  });
}

caf::expected<bool> blob_store_s3::exists(const blob_id& id) {
  return guarded([&]() -> caf::expected<bool> {
    auto stored = impl_->head(key_of(id));
    if (!stored) return stored.error();
    return stored->has_value();
  });
}

caf::expected<uint64_t> blob_store_s3::size(const blob_id& id) {
  return guarded([&]() -> caf::expected<uint64_t> {
    auto stored = impl_->head(key_of(id));
    if (!stored) return stored.error();
    if (!*stored)
      return make_error(errc::blob_not_found,
                        "blob " + id.hex() + " is not in bucket " + impl_->config.bucket);
    return **stored;
  });
}

caf::expected<uint64_t> blob_store_s3::read(const blob_id& id, uint64_t offset, uint64_t length,
                                            const blob_sink& sink) {
  return guarded([&]() -> caf::expected<uint64_t> {
    auto bad_range = [&](uint64_t size) {
      return make_error(errc::blob_bad_range, "offset " + std::to_string(offset) +
                                                  " is past the end of blob " + id.hex() + " (" +
                                                  std::to_string(size) + " bytes)");
    };
    auto check_empty_read = [&]() -> caf::expected<uint64_t> {
      auto stored = size(id);
      if (!stored) return stored.error();
      if (offset > *stored) return bad_range(*stored);
      return uint64_t{0};
    };
    if (length == 0) return check_empty_read();
    auto path = impl_->path_of(key_of(id));
    auto what = "GET " + path;
    sigv4::param_list extra;
    bool ranged = offset != 0 || length != blob_to_end;
    if (ranged) {
      auto last =
          length > UINT64_MAX - offset ? std::string{} : std::to_string(offset + length - 1);
      extra.emplace_back("Range", "bytes=" + std::to_string(offset) + "-" + last);
    }
    auto headers = impl_->sign("GET", path, {}, std::move(extra), sigv4::empty_payload_hash);
    int status = 0;
    std::string error_body;
    uint64_t skip = 0;  // when a server ignores the Range and sends it all
    bool skip_mode = false;
    uint64_t remaining = length;
    uint64_t delivered = 0;
    bool stopped = false;
    auto on_response = [&](const httplib::Response& r) {
      status = r.status;
      skip_mode = status == 200 && ranged;
      if (skip_mode) skip = offset;
      return true;
    };
    auto on_body = [&](const char* data, size_t n) {
      if (status != 200 && status != 206) {
        if (error_body.size() < 65536) error_body.append(data, n);
        return true;
      }
      std::string_view chunk{data, n};
      auto k = static_cast<size_t>(std::min<uint64_t>(skip, chunk.size()));
      chunk.remove_prefix(k);
      skip -= k;
      if (chunk.size() > remaining) chunk = chunk.substr(0, static_cast<size_t>(remaining));
      if (chunk.empty()) return true;
      remaining -= chunk.size();
      delivered += chunk.size();
      // Stop when the sink has had enough, or when a server that ignored the Range has sent
      // what was asked; a 206 simply ends, keeping the connection for reuse.
      if (!sink(chunk) || (remaining == 0 && skip_mode)) {
        stopped = true;
        return false;
      }
      return true;
    };
    for (int attempt = 0;; ++attempt) {
      auto [client, reused] = impl_->acquire();
      auto res = client->Get(path, headers, on_response, on_body);
      if (res) {
        impl_->release(std::move(client));
        break;
      }
      // Stopped on purpose (the sink had enough); the connection is dropped, not reused.
      if (stopped && res.error() == httplib::Error::Canceled) return delivered;
      // A pooled connection the server had closed: nothing was answered yet, so once more.
      if (reused && attempt == 0 && status == 0) {
        impl_->drop_idle();
        continue;
      }
      return impl_->unreachable(what, res.error());
    }
    if (status == 200 || status == 206) return delivered;
    if (status == 416) {
      // S3 has no empty range: a read at the very end asks for one.
      return check_empty_read();
    }
    return impl_->refused(what, status, error_body);
  });
}

caf::error blob_store_s3::remove(const blob_id& id) {
  return guarded([&]() -> caf::error {
    auto path = impl_->path_of(key_of(id));
    auto what = "DELETE " + path;
    auto headers = impl_->sign("DELETE", path, {}, {}, sigv4::empty_payload_hash);
    auto r = impl_->call(what, [&](httplib::Client& c) { return c.Delete(path, headers); });
    if (!r) return r.error();
    if (r->status == 204 || r->status == 200 || r->status == 404) return {};
    return impl_->refused(what, r->status, r->body);
  });
}

}  // namespace chorus::persistence
