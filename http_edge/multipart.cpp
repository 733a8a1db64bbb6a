#include "http_edge/multipart.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/sec.hpp>

#include "messages/errors.hpp"

namespace chorus::edge {

namespace {

using params_map = std::map<std::string, std::string>;

caf::error invalid(std::string detail) {
  return make_error(domain_errc::validation, "multipart body: " + std::move(detail));
}

caf::error io_failure(const char* what, const std::string& path, int err) {
  return caf::make_error(caf::sec::runtime_error,
                         std::string{what} + " " + path + ": " + std::strerror(err));
}

/// A name from the body as an error detail shows it: quoted, and cut so a hostile name cannot
/// make the answer large.
std::string shown(std::string_view s) {
  constexpr size_t most = 64;
  if (s.size() <= most) return "\"" + std::string{s} + "\"";
  return "\"" + std::string{s.substr(0, most)} + "...\"";
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out{s};
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// `type; key=value; key="quoted \"value\""` (RFC 9110 §5.6.6, as Content-Type and
/// Content-Disposition use it). Type and keys are lower-cased; of a repeated key the first
/// counts. A backslash escapes only `"` and `\`, so a Windows path sent raw keeps its
/// backslashes. False for an unterminated quoted string or bytes after one.
bool parse_parameters(std::string_view v, std::string& type, params_map& params) {
  auto semi = v.find(';');
  type = lower(trim(v.substr(0, semi)));
  v = semi == std::string_view::npos ? std::string_view{} : v.substr(semi + 1);
  while (!v.empty()) {
    auto end_key = v.find_first_of("=;");
    auto key = lower(trim(v.substr(0, end_key)));
    if (end_key == std::string_view::npos || v[end_key] == ';') {  // no value: ignored
      v = end_key == std::string_view::npos ? std::string_view{} : v.substr(end_key + 1);
      continue;
    }
    v = trim(v.substr(end_key + 1));
    std::string value;
    if (!v.empty() && v.front() == '"') {
      size_t i = 1;
      bool closed = false;
      for (; i < v.size(); ++i) {
        char c = v[i];
        if (c == '\\' && i + 1 < v.size() && (v[i + 1] == '"' || v[i + 1] == '\\')) {
          value.push_back(v[++i]);
        } else if (c == '"') {
          closed = true;
          ++i;
          break;
        } else {
          value.push_back(c);
        }
      }
      if (!closed) return false;
      v = v.substr(i);
      auto next = v.find(';');
      if (!trim(v.substr(0, next)).empty()) return false;
      v = next == std::string_view::npos ? std::string_view{} : v.substr(next + 1);
    } else {
      auto next = v.find(';');
      value = trim(v.substr(0, next));
      v = next == std::string_view::npos ? std::string_view{} : v.substr(next + 1);
    }
    if (!key.empty()) params.emplace(std::move(key), std::move(value));
  }
  return true;
}

/// RFC 2046 §5.1.1: 1..70 of bchars, not ending in a space.
caf::error check_boundary(std::string_view b) {
  if (b.empty()) return invalid("the Content-Type's boundary is empty");
  if (b.size() > 70)
    return invalid("the boundary is " + std::to_string(b.size()) +
                   " characters long, RFC 2046 allows at most 70");
  for (char c : b) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              std::string_view{"'()+_,-./:=? "}.find(c) != std::string_view::npos;
    if (!ok) return invalid("the boundary has a character RFC 2046 does not allow");
  }
  if (b.back() == ' ') return invalid("the boundary ends in a space");
  return {};
}

/// Owns a file descriptor.
class fd_guard {
 public:
  explicit fd_guard(int fd = -1) : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  fd_guard& operator=(fd_guard&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  [[nodiscard]] int get() const { return fd_; }
  /// Closes now, so that the caller sees a failed close (a late write error).
  int close_now() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

/// The body as a window over a file: bytes are read `chunk` at a time and held only until
/// consumed. It starts with a CRLF that is not in the file, so a first delimiter at the very
/// start of the body looks like every other (RFC 2046: CRLF "--" boundary).
class body_reader {
 public:
  body_reader(int fd, size_t chunk, const std::string& path)
      : fd_(fd), chunk_(chunk == 0 ? 1 : chunk), path_(path), buf_{'\r', '\n'}, end_(2) {}

  [[nodiscard]] std::string_view buffered() const { return {buf_.data() + pos_, end_ - pos_}; }
  void consume(size_t n) { pos_ += n; }

  /// Reads up to one more chunk: false at the end of the body or when reading failed
  /// (`failure()`). What is buffered stays; its offsets in `buffered()` too.
  bool fill() {
    if (eof_ || failure_) return false;
    if (pos_ > 0) {
      std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
    }
    if (buf_.size() < end_ + chunk_) buf_.resize(end_ + chunk_);
    for (;;) {
      auto n = ::read(fd_, buf_.data() + end_, chunk_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        failure_ = io_failure("cannot read", path_, errno);
        return false;
      }
      if (n == 0) {
        eof_ = true;
        return false;
      }
      end_ += static_cast<size_t>(n);
      return true;
    }
  }

  /// Until `n` bytes are buffered; false when the body ends first.
  bool ensure(size_t n) {
    while (end_ - pos_ < n)
      if (!fill()) return false;
    return true;
  }

  [[nodiscard]] const caf::error& failure() const { return failure_; }

 private:
  int fd_;
  size_t chunk_;
  const std::string& path_;
  std::vector<char> buf_;
  size_t pos_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  caf::error failure_;
};

/// One run of parse_multipart_file.
class form_parser {
 public:
  form_parser(body_reader& in, std::string_view boundary, const std::string& file_path,
              const std::string& file_part, const multipart_limits& limits)
      : in_(in),
        delimiter_("\r\n--" + std::string{boundary}),
        file_path_(file_path),
        file_part_(file_part),
        limits_(limits) {}

  /// Whether the output file was opened (and must go when the parse fails).
  [[nodiscard]] bool opened_file() const { return opened_; }

  caf::expected<multipart_form> run() {
    auto found = skip_to_delimiter([](std::string_view) { return caf::error{}; });
    if (!found) return std::move(found.error());
    if (!*found) return invalid("no boundary line --" + delimiter_.substr(4) + " opens the body");
    for (size_t part = 1;; ++part) {
      // After a delimiter: "--" closes the body (the epilogue is not read), otherwise optional
      // whitespace ends the line and the part's headers follow.
      if (!in_.ensure(2)) return ended_early();
      if (in_.buffered().substr(0, 2) == "--") break;
      size_t budget = limits_.max_header_bytes;
      auto rest = read_line(budget, part);
      if (!rest) return std::move(rest.error());
      if (!trim(*rest).empty())
        return invalid(
            "a boundary line is followed by other bytes (the boundary occurs in the "
            "content, or the line is malformed)");
      if (auto err = read_part(budget, part)) return err;
    }
    if (opened_) {
      if (out_.close_now() != 0) return io_failure("cannot write", file_path_, errno);
    }
    return std::move(form_);
  }

 private:
  caf::error ended_early() {
    if (in_.failure()) return in_.failure();
    return invalid("the body ends before its closing boundary line (truncated)");
  }

  /// Passes the bytes up to the next delimiter to `sink` (as they arrive) and consumes the
  /// delimiter; false when the body ends first. Only the delimiter's length less one byte is
  /// held back between reads, as it may be the start of a delimiter split across them.
  template <class Sink>
  caf::expected<bool> skip_to_delimiter(Sink&& sink) {
    for (;;) {
      auto view = in_.buffered();
      auto at = view.find(delimiter_);
      if (at != std::string_view::npos) {
        if (auto err = sink(view.substr(0, at))) return err;
        in_.consume(at + delimiter_.size());
        return true;
      }
      auto keep = std::min(view.size(), delimiter_.size() - 1);
      auto safe = view.size() - keep;
      if (safe > 0) {
        if (auto err = sink(view.substr(0, safe))) return err;
        in_.consume(safe);
      }
      if (!in_.fill()) {
        if (in_.failure()) return in_.failure();
        return false;
      }
    }
  }

  /// One line of the part's header block, without its LF or CRLF (a bare LF is accepted);
  /// `budget` is what the block may still take.
  caf::expected<std::string> read_line(size_t& budget, size_t part) {
    size_t searched = 0;
    for (;;) {
      auto view = in_.buffered();
      auto lf = view.find('\n', searched);
      if (lf != std::string_view::npos && lf < budget) {
        budget -= lf + 1;
        std::string line{view.substr(0, lf)};
        if (!line.empty() && line.back() == '\r') line.pop_back();
        in_.consume(lf + 1);
        return line;
      }
      if (view.size() >= budget)
        return invalid("the headers of part " + std::to_string(part) + " are over " +
                       std::to_string(limits_.max_header_bytes) + " bytes");
      searched = view.size();
      if (!in_.fill()) return ended_early();
    }
  }

  caf::error read_part(size_t& budget, size_t part) {
    // The header block: RFC 7578 parts carry Content-Disposition and maybe Content-Type; the
    // others are ignored. A line starting with whitespace continues the one before (obs-fold).
    std::string disposition;
    std::string content_type;
    std::string ignored;
    bool has_disposition = false;
    std::string* last = nullptr;
    for (;;) {
      auto line = read_line(budget, part);
      if (!line) return std::move(line.error());
      if (line->empty()) break;
      if (is_ows(line->front())) {
        if (last == nullptr)
          return invalid("part " + std::to_string(part) + " starts with a continuation line");
        last->append(" ").append(trim(*line));
        continue;
      }
      auto colon = line->find(':');
      if (colon == std::string::npos || colon == 0)
        return invalid("part " + std::to_string(part) + " has a header line without a name");
      auto name = lower(trim(std::string_view{*line}.substr(0, colon)));
      auto value = std::string{trim(std::string_view{*line}.substr(colon + 1))};
      if (name == "content-disposition") {
        if (has_disposition)
          return invalid("part " + std::to_string(part) + " has two Content-Disposition headers");
        has_disposition = true;
        disposition = std::move(value);
        last = &disposition;
      } else if (name == "content-type") {
        content_type = std::move(value);
        last = &content_type;
      } else {
        last = &ignored;
      }
    }
    std::string type;
    params_map params;
    if (!has_disposition || !parse_parameters(disposition, type, params) || type != "form-data")
      return invalid("part " + std::to_string(part) +
                     " has no Content-Disposition: form-data header that parses");
    auto name = params.find("name");
    if (name == params.end() || name->second.empty())
      return invalid("part " + std::to_string(part) + " has no name in its Content-Disposition");
    auto filename = params.find("filename");

    if (name->second == file_part_) {
      if (form_.has_file) return invalid("a second " + shown(file_part_) + " part");
      int fd = ::open(file_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) return io_failure("cannot create", file_path_, errno);
      out_ = fd_guard{fd};
      opened_ = true;
      form_.has_file = true;
      form_.file_type = std::move(content_type);
      if (filename != params.end()) form_.file_name = filename->second;
      auto found = skip_to_delimiter([this](std::string_view bytes) { return write(bytes); });
      if (!found) return std::move(found.error());
      if (!*found) return ended_early();
      return {};
    }

    if (filename != params.end())
      return invalid("part " + shown(name->second) + " carries a file, only " + shown(file_part_) +
                     " may");
    if (form_.fields.count(name->second) > 0)
      return invalid("the field " + shown(name->second) + " appears twice");
    if (form_.fields.size() >= limits_.max_fields)
      return invalid("more than " + std::to_string(limits_.max_fields) + " fields");
    std::string value;
    auto found = skip_to_delimiter([&](std::string_view bytes) -> caf::error {
      if (value.size() + bytes.size() > limits_.max_field_bytes)
        return invalid("the field " + shown(name->second) + " is over " +
                       std::to_string(limits_.max_field_bytes) + " bytes");
      value.append(bytes);
      return {};
    });
    if (!found) return std::move(found.error());
    if (!*found) return ended_early();
    form_.fields.emplace(name->second, std::move(value));
    return {};
  }

  caf::error write(std::string_view bytes) {
    while (!bytes.empty()) {
      auto n = ::write(out_.get(), bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return io_failure("cannot write", file_path_, errno);
      bytes.remove_prefix(static_cast<size_t>(n));
      form_.file_size += static_cast<uint64_t>(n);
    }
    return {};
  }

  body_reader& in_;
  std::string delimiter_;  ///< CRLF "--" boundary
  const std::string& file_path_;
  const std::string& file_part_;
  const multipart_limits& limits_;
  fd_guard out_;
  bool opened_ = false;
  multipart_form form_;
};

}  // namespace

std::optional<std::string> multipart_boundary(std::string_view content_type) {
  std::string type;
  params_map params;
  if (!parse_parameters(content_type, type, params) || type != "multipart/form-data") return {};
  auto it = params.find("boundary");
  if (it == params.end()) return {};
  return it->second;
}

caf::expected<multipart_form> parse_multipart_file(const std::string& body_path,
                                                   std::string_view boundary,
                                                   const std::string& file_path,
                                                   const std::string& file_part,
                                                   const multipart_limits& limits) {
  if (auto err = check_boundary(boundary)) return err;
  fd_guard body{::open(body_path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (body.get() < 0) return io_failure("cannot open", body_path, errno);
  body_reader in{body.get(), limits.read_bytes, body_path};
  form_parser parser{in, boundary, file_path, file_part, limits};
  auto form = parser.run();
  if (!form && parser.opened_file()) ::unlink(file_path.c_str());
  return form;
}

}  // namespace chorus::edge
