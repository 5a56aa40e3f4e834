// Copies small host tensors (positions, indices) to the model's device
// without stalling the host on a GPU.
//
// A copy from pageable host memory to CUDA waits until the GPU has run
// everything queued before it, so one per batch serialises the loader with
// the model. Through pinned memory the copy is queued like a kernel
// (libtorch keeps the pinned block alive until the copy has run). On the
// CPU it is a plain copy.
#pragma once

#include <ATen/core/Tensor.h>

namespace spatialid::nn {

inline at::Tensor UploadAsync(const at::Tensor& host, at::Device device) {
  if (!device.is_cuda() || !host.device().is_cpu()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace spatialid::nn
