#include "http_edge/edge_probe.hpp"

namespace chorus::edge {

edge_probe::edge_probe(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("chorus_http_requests_total")
                    .Help("HTTP requests answered, by route pattern, method and status")
                    .Register(registry)),
      durations_(prometheus::BuildHistogram()
                     .Name("chorus_http_request_duration_seconds")
                     .Help("Time from request parsed to response ready, by route pattern")
                     .Register(registry)),
      in_flight_(prometheus::BuildGauge()
                     .Name("chorus_http_requests_in_flight")
                     .Help("HTTP requests being handled now")
                     .Register(registry)
                     .Add({})),
      ws_connections_(prometheus::BuildGauge()
                          .Name("chorus_ws_connections")
                          .Help("WebSocket connections open on this node")
                          .Register(registry)
                          .Add({})),
      ws_sent_(prometheus::BuildCounter()
                   .Name("chorus_ws_events_sent_total")
                   .Help("Live events queued to WebSocket clients")
                   .Register(registry)
                   .Add({})),
      ws_closed_(prometheus::BuildCounter()
                     .Name("chorus_ws_disconnects_total")
                     .Help("WebSocket connections ended, by reason")
                     .Register(registry)) {}

void edge_probe::ws_closed(const std::string& reason) {
  ws_connections_.Decrement();
  ws_closed_.Add({{"reason", reason}}).Increment();
}

void edge_probe::end(const std::string& route, const std::string& method, int status,
                     double seconds) {
  in_flight_.Decrement();
  requests_.Add({{"route", route}, {"method", method}, {"status", std::to_string(status)}})
      .Increment();
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  durations_.Add({{"route", route}}, buckets).Observe(seconds);
}

}  // namespace chorus::edge
