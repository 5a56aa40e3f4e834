// Dumps every weight of a model folder as JSON, for the Python oracle test:
// {"name": {"dtype": "F32", "shape": [..], "hex": "<raw little-endian bytes>"}}.
//
//   safetensors_dump --model_dir=DIR [--dtype=keep|f32|f16|bf16] --out=FILE
#include <cstdio>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "spatialid/io/checkpoint.h"

ABSL_FLAG(std::string, model_dir, "", "Folder with model.safetensors, a sharded index or *.safetensors.");
ABSL_FLAG(std::string, dtype, "keep",
          "Load every tensor as this dtype: keep (the stored one), f32, f16 or bf16.");
ABSL_FLAG(std::string, out, "", "JSON file to write (name -> dtype, shape, hex bytes).");

namespace {

const char* Name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    default: return "?";
  }
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "safetensors_dump: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Dumps a model folder's safetensors weights as JSON with raw bytes.");
  absl::ParseCommandLine(argc, argv);
  const std::string dtype_flag = absl::GetFlag(FLAGS_dtype);
  if (absl::GetFlag(FLAGS_model_dir).empty() || absl::GetFlag(FLAGS_out).empty()) {
    return Fail("--model_dir and --out are required");
  }
  absl::StatusOr<spatialid::io::Checkpoint> ckpt =
      spatialid::io::Checkpoint::Open(absl::GetFlag(FLAGS_model_dir));
  if (!ckpt.ok()) return Fail(std::string(ckpt.status().message()));
  nlohmann::json out = nlohmann::json::object();
  for (const std::string& name : ckpt->Names()) {
    at::ScalarType dt;
    if (dtype_flag == "keep") {
      auto st = spatialid::io::ToScalarType(ckpt->Info(name)->dtype);
      if (!st.ok()) return Fail(std::string(st.status().message()) + " (" + name + ")");
      dt = *st;
    } else if (dtype_flag == "f32") {
      dt = at::kFloat;
    } else if (dtype_flag == "f16") {
      dt = at::kHalf;
    } else if (dtype_flag == "bf16") {
      dt = at::kBFloat16;
    } else {
      return Fail("--dtype must be keep, f32, f16 or bf16, not " + dtype_flag);
    }
    absl::StatusOr<at::Tensor> t = ckpt->Load(name, dt, at::kCPU);
    if (!t.ok()) return Fail(std::string(t.status().message()));
    at::Tensor c = t->contiguous();
    static const char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(c.nbytes() * 2);
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    for (size_t i = 0; i < c.nbytes(); ++i) {
      hex.push_back(kHex[p[i] >> 4]);
      hex.push_back(kHex[p[i] & 15]);
    }
    out[name] = {{"dtype", Name(c.scalar_type())}, {"shape", c.sizes().vec()}, {"hex", hex}};
  }
  const std::string path = absl::GetFlag(FLAGS_out);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << out.dump();
    if (!f) return Fail(path + ": cannot write");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Fail(path + ": cannot rename into place");
  return 0;
}
