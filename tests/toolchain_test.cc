// Guards the build setup itself: libtorch, abseil and GoogleTest link and
// agree on the C++ ABI.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace {

absl::StatusOr<int64_t> Numel(const at::Tensor& t) {
  if (!t.defined()) return absl::InvalidArgumentError("undefined tensor");
  return t.numel();
}

TEST(Toolchain, LibtorchAndAbseilLink) {
  at::Tensor t = at::arange(6, at::kFloat).reshape({2, 3});
  auto n = Numel(t);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 6);
  EXPECT_FLOAT_EQ(t.sum().item<float>(), 15.0f);
  EXPECT_EQ(absl::StrCat("n=", *n), "n=6");
  EXPECT_FALSE(Numel(at::Tensor()).ok());
}

}  // namespace
