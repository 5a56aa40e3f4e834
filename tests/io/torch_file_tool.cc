// Drives spatialid's .pt and safetensors writers for the Python oracle
// (torch_file_oracle_test.py).
//
//   torch_file_tool --mode=sample --out=x.pt [--zip64_threshold=N]
//       writes the fixed sample dict (every key type, nesting, dtype, empty
//       dicts and tensors, > 64 KiB tensors, every f16/bf16 bit pattern);
//       torch_file_oracle_test.py builds the same dict in Python.
//   torch_file_tool --mode=rewrite --in=a.pt --out=b.pt
//       reads a.pt (e.g. written by torch.save) and writes it again.
//   torch_file_tool --mode=safetensors_sample --out=x.safetensors
//       writes a flat sample map with metadata.
//   torch_file_tool --mode=large --out=x.pt
//       writes {0: uint8[2^32 + 100] (zeros, 7 at every 2^30-th byte and at
//       the end), 1: float32[3]}: a record and an offset past 4 GiB, for a
//       manual zip64 check (needs ~4.3 GB of memory and disk; not in CI).
#include <cstdint>
#include <iostream>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "spatialid/io/safetensors_writer.h"
#include "spatialid/io/torch_file_reader.h"
#include "spatialid/io/torch_file_writer.h"

ABSL_FLAG(std::string, mode, "", "sample | rewrite | safetensors_sample | large");
ABSL_FLAG(std::string, in, "", "input .pt file (rewrite)");
ABSL_FLAG(std::string, out, "", "output file");
ABSL_FLAG(uint64_t, zip64_threshold, 0xFFFFFFFFu,
          "sizes and offsets >= this are written in zip64 form (lower it to test zip64)");

namespace {

using spatialid::io::PtDict;
using spatialid::io::PtKey;

// ((i * 37) % 255 - 127) / 4: exact in float32, float16 and bfloat16.
at::Tensor Values(int64_t n, at::ScalarType dtype) {
  return at::arange(n, at::kLong).mul(37).remainder(255).sub(127).to(at::kFloat).div(4).to(dtype);
}

// n float32 bit patterns from a multiplicative hash (NaNs and infinities included).
at::Tensor Float32Patterns(int64_t n) {
  at::Tensor u = at::arange(n, at::kLong).mul(2654435761LL).bitwise_and(0xFFFFFFFFLL);
  u = at::where(u.ge(int64_t{1} << 31), u.sub(int64_t{1} << 32), u);
  return u.to(at::kInt).view(at::kFloat);
}

PtDict Sample() {
  PtDict d;
  d[12]["universal"][PtKey::Tuple(3, 0, 224)] = Values(4096, at::kFloat);
  d[12]["universal"][PtKey::Tuple(0, 3, 74)] = Values(4096, at::kHalf);
  d[12]["universal"][PtKey::Tuple(1, 1, 124)] = Values(4096, at::kBFloat16);
  d[0];  // an empty dict
  d[-7]["x"] = at::scalar_tensor(2.5, at::kFloat);
  d[int64_t{1} << 40][PtKey::Tuple()] = at::empty({0}, at::kFloat);
  d["fr\xc3\xb6g \xe2\x9c\x93"][PtKey::Tuple(5)] = Values(6, at::kHalf).reshape({2, 3});
  d["fr\xc3\xb6g \xe2\x9c\x93"][PtKey::Tuple(1, 2, 3, 4, 5)] = at::empty({3, 0, 2}, at::kBFloat16);
  d[PtKey::Tuple(-1, int64_t{1} << 33)]["nested"]["deeper"]["deepest"] = Values(3, at::kFloat);
  d["bits"]["f16"] = at::arange(65536, at::kInt).to(at::kShort).view(at::kHalf);
  d["bits"]["bf16"] = at::arange(65536, at::kInt).to(at::kShort).view(at::kBFloat16);
  d["bits"]["f32"] = Float32Patterns(100000);
  d["big"] = Values(300 * 257, at::kFloat).reshape({300, 257});
  d["noncontig"] = Values(35, at::kFloat).reshape({7, 5}).t();
  at::Tensor shared = Values(10, at::kFloat);
  d["shared"]["a"] = shared;
  d["shared"]["b"] = shared;
  d["other"]["f64"] = Values(5, at::kDouble);
  d["other"]["i64"] = at::arange(-3, 3, at::kLong).mul(int64_t{1} << 40);
  d["other"]["i32"] = at::arange(-3, 3, at::kInt);
  d["other"]["i16"] = at::arange(-3, 3, at::kShort);
  d["other"]["i8"] = at::arange(-3, 3, at::kChar);
  d["other"]["u8"] = at::arange(250, 256, at::kInt).to(at::kByte);
  d["other"]["bool"] = at::arange(6, at::kLong).remainder(2).to(at::kBool);
  for (int i = 0; i < 1500; ++i) d["many"][i] = at::full({1}, static_cast<double>(i), at::kFloat);
  return d;
}

absl::Status Run() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  spatialid::io::TorchFileWriteOptions options;
  options.zip.zip64_threshold = absl::GetFlag(FLAGS_zip64_threshold);
  if (mode == "sample") return spatialid::io::WriteTorchFile(out, Sample(), options);
  if (mode == "rewrite") {
    auto v = spatialid::io::ReadTorchFile(absl::GetFlag(FLAGS_in));
    if (!v.ok()) return v.status();
    return spatialid::io::WriteTorchFile(out, *v, options);
  }
  if (mode == "safetensors_sample") {
    std::map<std::string, at::Tensor> t;
    t["layer.12.universal"] = Values(4096, at::kFloat);
    t["f16"] = Values(1000, at::kHalf).reshape({10, 100});
    t["bf16.bits"] = at::arange(65536, at::kInt).to(at::kShort).view(at::kBFloat16);
    t["scalar"] = at::scalar_tensor(-1.25, at::kFloat);
    t["empty"] = at::empty({0, 3}, at::kHalf);
    t["noncontig"] = Values(12, at::kFloat).reshape({3, 4}).t();
    return spatialid::io::WriteSafetensors(out, t, {{"model", "llava-7b"}, {"format", "pt"}});
  }
  if (mode == "large") {
    const int64_t n = (int64_t{1} << 32) + 100;
    at::Tensor big = at::zeros({n}, at::kByte);
    for (int64_t i = 0; i < n; i += int64_t{1} << 30) big[i] = 7;
    big[n - 1] = 7;
    PtDict d;
    d[0] = big;
    d[1] = Values(3, at::kFloat);
    return spatialid::io::WriteTorchFile(out, d, options);
  }
  return absl::InvalidArgumentError("--mode must be sample, rewrite, safetensors_sample or large");
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Writes and rewrites .pt / safetensors files for the oracle tests.");
  absl::ParseCommandLine(argc, argv);
  absl::Status s = Run();
  if (!s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  return 0;
}
