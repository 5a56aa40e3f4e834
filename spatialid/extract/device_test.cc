// --device resolution: every message a user can get, from made-up probes,
// and the real probe of this test binary against what the build linked
// (@libtorch//:build_info): with a CUDA libtorch the dispatcher must hold
// CUDA kernels and CUDA's device guard, without one neither.
#include "spatialid/extract/device.h"

#include <stdlib.h>

#include <string>

#include "gtest/gtest.h"
#include "libtorch/build_info.h"

namespace spatialid::extract {
namespace {

CudaProbe Gpus(int n) {
  CudaProbe p;
  p.runtime_linked = p.kernels_registered = true;
  p.device_count = n;
  if (n == 0) p.no_device_reason = "cudaGetDeviceCount: no CUDA-capable device is detected (error 100)";
  return p;
}

TEST(ResolveDevice, CpuNeedsNoCuda) {
  absl::StatusOr<c10::Device> d = ResolveDevice("cpu", CudaProbe{});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->is_cpu());
  // The overload that probes by itself does not probe for the CPU.
  ASSERT_TRUE(ResolveDevice("cpu").ok());
}

TEST(ResolveDevice, CudaMeansDeviceZeroAndIndicesAreChecked) {
  absl::StatusOr<c10::Device> d = ResolveDevice("cuda", Gpus(2));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, c10::Device(c10::DeviceType::CUDA, 0));
  d = ResolveDevice("cuda:1", Gpus(2));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->index(), 1);
  d = ResolveDevice("cuda:2", Gpus(2));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(d.status().message(), "--device=cuda:2: no such GPU: this process sees 2 (cuda:0 to cuda:1)");
  d = ResolveDevice("cuda:7", Gpus(1));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "--device=cuda:7: no such GPU: this process sees 1 (cuda:0)");
}

TEST(ResolveDevice, MalformedValues) {
  for (const char* bad : {"gpu", "CUDA", "cuda:", "cuda:-1", "cuda:+1", "cuda:x", "cuda:1x",
                          "cuda:123456", "cuda0", " cpu", ""}) {
    absl::StatusOr<c10::Device> d = ResolveDevice(bad, Gpus(8));
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(d.status().message(),
              std::string("--device=") + bad + ": expected cpu, cuda or cuda:N");
  }
}

TEST(ResolveDevice, BuildWithoutCudaIsToldApartFromMachineWithoutGpu) {
  absl::StatusOr<c10::Device> no_build = ResolveDevice("cuda", CudaProbe{});
  ASSERT_FALSE(no_build.ok());
  EXPECT_EQ(no_build.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(no_build.status().message().find("--device=cuda: this build of spatialid has no CUDA"),
            std::string::npos)
      << no_build.status();

  CudaProbe dropped;  // libc10_cuda linked, libtorch_cuda dropped by --as-needed
  dropped.runtime_linked = true;
  dropped.device_count = 1;
  absl::StatusOr<c10::Device> no_kernels = ResolveDevice("cuda:0", dropped);
  ASSERT_FALSE(no_kernels.ok());
  EXPECT_NE(no_kernels.status().message().find("registers no CUDA kernels"), std::string::npos)
      << no_kernels.status();

  ::unsetenv("CUDA_VISIBLE_DEVICES");
  absl::StatusOr<c10::Device> no_gpu = ResolveDevice("cuda:7", Gpus(0), "--gpu");
  ASSERT_FALSE(no_gpu.ok());
  EXPECT_EQ(no_gpu.status().message(),
            "--gpu=cuda:7: no usable GPU: this build has CUDA, but the CUDA runtime finds no "
            "device (cudaGetDeviceCount: no CUDA-capable device is detected (error 100)); use "
            "--device=cpu on this machine");
  ::setenv("CUDA_VISIBLE_DEVICES", "", 1);
  no_gpu = ResolveDevice("cuda", Gpus(0));
  ASSERT_FALSE(no_gpu.ok());
  EXPECT_NE(no_gpu.status().message().find("; CUDA_VISIBLE_DEVICES=\"\")"), std::string::npos)
      << no_gpu.status();
  ::unsetenv("CUDA_VISIBLE_DEVICES");
  for (const absl::Status& s : {no_build.status(), no_kernels.status(), no_gpu.status()}) {
    EXPECT_EQ(std::string(s.message()).find('\n'), std::string::npos) << s;
  }
}

// The real thing: this binary links @libtorch exactly as the examples do.
TEST(ProbeCuda, MatchesWhatTheBuildLinked) {
  const CudaProbe p = ProbeCuda();
  EXPECT_EQ(p.runtime_linked, libtorch_build::kHasCuda) << "libtorch at " << libtorch_build::kRoot;
  EXPECT_EQ(p.kernels_registered, libtorch_build::kHasCuda) << "libtorch at " << libtorch_build::kRoot;
  EXPECT_EQ(CudaKernelsRegistered(), libtorch_build::kHasCuda);
  if (!libtorch_build::kHasCuda) EXPECT_EQ(p.device_count, 0);
  // Whatever this machine has, --device=cuda either resolves or says why in one line.
  absl::StatusOr<c10::Device> d = ResolveDevice("cuda");
  if (!d.ok()) {
    EXPECT_EQ(std::string(d.status().message()).find('\n'), std::string::npos) << d.status();
    const bool says_no_build =
        d.status().message().find("has no CUDA") != std::string_view::npos;
    EXPECT_EQ(says_no_build, !libtorch_build::kHasCuda) << d.status();
  } else {
    EXPECT_GT(p.device_count, 0);
  }
}

}  // namespace
}  // namespace spatialid::extract
