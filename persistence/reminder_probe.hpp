#pragma once

#include <string>

namespace prometheus {
class Registry;
class Counter;
}  // namespace prometheus

namespace chorus::persistence {

/// Metrics of one reminder actor (label `database`: the DSN's database name). Owned by main() or
/// a test, outliving the actor; called from the actor's thread.
class reminder_probe {
 public:
  reminder_probe(prometheus::Registry& registry, const std::string& database);

  /// A reminder stored (scheduled or rescheduled) for an entity.
  void scheduled();
  /// A due reminder delivered and acknowledged by its entity.
  void fired();
  /// A delivery that failed or timed out (the reminder comes again when its lease ends).
  void failed();
  /// A reminder deleted unfired after too many attempts.
  void parked();

 private:
  prometheus::Counter& scheduled_;
  prometheus::Counter& fired_;
  prometheus::Counter& failed_;
  prometheus::Counter& parked_;
};

}  // namespace chorus::persistence
