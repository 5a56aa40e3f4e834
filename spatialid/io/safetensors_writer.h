// Writes a flat name -> tensor map as a .safetensors file, the compact
// alternative to .pt outputs (no pickle, memory-mappable, readable from any
// language).
//
// Layout (as Python's `safetensors` writes it): an 8-byte little-endian
// header length, a JSON header `{"__metadata__": {str: str}, name:
// {"dtype", "shape", "data_offsets": [begin, end]}}` padded with spaces to a
// multiple of 8 bytes, then the tensors back to back, ordered by element
// size (largest first, so every tensor stays aligned to its element size)
// and then by name. The file is written atomically.
//
// Supported dtypes: float32 (F32), float16 (F16), bfloat16 (BF16), plus
// F64, I64, I32, I16, I8, U8 and BOOL. Tensors on other devices are copied
// to the CPU; non-contiguous ones are made contiguous.
//
// Example:
//   std::map<std::string, at::Tensor> t = {{"layer.12.x", x}, {"layer.12.y", y}};
//   SPATIALID_RETURN_IF_ERROR(WriteSafetensors("axes.safetensors", t, {{"model", "llava-7b"}}));
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/atomic_output_file.h"

namespace spatialid::io {

// The safetensors spelling of a dtype, or "" when it has none here.
inline std::string_view SafetensorsDtypeTag(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: return "";
  }
}

// Writes `tensors` (names must be unique) with optional string metadata.
inline absl::Status WriteSafetensors(const std::string& path,
                                     const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                     const std::map<std::string, std::string>& metadata = {}) {
  try {
    struct Item {
      std::string name;
      at::Tensor tensor;  // CPU, contiguous
      std::string dtype;
    };
    std::vector<Item> items;
    items.reserve(tensors.size());
    absl::flat_hash_set<std::string> seen;
    for (const auto& [name, original] : tensors) {
      if (name == "__metadata__") {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot write ", path, ": \"__metadata__\" is reserved, not a tensor name"));
      }
      if (!seen.insert(name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot write ", path, ": tensor name ", name, " appears twice"));
      }
      if (!original.defined() || original.layout() != at::kStrided || original.is_quantized()) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot write ", path, ": tensor ", name, " is not a dense tensor"));
      }
      const std::string_view tag = SafetensorsDtypeTag(original.scalar_type());
      if (tag.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot write ", path, ": tensor ", name, " has dtype ",
            c10::toString(original.scalar_type()), ", which safetensors files here do not hold"));
      }
      at::Tensor t = original;
      if (!t.device().is_cpu()) t = t.cpu();
      if (t.is_neg()) t = t.resolve_neg();
      items.push_back({name, t.contiguous(), std::string(tag)});
    }
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      if (a.tensor.element_size() != b.tensor.element_size()) {
        return a.tensor.element_size() > b.tensor.element_size();
      }
      return a.name < b.name;
    });

    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const Item& it : items) {
      const uint64_t n = it.tensor.nbytes();
      header[it.name] = {{"dtype", it.dtype},
                         {"shape", it.tensor.sizes().vec()},
                         {"data_offsets", {offset, offset + n}}};
      offset += n;
    }
    std::string json = header.dump();
    json.append((8 - json.size() % 8) % 8, ' ');
    const uint64_t header_len = json.size();

    auto out = AtomicOutputFile::Create(path);
    if (!out.ok()) return out.status();
    absl::Status s = out->Write(&header_len, sizeof(header_len));
    if (s.ok()) s = out->Write(json.data(), json.size());
    for (const Item& it : items) {
      if (!s.ok()) break;
      if (it.tensor.nbytes() > 0) s = out->Write(it.tensor.data_ptr(), it.tensor.nbytes());
    }
    if (!s.ok()) return s;
    return out->Commit();
  } catch (const std::exception& e) {
    // nlohmann rejects names or metadata that are not valid UTF-8.
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": ", e.what()));
  }
}

// The same for any map of names to tensors (std::map, absl::flat_hash_map...).
template <typename Map>
  requires std::convertible_to<typename Map::key_type, std::string> &&
           std::convertible_to<typename Map::mapped_type, at::Tensor>
absl::Status WriteSafetensors(const std::string& path, const Map& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  return WriteSafetensors(
      path, std::vector<std::pair<std::string, at::Tensor>>(tensors.begin(), tensors.end()),
      metadata);
}

}  // namespace spatialid::io
