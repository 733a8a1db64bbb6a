#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <caf/sec.hpp>

#include "http_edge/multipart.hpp"
#include "messages/errors.hpp"
#include "tests/support/process.hpp"

using namespace chorus;
using namespace chorus::edge;

namespace {

const std::string b = "b0undary";

/// One part: the boundary line, the header lines, the blank line, the content and the CRLF
/// that belongs to the next delimiter.
std::string part(std::string_view headers, std::string_view content,
                 const std::string& boundary = b) {
  return "--" + boundary + "\r\n" + std::string{headers} + "\r\n\r\n" + std::string{content} +
         "\r\n";
}

std::string field(std::string_view name, std::string_view value) {
  return part("Content-Disposition: form-data; name=\"" + std::string{name} + "\"", value);
}

std::string file(std::string_view content, std::string_view filename = "a.mp3") {
  return part("Content-Disposition: form-data; name=\"file\"; filename=\"" + std::string{filename} +
                  "\"\r\nContent-Type: audio/mpeg",
              content);
}

std::string closing(const std::string& boundary = b) {
  return "--" + boundary + "--\r\n";
}

/// A parse of `body` written to a file, and what it left at the output path.
struct outcome {
  caf::expected<multipart_form> form;
  bool file_exists = false;
  std::string file;
};

outcome parse(const std::string& body, multipart_limits limits = {},
              const std::string& boundary = b) {
  test::temp_dir dir;
  auto body_path = dir.path() + "/body";
  auto out_path = dir.path() + "/out";
  test::write_file(body_path, body);
  outcome o{parse_multipart_file(body_path, boundary, out_path, "file", limits), false, {}};
  o.file_exists = std::filesystem::exists(out_path);
  if (o.file_exists) o.file = test::read_file(out_path);
  return o;
}

/// The detail of a refusal, after checking that it is a validation error.
std::string refusal(const outcome& o) {
  REQUIRE_FALSE(o.form);
  auto detail = error_detail(o.form.error());
  INFO(detail);
  CHECK(is(o.form.error(), domain_errc::validation));
  CHECK_FALSE(o.file_exists);
  return detail;
}

/// Whether a refusal's detail names `words`; shows the detail when it does not.
bool mentions(const std::string& detail, std::string_view words) {
  bool found = detail.find(words) != std::string::npos;
  if (!found) MESSAGE("the detail is: " << detail);
  return found;
}

void check_same(const outcome& a, const outcome& b) {
  REQUIRE(a.form);
  REQUIRE(b.form);
  CHECK(a.form->fields == b.form->fields);
  CHECK(a.form->file_name == b.form->file_name);
  CHECK(a.form->file_type == b.form->file_type);
  CHECK(a.form->file_size == b.form->file_size);
  CHECK(a.form->has_file == b.form->has_file);
  CHECK(a.file == b.file);
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

}  // namespace

TEST_CASE("multipart_boundary reads the boundary of multipart/form-data, quoted or not") {
  CHECK(multipart_boundary("multipart/form-data; boundary=abc") == "abc");
  CHECK(multipart_boundary("multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW") ==
        "----WebKitFormBoundary7MA4YWxkTrZu0gW");
  CHECK(multipart_boundary("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a b:c=d\"") ==
        "a b:c=d");
  CHECK(multipart_boundary("multipart/form-data; boundary=\"\"") == "");
  CHECK_FALSE(multipart_boundary("multipart/form-data"));
  CHECK_FALSE(multipart_boundary("multipart/form-data; charset=utf-8"));
  CHECK_FALSE(multipart_boundary("multipart/mixed; boundary=abc"));
  CHECK_FALSE(multipart_boundary("audio/mpeg"));
  CHECK_FALSE(multipart_boundary("multipart/form-data; boundary=\"unterminated"));
}

TEST_CASE("a form with fields and a file part gives the fields and writes the file to its path") {
  auto o = parse(field("title", "Blue in Green") + file("ID3 audio bytes", "kind of blue.mp3") +
                 field("visibility", "unlisted") + closing());
  REQUIRE(o.form);
  CHECK(o.form->fields.size() == 2);
  CHECK(o.form->fields.at("title") == "Blue in Green");
  CHECK(o.form->fields.at("visibility") == "unlisted");
  CHECK(o.form->has_file);
  CHECK(o.form->file_name == "kind of blue.mp3");
  CHECK(o.form->file_type == "audio/mpeg");
  CHECK(o.form->file_size == 15);
  CHECK(o.file == "ID3 audio bytes");
}

TEST_CASE("a file part without filename or Content-Type and an empty field are kept as empty") {
  auto o = parse(field("album", "") + part("Content-Disposition: form-data; name=file", "x") +
                 closing());
  REQUIRE(o.form);
  CHECK(o.form->fields.at("album").empty());
  CHECK(o.form->has_file);
  CHECK(o.form->file_name.empty());
  CHECK(o.form->file_type.empty());
  CHECK(o.file == "x");
}

TEST_CASE("a form without a file part has no file and leaves no output file") {
  auto o = parse(field("title", "t") + closing());
  REQUIRE(o.form);
  CHECK_FALSE(o.form->has_file);
  CHECK(o.form->file_size == 0);
  CHECK_FALSE(o.file_exists);
  auto empty = parse(closing());  // RFC 2046 wants a part, an empty form is harmless
  REQUIRE(empty.form);
  CHECK(empty.form->fields.empty());
  CHECK_FALSE(empty.form->has_file);
}

TEST_CASE(
    "file content that looks like dashes, CR LF or part of a delimiter is kept byte for byte") {
  // Everything a delimiter starts with, without ever being one; the content also ends in a
  // partial delimiter right before the real one, and in a lone CR.
  const std::string tricky =
      "--\r\n--\r\n\r\n-- b0undary\r\n-b0undary\r\n--B0UNDARY\r\n--b0undar\r\r\n--b0undarx"
      "\n--b0undary\r--b0undary\r\n\r\n--b0un\r\n--b0undar";
  for (const auto& content : {tricky, tricky + "\r", std::string{"\r\n"}, std::string{"--"}}) {
    auto o = parse(field("title", content) + file(content) + closing());
    REQUIRE(o.form);
    CHECK(o.file == content);
    CHECK(o.form->file_size == content.size());
    CHECK(o.form->fields.at("title") == content);
  }
}

TEST_CASE("a delimiter falling across two reads at any offset gives the same form") {
  const std::string body =
      "preamble --b0undar\r\n" + field("title", "T\r\n--b0undar") +
      file("--b0undary-like\r\n--b0undar\r\n\r\n") +
      part("content-disposition: form-data; name=\"genre\"\nContent-Type: text/plain", "jazz") +
      closing() + "epilogue";
  auto reference = parse(body);
  REQUIRE(reference.form);
  CHECK(reference.form->fields.at("genre") == "jazz");
  CHECK(reference.file == "--b0undary-like\r\n--b0undar\r\n\r\n");
  for (size_t chunk = 1; chunk <= body.size() + 1; ++chunk) {
    CAPTURE(chunk);
    multipart_limits limits;
    limits.read_bytes = chunk;
    check_same(parse(body, limits), reference);
  }
}

TEST_CASE("a file part of several megabytes of random bytes is written byte-identical") {
  auto content = random_bytes(size_t{5} * 1024 * 1024 + 7, 42);
  // Plant near-delimiters, some at the edges of 64 KiB reads.
  for (size_t at : {size_t{0}, size_t{65534}, size_t{131070}, size_t{1000000}, size_t{5000000}})
    content.replace(at, 11, "\r\n--b0undar");
  for (size_t chunk : {size_t{65536}, size_t{4093}}) {
    CAPTURE(chunk);
    multipart_limits limits;
    limits.read_bytes = chunk;
    auto o = parse(field("title", "noise") + file(content, "noise.bin") + closing(), limits);
    REQUIRE(o.form);
    CHECK(o.form->file_size == content.size());
    CHECK(o.file.size() == content.size());
    CHECK(o.file == content);
  }
}

TEST_CASE("preamble and epilogue text around the parts are ignored") {
  const std::string preamble = "This is a multipart body.\r\n--b0undar\r\n--\r\n-- b0undary\r\n";
  const std::string epilogue = "trailing words\r\n--b0undary\r\nContent-Disposition: junk\r\n";
  auto o = parse(preamble + "\r\n" + field("title", "t") + file("audio") + closing() + epilogue);
  REQUIRE(o.form);
  CHECK(o.form->fields.size() == 1);
  CHECK(o.form->fields.at("title") == "t");
  CHECK(o.file == "audio");
  // No newline after the closing delimiter at all.
  auto bare = parse(field("title", "t") + "--" + b + "--");
  REQUIRE(bare.form);
  CHECK(bare.form->fields.at("title") == "t");
}

TEST_CASE("quoted names and filenames keep escaped quotes and header names ignore case") {
  auto body = part("CONTENT-DISPOSITION: Form-Data; NAME=\"ti\\\"tle\"", "v1") +
              part("content-disposition:form-data;name=plain", "v2") +
              part("Content-Disposition: form-data; name=\"semi;colon\"; x-extra=1", "v3") +
              part(
                  "X-Whatever: 1\r\nContent-Transfer-Encoding: binary\r\n"
                  "Content-Disposition: form-data;\r\n name=\"folded\"",
                  "v4") +
              part(
                  "Content-Disposition: form-data; name=\"file\"; "
                  "filename=\"my \\\"best\\\" song \\\\ C:\\music\\a.mp3\"\r\n"
                  "content-TYPE:   audio/ogg; codecs=opus  ",
                  "opus") +
              closing();
  auto o = parse(body);
  REQUIRE(o.form);
  CHECK(o.form->fields.at("ti\"tle") == "v1");
  CHECK(o.form->fields.at("plain") == "v2");
  CHECK(o.form->fields.at("semi;colon") == "v3");
  CHECK(o.form->fields.at("folded") == "v4");
  // \" and \\ are escapes, a backslash before anything else (a Windows path) stays.
  CHECK(o.form->file_name == "my \"best\" song \\ C:\\music\\a.mp3");
  CHECK(o.form->file_type == "audio/ogg; codecs=opus");
  CHECK(o.file == "opus");
}

TEST_CASE("part headers ending in a bare LF and whitespace after a boundary are accepted") {
  auto body = "--" + b + "  \t\r\nContent-Disposition: form-data; name=\"title\"\n\nT\r\n" + "--" +
              b + "\nContent-Disposition: form-data; name=\"file\"\nContent-Type: audio/wav\n\n" +
              "RIFF\r\n" + closing();
  auto o = parse(body);
  REQUIRE(o.form);
  CHECK(o.form->fields.at("title") == "T");
  CHECK(o.form->file_type == "audio/wav");
  CHECK(o.file == "RIFF");
}

TEST_CASE(
    "an empty boundary, one over 70 characters or one with a forbidden character is refused") {
  auto body = field("title", "t") + closing();
  CHECK(mentions(refusal(parse(body, {}, "")), "empty"));
  CHECK(mentions(refusal(parse(body, {}, std::string(71, 'x'))), "at most 70"));
  CHECK(mentions(refusal(parse(body, {}, "semi;colon")), "character"));
  CHECK(mentions(refusal(parse(body, {}, "space ")), "space"));
  const std::string longest(70, 'x');
  auto o = parse(part("Content-Disposition: form-data; name=a", "1", longest) + closing(longest),
                 {}, longest);
  REQUIRE(o.form);
  CHECK(o.form->fields.at("a") == "1");
}

TEST_CASE("a body without an opening boundary line is refused") {
  CHECK(mentions(refusal(parse("")), "opens the body"));
  CHECK(mentions(refusal(parse("just text, no parts")), "opens the body"));
  CHECK(mentions(refusal(parse("text--" + b + "\r\n")), "opens the body"));
  // Another boundary than the Content-Type's.
  CHECK(mentions(refusal(parse(field("title", "t") + closing(), {}, "other")), "opens the body"));
}

TEST_CASE("a body cut anywhere before its closing boundary is refused and leaves no output file") {
  const std::string body = field("title", "t") + file("audio\r\n--b0un") + closing();
  const auto closed_at = body.size() - 2;  // "--b0undary--" is complete, the CRLF is epilogue
  for (size_t n = 0; n < body.size(); ++n) {
    CAPTURE(n);
    auto o = parse(body.substr(0, n));
    if (n >= closed_at) {
      CHECK(o.form);
      continue;
    }
    auto detail = refusal(o);
    CHECK_MESSAGE((detail.find("truncated") != std::string::npos ||
                   detail.find("opens the body") != std::string::npos),
                  detail);
  }
}

TEST_CASE("a part without Content-Disposition form-data and a name is refused") {
  auto refused = [](std::string_view headers) {
    return refusal(parse(part(headers, "v") + closing()));
  };
  CHECK(mentions(refused("Content-Type: text/plain"), "Content-Disposition: form-data"));
  CHECK(mentions(refused("Content-Disposition: attachment; name=\"a\""), "form-data"));
  CHECK(mentions(refused("Content-Disposition: form-data; name=\"a"), "form-data"));
  CHECK(mentions(refused("Content-Disposition: form-data; name=\"a\"x"), "form-data"));
  CHECK(mentions(refused("Content-Disposition: form-data"), "no name"));
  CHECK(mentions(refused("Content-Disposition: form-data; filename=\"a.mp3\""), "no name"));
  CHECK(mentions(refused("Content-Disposition: form-data; name=\"\""), "no name"));
  CHECK(mentions(refused("Content-Disposition form-data; name=a"), "without a name"));
  CHECK(mentions(refused(" name=a\r\nContent-Disposition: form-data; name=a"), "continuation"));
  CHECK(mentions(refused("Content-Disposition: form-data; name=a\r\n"
                         "Content-Disposition: form-data; name=b"),
                 "two Content-Disposition"));
  // Nothing at all between the boundary line and the content.
  CHECK(mentions(refusal(parse("--" + b + "\r\n\r\nv\r\n" + closing())), "form-data"));
}

TEST_CASE("a second file part is refused and leaves no output file") {
  auto detail = refusal(parse(file("one") + file("two") + closing()));
  CHECK(mentions(detail, "second \"file\""));
}

TEST_CASE("a part with a filename under another name than the file part is refused") {
  auto detail = refusal(
      parse(file("audio") +
            part("Content-Disposition: form-data; name=\"cover\"; filename=\"c.png\"", "png") +
            closing()));
  CHECK(mentions(detail, "\"cover\" carries a file"));
}

TEST_CASE("more fields than max_fields are refused") {
  multipart_limits limits;
  limits.max_fields = 3;
  std::string three = field("a", "1") + field("b", "2") + field("c", "3");
  auto o = parse(three + file("x") + closing(), limits);  // the file part is not a field
  REQUIRE(o.form);
  CHECK(o.form->fields.size() == 3);
  CHECK(mentions(refusal(parse(file("x") + three + field("d", "4") + closing(), limits)),
                 "more than 3 fields"));
}

TEST_CASE("a field over max_field_bytes is refused") {
  multipart_limits limits;
  limits.max_field_bytes = 100;
  auto o = parse(field("bio", std::string(100, 'x')) + closing(), limits);
  REQUIRE(o.form);
  CHECK(o.form->fields.at("bio").size() == 100);
  CHECK(
      mentions(refusal(parse(file("x") + field("bio", std::string(101, 'x')) + closing(), limits)),
               "\"bio\" is over 100 bytes"));
  // A field that never ends is refused at the limit, long before the body would end.
  limits.read_bytes = 16;
  CHECK(mentions(refusal(parse(field("bio", std::string(1 << 20, 'x')), limits)), "over 100"));
}

TEST_CASE("part headers over max_header_bytes are refused") {
  multipart_limits limits;
  limits.max_header_bytes = 200;
  const std::string disposition = "Content-Disposition: form-data; name=\"title\"";
  auto fits =
      parse(part(disposition + "\r\nX-Pad: " + std::string(100, 'p'), "t") + closing(), limits);
  REQUIRE(fits.form);
  auto detail = refusal(
      parse(part(disposition + "\r\nX-Pad: " + std::string(200, 'p'), "t") + closing(), limits));
  CHECK(mentions(detail, "headers of part 1 are over 200 bytes"));
  // Exactly at the limit: the boundary line's CRLF, the header lines and the blank line.
  const std::string header = disposition + "\r\nX-Pad: " + std::string(50, 'p');
  limits.max_header_bytes = 2 + header.size() + 4;
  REQUIRE(parse(part(header, "t") + closing(), limits).form);
  CHECK(mentions(refusal(parse(part(header + "p", "t") + closing(), limits)), "are over"));
  limits.max_header_bytes = 200;
  // Many short lines count together, and a line that never ends is cut at the limit too.
  std::string many;
  for (int i = 0; i < 40; ++i) many += "X-A: 1\r\n";
  CHECK(
      mentions(refusal(parse(field("a", "1") + part(many + disposition, "t") + closing(), limits)),
               "headers of part 2"));
  limits.read_bytes = 7;
  CHECK(mentions(refusal(parse("--" + b + "\r\n" + std::string(1 << 20, 'h'), limits)),
                 "are over 200 bytes"));
}

TEST_CASE("a field name used twice is refused") {
  CHECK(mentions(refusal(parse(field("tag", "a") + field("tag", "b") + closing())),
                 "\"tag\" appears twice"));
}

TEST_CASE("a boundary line followed by other bytes is refused") {
  // The boundary occurring in the content (the sender chose a bad one) or junk after it.
  CHECK(mentions(refusal(parse(field("a", "1") + "--" + b + "x\r\n" + closing())),
                 "followed by other bytes"));
  CHECK(mentions(refusal(parse("--" + b + "-x\r\n" + field("a", "1") + closing())),
                 "followed by other bytes"));
}

TEST_CASE("a body that cannot be read or a file that cannot be written is a runtime error") {
  auto missing = parse_multipart_file("/nonexistent/body", b, "/tmp/never-written");
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == caf::sec::runtime_error);
  CHECK(mentions(error_detail(missing.error()), "/nonexistent/body"));
  test::temp_dir dir;
  test::write_file(dir.path() + "/body", file("audio") + closing());
  auto unwritable = parse_multipart_file(dir.path() + "/body", b, dir.path() + "/no/such/out");
  REQUIRE_FALSE(unwritable);
  CHECK(unwritable.error() == caf::sec::runtime_error);
  CHECK(mentions(error_detail(unwritable.error()), "cannot create"));
}
