#include "tests/support/postgres_server.hpp"

#include <unistd.h>

#include <filesystem>
#include <random>
#include <stdexcept>

namespace chorus::test {

namespace {

using namespace std::chrono_literals;

bool is_root() {
  return ::geteuid() == 0;
}

std::string pg_bin_dir() {
  std::string best;
  for (const auto& e : std::filesystem::directory_iterator{"/usr/lib/postgresql"}) {
    auto bin = e.path() / "bin";
    if (std::filesystem::exists(bin / "pg_ctl") && bin.string() > best) best = bin.string();
  }
  if (best.empty()) throw std::runtime_error("no PostgreSQL under /usr/lib/postgresql");
  return best;
}

run_result psql(uint16_t port, const std::string& db, const std::string& sql) {
  return run({"psql", "-h", "127.0.0.1", "-p", std::to_string(port), "-U", "chorus", "-d", db, "-v",
              "ON_ERROR_STOP=1", "-qAtc", sql});
}

}  // namespace

scratch_database::scratch_database(uint16_t postgres_port) : port_(postgres_port) {
  name_ = "chorus_test_" + std::to_string(std::random_device{}()) +
          std::to_string(std::random_device{}());
  auto created = psql(port_, "postgres", "CREATE DATABASE " + name_);
  if (created.exit_code != 0)
    throw std::runtime_error("cannot create database " + name_ + ": " + created.output);
  dsn_ = "postgresql://chorus@127.0.0.1:" + std::to_string(port_) + "/" + name_;
}

scratch_database::~scratch_database() {
  psql(port_, "postgres", "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

postgres_server::postgres_server() : bin_(pg_bin_dir()), port_(free_port()) {
  // The postgres user must reach the data directory: a world-traversable temp dir it owns.
  std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
  auto init = pg({bin_ + "/initdb", "-D", dir_.path() + "/data", "-U", "chorus", "--auth=trust",
                  "-E", "UTF8", "--no-locale", "--no-sync"});
  if (init.exit_code != 0) throw std::runtime_error("initdb failed: " + init.output);
  if (!start()) throw std::runtime_error("PostgreSQL did not start: " + log());
  auto created = psql(port_, "postgres", "CREATE DATABASE chorus");
  if (created.exit_code != 0) throw std::runtime_error("createdb failed: " + created.output);
}

postgres_server::~postgres_server() {
  if (running_) stop_immediate();
}

std::string postgres_server::dsn() const {
  return "postgresql://chorus@127.0.0.1:" + std::to_string(port_) + "/chorus";
}

run_result postgres_server::pg(const std::vector<std::string>& argv) const {
  if (!is_root()) return run(argv, 60s);
  std::vector<std::string> as_postgres{"runuser", "-u", "postgres", "--"};
  as_postgres.insert(as_postgres.end(), argv.begin(), argv.end());
  return run(as_postgres, 60s);
}

bool postgres_server::start() {
  auto r = pg({bin_ + "/pg_ctl", "-D", dir_.path() + "/data", "-l", dir_.path() + "/postgres.log",
               "-w", "-t", "60", "-o",
               "-p " + std::to_string(port_) +
                   " -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                   "-c max_connections=100",
               "start"});
  running_ = r.exit_code == 0;
  return running_;
}

bool postgres_server::stop_immediate() {
  auto r = pg({bin_ + "/pg_ctl", "-D", dir_.path() + "/data", "-m", "immediate", "-w", "stop"});
  running_ = r.exit_code != 0 && running_;
  return r.exit_code == 0;
}

std::string postgres_server::log() const {
  return read_file(dir_.path() + "/postgres.log");
}

}  // namespace chorus::test
