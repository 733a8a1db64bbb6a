#pragma once

#include <string_view>

namespace chorus::edge {

/// The OpenAPI 3 document of the REST edge (http_edge/openapi.json, embedded at build time),
/// served at GET /v1/openapi.json. Every route the edge registers is described in it: a unit
/// test compares the two, and another lints the document with @redocly/cli.
std::string_view openapi_document();

}  // namespace chorus::edge
