// Parsing and strict validation of a safetensors file header.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON, then the data area. The JSON maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// data area) plus an optional "__metadata__" string map. Checkpoints come
// from the internet, so everything is checked before a byte of tensor data is
// touched: the length is bounded, the JSON must be well formed with no
// duplicate keys, every field has its type, offsets lie inside the file and
// do not overlap, and shape x element size equals the byte length (with
// overflow checks). A truncated or hostile file yields an error naming the
// file and the tensor, never a crash or a read out of bounds.
//
// This header needs no libtorch, so the libFuzzer target in fuzz/ drives it
// directly.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(SafetensorsHeader h,
//                              ParseSafetensorsHeader(file_bytes, "model.safetensors"));
//   const SafetensorsTensorInfo* w = h.Find("lm_head.weight");
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace spatialid::io {
namespace internal {
// Debian's abseil has its own string_view type, which StrCat needs.
inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }
}  // namespace internal

// Element types the safetensors format defines. Only kF32, kF16 and kBF16 can
// be loaded into tensors; the others parse (so a header is fully validated)
// and loading them is an error naming the tensor and its dtype.
enum class SafetensorsDtype {
  kBool, kU8, kI8, kU16, kI16, kU32, kI32, kU64, kI64,
  kF8E4M3, kF8E5M2, kF16, kBF16, kF32, kF64,
};

// The spelling used in headers ("F32", "BF16", ...).
inline std::string_view SafetensorsDtypeName(SafetensorsDtype d) {
  switch (d) {
    case SafetensorsDtype::kBool: return "BOOL";
    case SafetensorsDtype::kU8: return "U8";
    case SafetensorsDtype::kI8: return "I8";
    case SafetensorsDtype::kU16: return "U16";
    case SafetensorsDtype::kI16: return "I16";
    case SafetensorsDtype::kU32: return "U32";
    case SafetensorsDtype::kI32: return "I32";
    case SafetensorsDtype::kU64: return "U64";
    case SafetensorsDtype::kI64: return "I64";
    case SafetensorsDtype::kF8E4M3: return "F8_E4M3";
    case SafetensorsDtype::kF8E5M2: return "F8_E5M2";
    case SafetensorsDtype::kF16: return "F16";
    case SafetensorsDtype::kBF16: return "BF16";
    case SafetensorsDtype::kF32: return "F32";
    case SafetensorsDtype::kF64: return "F64";
  }
  return "?";
}

inline std::optional<SafetensorsDtype> SafetensorsDtypeFromName(std::string_view s) {
  static constexpr SafetensorsDtype kAll[] = {
      SafetensorsDtype::kBool, SafetensorsDtype::kU8,     SafetensorsDtype::kI8,
      SafetensorsDtype::kU16,  SafetensorsDtype::kI16,    SafetensorsDtype::kU32,
      SafetensorsDtype::kI32,  SafetensorsDtype::kU64,    SafetensorsDtype::kI64,
      SafetensorsDtype::kF8E4M3, SafetensorsDtype::kF8E5M2, SafetensorsDtype::kF16,
      SafetensorsDtype::kBF16, SafetensorsDtype::kF32,    SafetensorsDtype::kF64,
  };
  for (SafetensorsDtype d : kAll) {
    if (SafetensorsDtypeName(d) == s) return d;
  }
  return std::nullopt;
}

inline size_t SafetensorsDtypeSize(SafetensorsDtype d) {
  switch (d) {
    case SafetensorsDtype::kBool:
    case SafetensorsDtype::kU8:
    case SafetensorsDtype::kI8:
    case SafetensorsDtype::kF8E4M3:
    case SafetensorsDtype::kF8E5M2: return 1;
    case SafetensorsDtype::kU16:
    case SafetensorsDtype::kI16:
    case SafetensorsDtype::kF16:
    case SafetensorsDtype::kBF16: return 2;
    case SafetensorsDtype::kU32:
    case SafetensorsDtype::kI32:
    case SafetensorsDtype::kF32: return 4;
    case SafetensorsDtype::kU64:
    case SafetensorsDtype::kI64:
    case SafetensorsDtype::kF64: return 8;
  }
  return 0;
}

// True for the dtypes spatialid loads into tensors.
inline bool IsLoadableSafetensorsDtype(SafetensorsDtype d) {
  return d == SafetensorsDtype::kF32 || d == SafetensorsDtype::kF16 ||
         d == SafetensorsDtype::kBF16;
}

struct SafetensorsTensorInfo {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;
  // Absolute byte range in the file: [begin, end).
  uint64_t begin = 0;
  uint64_t end = 0;

  uint64_t num_bytes() const { return end - begin; }
};

struct SafetensorsHeader {
  // Size of the JSON header in bytes (the leading 8-byte field).
  uint64_t header_size = 0;
  // Absolute offset of the data area: 8 + header_size.
  uint64_t data_offset = 0;
  // Tensors by name.
  std::map<std::string, SafetensorsTensorInfo, std::less<>> tensors;
  // The "__metadata__" map (e.g. {"format": "pt"}); empty when absent.
  std::map<std::string, std::string> metadata;

  const SafetensorsTensorInfo* Find(std::string_view name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }
};

// Headers of real checkpoints are a few hundred KiB; the Rust reference
// implementation caps them at 100 MB. A larger value is corruption or an
// attempt to make us allocate.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

namespace internal {

inline std::string FormatShape(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Reads a non-negative JSON integer (nlohmann stores non-negative numbers as
// unsigned; a negative one arrives as number_integer and is refused).
inline bool JsonToU64(const nlohmann::json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

}  // namespace internal

// Parses and validates the header of a safetensors file whose complete
// contents are `file` (normally a memory mapping). `path` only names the file
// in error messages.
inline absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view file,
                                                                std::string_view path) {
  using nlohmann::json;
  auto fail = [path = internal::AsAbsl(path)](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parts...));
  };
  if (file.size() < 8) {
    return fail("not a safetensors file: ", file.size(),
                " bytes, too short for the 8-byte header length");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[i]);
  if (n > kMaxSafetensorsHeaderBytes) {
    return fail("header length ", n, " exceeds the ", kMaxSafetensorsHeaderBytes,
                "-byte limit (corrupt or not a safetensors file)");
  }
  if (n > file.size() - 8) {
    return fail("truncated: header length ", n, " but only ", file.size() - 8,
                " bytes follow the length field");
  }
  if (n < 2) return fail("header of ", n, " bytes cannot hold a JSON object");

  SafetensorsHeader header;
  header.header_size = n;
  header.data_offset = 8 + n;
  const uint64_t data_size = file.size() - header.data_offset;
  const std::string_view text = file.substr(8, n);

  // nlohmann keeps the last of duplicate keys silently; a header with two
  // entries for one tensor is ambiguous, so top-level duplicates are refused
  // through the parser callback (depth 1 = keys of the root object).
  std::string duplicate;
  bool has_duplicate = false;
  std::set<std::string, std::less<>> seen;
  // A valid header nests three levels (root, entry, shape); anything deeper is
  // refused during parsing, before nlohmann's recursive copies could see it.
  struct TooDeep {};
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start ||
         event == json::parse_event_t::array_start) &&
        depth >= 3) {
      throw TooDeep{};
    }
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && !has_duplicate) {
        has_duplicate = true;
        duplicate = key;
      }
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const TooDeep&) {
    return fail("header JSON nests deeper than a safetensors header can");
  } catch (const json::exception& e) {
    return fail("header is not valid JSON: ", e.what());
  }
  if (!root.is_object()) return fail("header JSON is not an object");
  if (has_duplicate) return fail("tensor \"", duplicate, "\": listed twice in the header");

  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return fail("__metadata__ is not an object of strings");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) {
          return fail("__metadata__.", m.key(), ": expected a string");
        }
        header.metadata.emplace(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    auto bad = [&](auto&&... parts) { return fail("tensor \"", name, "\": ", parts...); };
    if (!entry.is_object()) return bad("entry is not an object");
    SafetensorsTensorInfo info;
    info.name = name;

    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) return bad("missing string field \"dtype\"");
    const std::string& dtype_name = dt->get_ref<const std::string&>();
    std::optional<SafetensorsDtype> dtype = SafetensorsDtypeFromName(dtype_name);
    if (!dtype) return bad("unknown dtype \"", dtype_name, "\"");
    info.dtype = *dtype;

    auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) return bad("missing array field \"shape\"");
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : *sh) {
      uint64_t v = 0;
      if (!internal::JsonToU64(d, &v) || v > static_cast<uint64_t>(INT64_MAX)) {
        return bad("\"shape\" must hold non-negative integers");
      }
      info.shape.push_back(static_cast<int64_t>(v));
      overflow = overflow || __builtin_mul_overflow(numel, v, &numel);
    }
    uint64_t expected_bytes = 0;
    overflow = overflow ||
               __builtin_mul_overflow(numel, SafetensorsDtypeSize(info.dtype), &expected_bytes);

    auto off = entry.find("data_offsets");
    uint64_t begin = 0, end = 0;
    if (off == entry.end() || !off->is_array() || off->size() != 2 ||
        !internal::JsonToU64((*off)[0], &begin) || !internal::JsonToU64((*off)[1], &end)) {
      return bad("\"data_offsets\" must be an array of two non-negative integers");
    }
    if (begin > end) return bad("data_offsets [", begin, ", ", end, "] begin after end");
    if (end > data_size) {
      return bad("data_offsets [", begin, ", ", end, "] run past the data area of ", data_size,
                 " bytes (file truncated?)");
    }
    if (overflow || expected_bytes != end - begin) {
      return bad("shape ", internal::FormatShape(info.shape), " of ",
                 internal::AsAbsl(SafetensorsDtypeName(info.dtype)), " needs ",
                 overflow ? std::string("more than 2^64") : absl::StrCat(expected_bytes),
                 " bytes but data_offsets [", begin, ", ", end, "] span ", end - begin);
    }
    info.begin = header.data_offset + begin;
    info.end = header.data_offset + end;
    header.tensors.emplace(name, std::move(info));
  }

  // Overlap check: sort ranges by start; each must start at or after the end
  // of the one before. Empty tensors occupy no bytes and never overlap.
  std::vector<const SafetensorsTensorInfo*> by_offset;
  by_offset.reserve(header.tensors.size());
  for (const auto& [name, info] : header.tensors) {
    if (info.num_bytes() > 0) by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const SafetensorsTensorInfo* a, const SafetensorsTensorInfo* b) {
              return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
            });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const SafetensorsTensorInfo& prev = *by_offset[i - 1];
    const SafetensorsTensorInfo& cur = *by_offset[i];
    if (cur.begin < prev.end) {
      return fail("tensor \"", cur.name, "\": bytes [", cur.begin - header.data_offset, ", ",
                  cur.end - header.data_offset, ") overlap tensor \"", prev.name, "\" [",
                  prev.begin - header.data_offset, ", ", prev.end - header.data_offset, ")");
    }
  }
  return header;
}

}  // namespace spatialid::io
