#pragma once

#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace chorus::edge {

/// RED metrics of the HTTP edge: requests by route, method and status; duration by route;
/// requests in flight; WebSocket connections, events sent and disconnects by reason. Owned by
/// the edge server; thread-safe (called from the event loop, workers and actor threads).
class edge_probe {
 public:
  explicit edge_probe(prometheus::Registry& registry);

  void begin() { in_flight_.Increment(); }
  void end(const std::string& route, const std::string& method, int status, double seconds);

  void ws_opened() { ws_connections_.Increment(); }
  /// `reason`: "client" (closed or vanished), "idle" (no pong), "slow_reader", "session_ended",
  /// "shutdown".
  void ws_closed(const std::string& reason);
  void ws_sent(size_t frames) { ws_sent_.Increment(static_cast<double>(frames)); }

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Gauge& in_flight_;
  prometheus::Gauge& ws_connections_;
  prometheus::Counter& ws_sent_;
  prometheus::Family<prometheus::Counter>& ws_closed_;
};

}  // namespace chorus::edge
