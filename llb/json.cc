#include "llb/json.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "base/digest.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/reflection.h"
#include "llb/internal/gojson.h"

namespace kiln::llb {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using Json = nlohmann::ordered_json;

Json MessageToJson(const Message& message);

// A singular (or one element of a repeated) field, as encoding/json writes the Go value.
Json ValueToJson(const Message& message, const FieldDescriptor* field, int index) {
  const auto* r = message.GetReflection();
  const bool rep = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return rep ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return rep ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return rep ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field);
    case FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field);
    case FieldDescriptor::CPPTYPE_ENUM:
      return rep ? r->GetRepeatedEnumValue(message, field, index) : r->GetEnumValue(message, field);
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string value =
          rep ? r->GetRepeatedString(message, field, index) : r->GetString(message, field);
      if (field->type() == FieldDescriptor::TYPE_BYTES) return absl::Base64Escape(value);
      return value;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToJson(rep ? r->GetRepeatedMessage(message, field, index)
                               : r->GetMessage(message, field));
  }
  return nullptr;
}

// A map field (repeated entries): an object with keys sorted, as Go sorts map keys.
Json MapToJson(const Message& message, const FieldDescriptor* field) {
  const auto* r = message.GetReflection();
  const FieldDescriptor* key_field = field->message_type()->map_key();
  const FieldDescriptor* value_field = field->message_type()->map_value();
  std::vector<std::pair<std::string, Json>> entries;
  for (int i = 0; i < r->FieldSize(message, field); ++i) {
    const Message& entry = r->GetRepeatedMessage(message, field, i);
    Json key = ValueToJson(entry, key_field, -1);
    entries.emplace_back(key.is_string() ? key.get<std::string>() : key.dump(),
                         ValueToJson(entry, value_field, -1));
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  Json out = Json::object();
  for (auto& [k, v] : entries) out[k] = std::move(v);
  return out;
}

// Adds `field` to `out` under its proto name unless Go's omitempty would drop it: zero scalars,
// empty lists and maps, unset messages.
void AddField(const Message& message, const FieldDescriptor* field, Json& out) {
  const auto* r = message.GetReflection();
  if (field->is_map()) {
    if (r->FieldSize(message, field) > 0) out[field->name()] = MapToJson(message, field);
  } else if (field->is_repeated()) {
    if (r->FieldSize(message, field) == 0) return;
    Json list = Json::array();
    for (int i = 0; i < r->FieldSize(message, field); ++i) {
      list.push_back(ValueToJson(message, field, i));
    }
    out[field->name()] = std::move(list);
  } else if (r->HasField(message, field)) {
    out[field->name()] = ValueToJson(message, field, -1);
  }
}

// BuildKit gives pb.Op, pb.FileAction and pb.UserOpt hand-written MarshalJSON methods
// (solver/pb/json.go) that nest their oneof under "Op", "Action" and "User".
Json OneofWrapped(const Message& message, const std::string& oneof_name) {
  const auto* r = message.GetReflection();
  Json inner = Json::object();
  const FieldDescriptor* set =
      r->GetOneofFieldDescriptor(message, message.GetDescriptor()->FindOneofByName(oneof_name));
  if (set == nullptr) return inner;
  if (set->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    inner[set->name()] = ValueToJson(message, set, -1);
  } else if (r->GetUInt32(message, set) != 0) {
    inner["byId"] = r->GetUInt32(message, set);  // UserOpt.byID; json.go spells it "byId"
  }
  return inner;
}

Json MessageToJson(const Message& message) {
  const auto* d = message.GetDescriptor();
  const auto* r = message.GetReflection();
  Json out = Json::object();
  if (d->full_name() == "pb.Op") {
    AddField(message, d->FindFieldByName("inputs"), out);
    out["Op"] = OneofWrapped(message, "op");
    AddField(message, d->FindFieldByName("platform"), out);
    AddField(message, d->FindFieldByName("constraints"), out);
    return out;
  }
  if (d->full_name() == "pb.FileAction") {
    for (const char* name : {"input", "secondaryInput", "output"}) {
      out[name] = r->GetInt64(message, d->FindFieldByName(name));
    }
    out["Action"] = OneofWrapped(message, "action");
    return out;
  }
  if (d->full_name() == "pb.UserOpt") {
    out["User"] = OneofWrapped(message, "user");
    return out;
  }
  for (int i = 0; i < d->field_count(); ++i) AddField(message, d->field(i), out);
  return out;
}

}  // namespace

std::string DefinitionToJson(const pb::Definition& definition) {
  std::string out;
  for (const std::string& bytes : definition.def()) {
    const std::string digest = Sha256Digest(bytes);
    Json line = Json::object();
    pb::Op op;
    if (!op.ParseFromString(bytes)) {
      line["Digest"] = digest;
      line["Error"] = "cannot parse op";
    } else {
      line["Op"] = MessageToJson(op);
      line["Digest"] = digest;
      auto it = definition.metadata().find(digest);
      line["OpMetadata"] =
          MessageToJson(it == definition.metadata().end() ? pb::OpMetadata() : it->second);
    }
    out += internal::GoJsonDump(line);
    out += '\n';
  }
  return out;
}

}  // namespace kiln::llb
