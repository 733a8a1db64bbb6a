#pragma once

#include <string>

#include <google/protobuf/message.h>

namespace chorus {

/// A protobuf message as the JSON clients see: the .proto field names, every field present
/// (int64 as strings, protobuf's JSON mapping). "{}" if it cannot be rendered.
std::string proto_json(const google::protobuf::Message& msg);

}  // namespace chorus
