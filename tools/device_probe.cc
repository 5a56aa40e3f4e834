// device_probe: what this build's libtorch offers for CUDA, and what
// `--device=VALUE` resolves to, in one JSON line on stdout.
//
//   device_probe [VALUE]      (default VALUE: cuda)
//   {"runtime_linked":true,"kernels_registered":true,"device_count":0,
//    "device":"cuda","ok":false,"message":"--device=cuda: no usable GPU: ..."}
//
// Exit status 0 when VALUE resolves, 1 when it does not (the message says
// why, as the experiment binaries would). It links libtorch exactly as they
// do, so tools/gpu_check.sh runs it first on a GPU machine, and the tests
// build it against a CPU-only libtorch to show the build still passes and
// says it has no CUDA.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "spatialid/extract/device.h"

int main(int argc, char** argv) {
  const std::string value = argc > 1 ? argv[1] : "cuda";
  const spatialid::extract::CudaProbe probe = spatialid::extract::ProbeCuda();
  const absl::StatusOr<c10::Device> device =
      value == "cpu" ? spatialid::extract::ResolveDevice(value)
                     : spatialid::extract::ResolveDevice(value, probe);
  nlohmann::json out = {{"runtime_linked", probe.runtime_linked},
                        {"kernels_registered", probe.kernels_registered},
                        {"device_count", probe.device_count},
                        {"device", value},
                        {"ok", device.ok()}};
  if (device.ok()) {
    out["resolved"] = device->str();
  } else {
    out["message"] = std::string(device.status().message());
  }
  std::printf("%s\n", out.dump().c_str());
  return device.ok() ? 0 : 1;
}
