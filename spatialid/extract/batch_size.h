// How many images one forward takes when the user leaves it to spatialid
// (`--batch_size=0`).
//
// On the CPU throughput is flat once a batch holds a few thousand tokens
// (the matmuls are already large: README.md, Performance), so a fixed
// batch keeps memory small: `kCpuAutoBatch`. On an accelerator the batch is
// sized from the device's free memory and a per-image estimate of the
// forward's working set, `kActivationWidths` hidden-size rows per token
// (a decoder layer's residual, norm, packed q/k/v, attention output and
// gate/up/product rows of the MLP at 2.7x hidden, plus the vision tower's
// narrower rows), capped at `kMaxAutoBatch` where GPU matmuls stop gaining.
// Free memory comes from the CUDA runtime when the process has one loaded
// (looked up at run time, so CPU-only builds need nothing); otherwise the
// CPU choice applies.
//
// Example:
//   const int batch = AutoBatchSize(model.device(), prompt.ids.size(), model.hidden_size(),
//                                   at::elementSize(model.dtype()));
#pragma once

#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#include <c10/core/Device.h>
#include <c10/core/DeviceGuard.h>

namespace spatialid::extract {

inline constexpr int kCpuAutoBatch = 8;
inline constexpr int kMaxAutoBatch = 64;
inline constexpr int64_t kActivationWidths = 24;
inline constexpr double kUsableFreeFraction = 0.8;  // headroom for allocator fragmentation

// Free bytes on a CUDA device, if the CUDA runtime is loaded in this process.
inline std::optional<size_t> CudaFreeBytes(const c10::Device& device) {
  if (!device.is_cuda()) return std::nullopt;
  using MemGetInfo = int (*)(size_t*, size_t*);
  auto mem_get_info = reinterpret_cast<MemGetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  if (mem_get_info == nullptr) return std::nullopt;
  const c10::DeviceGuard guard(device);  // cudaMemGetInfo reports the current device
  size_t free = 0, total = 0;
  if (mem_get_info(&free, &total) != 0) return std::nullopt;
  return free;
}

// Images per forward for sequences of `tokens` tokens of a model of width
// `hidden_size` whose activations take `element_bytes` each.
inline int AutoBatchSize(const c10::Device& device, int64_t tokens, int64_t hidden_size,
                         size_t element_bytes) {
  const std::optional<size_t> free = CudaFreeBytes(device);
  if (!free) return kCpuAutoBatch;
  const double per_image = static_cast<double>(std::max<int64_t>(tokens, 1)) *
                           static_cast<double>(std::max<int64_t>(hidden_size, 1)) *
                           static_cast<double>(kActivationWidths * element_bytes);
  const double fits = static_cast<double>(*free) * kUsableFreeFraction / per_image;
  return static_cast<int>(std::clamp(fits, 1.0, static_cast<double>(kMaxAutoBatch)));
}

}  // namespace spatialid::extract
