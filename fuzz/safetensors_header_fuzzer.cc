// Fuzzes the safetensors header parser with whole files.
//
// Beyond "no crash", every accepted header must satisfy the invariants the
// loader relies on (ranges inside the file, sizes matching shapes, no
// overlaps); each tensor's bytes are read so ASan sees any range outside the
// input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "spatialid/io/safetensors_header.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<spatialid::io::SafetensorsHeader> header =
      spatialid::io::ParseSafetensorsHeader(file, "fuzz.safetensors");
  if (!header.ok()) {
    Check(header.status().message().find("fuzz.safetensors") != std::string_view::npos);
    return 0;
  }
  Check(header->data_offset == 8 + header->header_size);
  Check(header->data_offset <= size);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  unsigned sum = 0;
  for (const auto& [name, t] : header->tensors) {
    Check(t.name == name);
    Check(t.begin >= header->data_offset && t.begin <= t.end && t.end <= size);
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      Check(d >= 0);
      numel *= static_cast<uint64_t>(d);
    }
    Check(numel * spatialid::io::SafetensorsDtypeSize(t.dtype) == t.num_bytes());
    if (t.num_bytes() > 0) {
      sum += data[t.begin] + data[t.end - 1];
      ranges.emplace_back(t.begin, t.end);
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) Check(ranges[i].first >= ranges[i - 1].second);
  return static_cast<int>(sum & 0);
}
