#include "messages/proto_json.hpp"

#include <google/protobuf/util/json_util.h>

namespace chorus {

std::string proto_json(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(msg, &out, opts).ok()) return "{}";
  return out;
}

}  // namespace chorus
