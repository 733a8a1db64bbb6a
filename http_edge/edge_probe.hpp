#pragma once

#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace chorus::edge {

/// RED metrics of the HTTP edge: requests by route, method and status; duration by route;
/// requests in flight. Owned by the edge server; thread-safe (called from httplib workers).
class edge_probe {
 public:
  explicit edge_probe(prometheus::Registry& registry);

  void begin() { in_flight_.Increment(); }
  void end(const std::string& route, const std::string& method, int status, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Gauge& in_flight_;
};

}  // namespace chorus::edge
