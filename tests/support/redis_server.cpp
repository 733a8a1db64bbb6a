#include "tests/support/redis_server.hpp"

#include <csignal>
#include <stdexcept>

namespace chorus::test {

using namespace std::chrono_literals;

redis_server::redis_server(bool durable) : port_(free_port()), durable_(durable) {
  start();
}

redis_server::~redis_server() = default;

void redis_server::start() {
  process_.reset();
  std::vector<std::string> argv{"/usr/bin/redis-server",
                                "--port",
                                std::to_string(port_),
                                "--bind",
                                "127.0.0.1",
                                "--save",
                                "",
                                "--dir",
                                dir_.path()};
  if (durable_) {
    for (const char* arg : {"--appendonly", "yes", "--appendfsync", "always"})
      argv.emplace_back(arg);
  } else {
    for (const char* arg : {"--appendonly", "no"}) argv.emplace_back(arg);
  }
  process_ = std::make_unique<child_process>(argv, dir_.path() + "/redis.log");
  auto up = eventually(10s, [&] {
    auto r = run({"redis-cli", "-p", std::to_string(port_), "PING"}, 2s);
    return r.exit_code == 0 && r.output.find("PONG") != std::string::npos;
  });
  if (!up)
    throw std::runtime_error("redis-server did not start: " +
                             read_file(dir_.path() + "/redis.log"));
}

void redis_server::kill() {
  process_->signal(SIGKILL);
  if (!process_->wait_exit(5s)) throw std::runtime_error("redis-server did not die");
}

}  // namespace chorus::test
