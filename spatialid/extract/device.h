// Resolving `--device=cpu|cuda|cuda:N` to a device the run can use, before
// anything loads.
//
// One binary serves CPU and GPU machines: it links libtorch's CUDA libraries
// whenever the libtorch it was built against has them
// (third_party/libtorch.bzl, tools/build_without_bazel.sh), and their static
// initialisers register CUDA's device guard (libc10_cuda) and CUDA kernels
// (libtorch_cuda) with the dispatcher. Whether that happened is a fact of the
// build, and whether a GPU is there is a fact of the machine; a user who asks
// for CUDA gets one line saying which of the two is missing, instead of a
// libtorch stack trace after minutes of loading:
//   - the build has no CUDA (a CPU-only libtorch): rebuild, or use the CPU;
//   - the build links CUDA's runtime but no CUDA kernels are registered (the
//     linker dropped libtorch_cuda.so as unneeded: a build bug);
//   - CUDA is built in but the machine shows no usable GPU (no driver, no
//     device, CUDA_VISIBLE_DEVICES empty), with the CUDA runtime's reason;
//   - `cuda:N` past the devices the process can see.
// `--device=cuda` means cuda:0, so the model's device compares equal to the
// devices of the tensors it creates.
//
// Only c10 and the dispatcher's header are included: the CUDA runtime's
// reason for "no device" is looked up with dlsym, so no CUDA header or
// library is needed to compile or link this.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(c10::Device device, ResolveDevice(flag_value));
#pragma once

#include <dlfcn.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/Device.h>
#include <c10/core/DispatchKey.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace spatialid::extract {

// What this process's libtorch offers for CUDA; `ProbeCuda()` reads it, tests
// pass made-up ones.
struct CudaProbe {
  bool runtime_linked = false;      // libc10_cuda registered CUDA's device guard
  bool kernels_registered = false;  // libtorch_cuda registered aten::mm for CUDA
  int device_count = 0;             // GPUs this process can see
  std::string no_device_reason;     // the CUDA runtime's words when device_count is 0
};

// True when libtorch_cuda's kernels are in the dispatcher: the check that the
// CUDA libraries were linked without --as-needed. No device is touched.
inline bool CudaKernelsRegistered() {
  const std::optional<c10::OperatorHandle> mm =
      c10::Dispatcher::singleton().findSchema({"aten::mm", ""});
  return mm.has_value() && mm->hasKernelForDispatchKey(c10::DispatchKey::CUDA);
}

namespace device_internal {
// The CUDA runtime's explanation of a zero device count, if the runtime is
// loaded (it is whenever libc10_cuda is).
inline std::string CudaRuntimeNoDeviceReason() {
  using GetDeviceCount = int (*)(int*);
  using GetErrorString = const char* (*)(int);
  auto count = reinterpret_cast<GetDeviceCount>(dlsym(RTLD_DEFAULT, "cudaGetDeviceCount"));
  auto text = reinterpret_cast<GetErrorString>(dlsym(RTLD_DEFAULT, "cudaGetErrorString"));
  if (count == nullptr) return "";
  int n = 0;
  const int err = count(&n);
  if (err == 0) return n == 0 ? "cudaGetDeviceCount: 0 devices" : "";
  // 35 (cudaErrorInsufficientDriver) is also what a machine without any
  // NVIDIA driver gets; say so, the runtime's words suggest an old driver.
  return absl::StrCat("cudaGetDeviceCount: ", text != nullptr ? text(err) : "error", " (error ",
                      err, err == 35 ? ": no NVIDIA driver, or one older than this CUDA runtime)" : ")");
}

inline std::string VisibleDevicesNote() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  if (v == nullptr) return "";
  return absl::StrCat("; CUDA_VISIBLE_DEVICES=\"", v, "\"");
}
}  // namespace device_internal

// Reads what this process's libtorch offers. Counting devices initialises
// nothing beyond the CUDA runtime's device query.
inline CudaProbe ProbeCuda() {
  CudaProbe p;
  p.runtime_linked = c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA);
  p.kernels_registered = CudaKernelsRegistered();
  if (p.runtime_linked) {
    p.device_count = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->deviceCount();
    if (p.device_count == 0) p.no_device_reason = device_internal::CudaRuntimeNoDeviceReason();
  }
  return p;
}

// `value` is the flag's text; `flag` names the flag in messages.
inline absl::StatusOr<c10::Device> ResolveDevice(std::string_view value, const CudaProbe& probe,
                                                 std::string_view flag = "--device") {
  const std::string v(value);
  const std::string what = absl::StrCat(std::string(flag), "=", v);
  if (v == "cpu") return c10::Device(c10::DeviceType::CPU);
  int index = 0;
  const bool cuda = v == "cuda" || (v.rfind("cuda:", 0) == 0 && v.size() > 5 && v.size() <= 8 &&
                                    v.find_first_not_of("0123456789", 5) == std::string::npos &&
                                    absl::SimpleAtoi(v.substr(5), &index));
  if (!cuda) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected cpu, cuda or cuda:N"));
  }
  if (!probe.runtime_linked) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": this build of spatialid has no CUDA (it was built against a CPU-only libtorch, "
              "without libtorch_cuda.so and libc10_cuda.so); use --device=cpu, or rebuild against "
              "a CUDA libtorch such as the pinned torch wheel's (README, section GPU)"));
  }
  if (!probe.kernels_registered) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": this build links CUDA's runtime but registers no CUDA kernels (libtorch_cuda.so "
              "was dropped at link time; link it between -Wl,--no-as-needed and -Wl,--as-needed "
              "as third_party/libtorch.bzl does)"));
  }
  if (probe.device_count == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": no usable GPU: this build has CUDA, but the CUDA runtime finds no device (",
        probe.no_device_reason.empty() ? "no reason given" : probe.no_device_reason,
        device_internal::VisibleDevicesNote(), "); use --device=cpu on this machine"));
  }
  if (index >= probe.device_count) {
    return absl::OutOfRangeError(absl::StrCat(
        what, ": no such GPU: this process sees ", probe.device_count, " (cuda:0",
        probe.device_count > 1 ? absl::StrCat(" to cuda:", probe.device_count - 1) : "",
        device_internal::VisibleDevicesNote(), ")"));
  }
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index));
}

inline absl::StatusOr<c10::Device> ResolveDevice(std::string_view value,
                                                 std::string_view flag = "--device") {
  // The CPU needs no probe: a CPU run never asks the CUDA runtime anything.
  if (value == "cpu") return c10::Device(c10::DeviceType::CPU);
  return ResolveDevice(value, ProbeCuda(), flag);
}

}  // namespace spatialid::extract
