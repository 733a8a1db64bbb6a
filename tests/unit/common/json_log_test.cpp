#include <doctest/doctest.h>

#include <sstream>
#include <thread>
#include <vector>

#include "common/json_log.hpp"
#include "tests/support/process.hpp"

using namespace chorus;

TEST_CASE("json strings escape quotes, backslashes and control characters") {
  std::string out;
  append_json_string(out, "a\"b\\c\nd\te\x01");
  CHECK(out == R"("a\"b\\c\nd\te\u0001")");
}

TEST_CASE("every log line is one JSON object with node, level, component and fields") {
  test::temp_dir dir;
  auto path = dir.path() + "/n1.log";
  {
    json_log log{"n1"};
    REQUIRE(log.open(path));
    log.warn("membership", "peer \"down\"", {{"peer", "n2"}});
  }
  auto text = test::read_file(path);
  CHECK(text.back() == '\n');
  CHECK(
      text.find(
          R"("level":"warn","node":"n1","component":"membership","msg":"peer \"down\"","peer":"n2"})") !=
      std::string::npos);
  CHECK(text.rfind("{\"ts\":\"20", 0) == 0);
}

TEST_CASE("lines written from many threads never interleave") {
  test::temp_dir dir;
  auto path = dir.path() + "/n1.log";
  {
    json_log log{"n1"};
    REQUIRE(log.open(path));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&log, t] {
        for (int i = 0; i < 500; ++i)
          log.info("test", std::string(100, static_cast<char>('a' + t)));
      });
    for (auto& th : threads) th.join();
  }
  std::istringstream in{test::read_file(path)};
  std::string line;
  size_t lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    REQUIRE(line.front() == '{');
    REQUIRE(line.back() == '}');
  }
  CHECK(lines == 2000);
}

TEST_CASE("a log file that cannot be opened is reported, and logging goes on to stderr") {
  json_log log{"n1"};
  CHECK_FALSE(log.open("/nonexistent-dir/n1.log"));
  log.info("test", "still works");
}
