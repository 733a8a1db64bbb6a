#include "persistence/reminder_probe.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

namespace chorus::persistence {

namespace {

prometheus::Counter& counter(prometheus::Registry& registry, const std::string& database,
                             const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add(
      {{"database", database}});
}

}  // namespace

reminder_probe::reminder_probe(prometheus::Registry& registry, const std::string& database)
    : scheduled_(counter(registry, database, "chorus_reminders_scheduled_total",
                         "Reminders stored (scheduled or rescheduled) by entities")),
      fired_(counter(registry, database, "chorus_reminders_fired_total",
                     "Due reminders delivered and acknowledged by their entity")),
      failed_(counter(registry, database, "chorus_reminders_failed_total",
                      "Reminder deliveries that failed or timed out (retried after the lease)")),
      parked_(counter(registry, database, "chorus_reminders_parked_total",
                      "Reminders deleted unfired after too many attempts")) {}

void reminder_probe::scheduled() {
  scheduled_.Increment();
}

void reminder_probe::fired() {
  fired_.Increment();
}

void reminder_probe::failed() {
  failed_.Increment();
}

void reminder_probe::parked() {
  parked_.Increment();
}

}  // namespace chorus::persistence
