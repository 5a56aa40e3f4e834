// What the shared blocks need from a state dict: a `WeightLoader`.
//
// Every block in spatialid/nn loads its tensors by Hugging Face name through
// a loader that hands out one tensor per name, already in the model's dtype
// and on its device, and remembers what went wrong (a missing key, a wrong
// shape) so the model can report everything at once after loading.
// `io::StateDictLoader` is the real one; tests may pass a map-backed one.
//
// Names are built from a prefix chain that mirrors the HF state dict, e.g.
// `Linear::Load(w, "model.language_model.layers.3.self_attn.q_proj", ...)`
// takes "<prefix>.weight" and, when asked, "<prefix>.bias".
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace spatialid::nn {

// A source of named weights. `Take(name, shape)` returns the tensor stored
// under `name` (checked against `shape`); a loader that cannot find it or
// finds another shape records the problem and may return an undefined tensor
// (the caller's final `Finish()` reports it).
template <typename L>
concept WeightLoader = requires(L& loader, const std::string& name,
                                const std::vector<int64_t>& shape) {
  { loader.Take(name, shape) } -> std::convertible_to<at::Tensor>;
};

// "a.b" + ".c" without a leading dot when the prefix is empty.
inline std::string Join(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  return prefix + "." + name;
}

}  // namespace spatialid::nn
