#include <doctest/doctest.h>

#include <regex>
#include <string>

#include "http_edge/http_message.hpp"

using namespace chorus::edge;

TEST_CASE("Range headers: first and last byte, open and suffix ranges, past the end, and junk") {
  auto r = parse_range("bytes=0-0", 1000);
  CHECK(r.kind == byte_range::part);
  CHECK(r.first == 0);
  CHECK(r.last == 0);
  r = parse_range("bytes=-1", 1000);
  CHECK((r.kind == byte_range::part && r.first == 999 && r.last == 999));
  r = parse_range("bytes=-5000", 1000);  // a suffix longer than the file: all of it
  CHECK((r.kind == byte_range::part && r.first == 0 && r.last == 999));
  r = parse_range("bytes=900-", 1000);
  CHECK((r.kind == byte_range::part && r.first == 900 && r.last == 999));
  r = parse_range("bytes=10-5000", 1000);  // an end past the file is cut at the end
  CHECK((r.kind == byte_range::part && r.first == 10 && r.last == 999));
  r = parse_range("bytes=0-9, 20-29", 1000);  // several: the first
  CHECK((r.kind == byte_range::part && r.first == 0 && r.last == 9));
  CHECK(parse_range("bytes=1000-", 1000).kind == byte_range::unsatisfiable);
  CHECK(parse_range("bytes=-0", 1000).kind == byte_range::unsatisfiable);
  CHECK(parse_range("", 1000).kind == byte_range::whole);
  CHECK(parse_range("bytes=abc", 1000).kind == byte_range::whole);
  CHECK(parse_range("bytes=5-2", 1000).kind == byte_range::whole);
  CHECK(parse_range("items=0-1", 1000).kind == byte_range::whole);
  CHECK(parse_range("bytes=99999999999999999999-", 1000).kind == byte_range::whole);
}

TEST_CASE("queries and paths are percent-decoded, a plus is a space only in a query") {
  auto q = parse_query("a=1&b=x%20y&c=p+q&empty=&flag");
  CHECK(q.find("a")->second == "1");
  CHECK(q.find("b")->second == "x y");
  CHECK(q.find("c")->second == "p q");
  CHECK(q.find("empty")->second.empty());
  CHECK(q.count("flag") == 1);
  CHECK(percent_decode("/v1/a%2Fb+c", false) == "/v1/a/b+c");
  CHECK(percent_decode("100%", false) == "100%");
  CHECK(percent_decode("%zz", true) == "%zz");
}

TEST_CASE("the literal start and end of a route pattern are the text every match must have") {
  auto ends = [](std::string_view p) {
    auto e = regex_literal_ends(p);
    return e.prefix + "|" + e.suffix;
  };
  CHECK(ends(R"(/v1/tracks/([^/]+)/stream)") == "/v1/tracks/|/stream");
  CHECK(ends(R"(/v1/tracks/([^/]+))") == "/v1/tracks/|");
  CHECK(ends("/v1/tracks") == "/v1/tracks|");
  CHECK(ends(R"(/v1/x/(\d+))") == "/v1/x/|");
  CHECK(ends(R"(/v1/x/\d)") == "/v1/x/|");    // \d is a class, not the letter d
  CHECK(ends(R"(/v1/ab?/c)") == "/v1/a|/c");  // b is optional
  CHECK(ends(R"(/v1/(a|b)/c)") == "|");       // an alternation: no claim
  CHECK(ends(R"(/v1/x\.json)") == "/v1/x|json");
  // Whatever the pattern, a full match starts and ends with what is claimed.
  for (std::string p : {R"(/v1/users/([^/]+)/follow)", R"(/a+b/c*)", R"(/v1/(x)?y)"}) {
    auto e = regex_literal_ends(p);
    for (std::string path : {"/v1/users/abc/follow", "/aab/", "/aab/ccc", "/v1/xy", "/v1/y"})
      if (std::regex_match(path, std::regex{p})) {
        CAPTURE(p);
        CAPTURE(path);
        CHECK(path.starts_with(e.prefix));
        CHECK(path.ends_with(e.suffix));
      }
  }
}
