#include "tests/support/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace chorus::test {

namespace {

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

child_process::child_process(const std::vector<std::string>& argv, const std::string& output_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string{"fork: "} + std::strerror(errno));
  if (pid_ == 0) {
    int fd = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    // Unblock everything: the test runner's mask must not leak into the child.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvp(args[0], args.data());  // PATH is searched for bare names
    std::_Exit(127);
  }
}

child_process::~child_process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

void child_process::signal(int sig) const {
  ::kill(pid_, sig);
}

std::optional<int> child_process::wait_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  eventually(timeout, [this] {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = decode(status);
    return status_.has_value();
  });
  return status_;
}

bool child_process::running() {
  return !wait_exit(std::chrono::milliseconds{0});
}

run_result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  temp_dir dir;
  auto out = dir.path() + "/out";
  child_process proc{argv, out};
  auto code = proc.wait_exit(timeout);
  return {code ? *code : -1, read_file(out)};
}

uint16_t free_port() {
  // Below the kernel's ephemeral range (32768-60999 here): a port handed out from that range can
  // be taken by any outgoing connection (tests open thousands) before the node binds it.
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick{20000, 32767};
  // Never the same port twice in one process: a port handed out is free only until its node
  // binds it, so two picks for one cluster could otherwise collide (a cluster takes 12; that
  // happened about once in a few full runs).
  static std::mutex handed_mtx;
  static std::set<uint16_t> handed;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto port = static_cast<uint16_t>(pick(rng));
    {
      std::lock_guard<std::mutex> guard{handed_mtx};
      if (!handed.insert(port).second) {
        ::close(fd);
        continue;
      }
    }
    addr.sin_port = htons(port);
    auto ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    if (ok) return port;
  }
  throw std::runtime_error("free_port: no free port in 20000-32767");
}

temp_dir::temp_dir() {
  auto base = std::filesystem::temp_directory_path() / "chorus-test-XXXXXX";
  std::string tmpl = base.string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::trunc};
  out << text;
}

}  // namespace chorus::test
