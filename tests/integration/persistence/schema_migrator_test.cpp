#include <doctest/doctest.h>

#include <pqxx/pqxx>

#include "persistence/schema_migrator.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace std::chrono_literals;

TEST_CASE(
    "the schema migrator waits out a node that hangs holding the migration lock: not ready "
    "meanwhile, current once the lock is released") {
  test::scratch_database db{test::real_storage().postgres_port};
  // A hung node: its connection stays open and keeps the session-level lock.
  pqxx::connection holder{db.dsn()};
  {
    pqxx::nontransaction tx{holder};
    tx.exec("SELECT pg_advisory_lock(x'63686f727573'::bigint)");
  }
  persistence::schema_migrator migrator{{db.dsn()}};
  std::atomic<int> failures{0};
  migrator.start([&](const std::string&, const std::string&, bool error) {
    if (error) ++failures;
  });
  // The attempt gives up with an error after the lock timeout instead of blocking for ever.
  REQUIRE(test::eventually(30s, [&] { return failures.load() > 0; }));
  auto problem = migrator.problem(db.dsn());
  REQUIRE(problem);
  CHECK(problem->find("migrations not yet applied") != std::string::npos);
  {
    pqxx::nontransaction tx{holder};
    tx.exec("SELECT pg_advisory_unlock_all()");
  }
  CHECK(test::eventually(30s, [&] { return !migrator.problem(db.dsn()); }));
  pqxx::connection check{db.dsn()};
  pqxx::nontransaction tx{check};
  CHECK(tx.exec("SELECT to_regclass('events') IS NOT NULL")[0][0].as<bool>());
}

TEST_CASE("the schema migrator names a database it cannot reach and stops cleanly") {
  auto unreachable = "postgresql://chorus@127.0.0.1:" + std::to_string(test::free_port()) + "/x";
  persistence::schema_migrator migrator{{unreachable}};
  std::atomic<int> failures{0};
  migrator.start([&](const std::string&, const std::string&, bool error) {
    if (error) ++failures;
  });
  REQUIRE(test::eventually(10s, [&] { return failures.load() > 0; }));
  auto problem = migrator.problem(unreachable);
  REQUIRE(problem);
  CHECK(problem->find("migrations not yet applied") != std::string::npos);
  migrator.stop();
}
