// Helpers shared by the data engine's unit tests: a scratch folder per test
// and small synthetic RGBA objects with soft (partial-alpha) edges.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "spatialid/io/image.h"

namespace spatialid::data::testing {

// A fresh, empty folder under the test's temporary directory.
inline std::string ScratchDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") /
                              (std::string(info->test_suite_name()) + "." + info->name()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// A disc of colour (r, g, b) whose alpha falls from 255 in the middle to 0
// at the rim, on a transparent square of side `side`.
inline io::Image SoftDisc(int side, uint8_t r, uint8_t g, uint8_t b) {
  io::Image img(side, side, 4, 0);
  const double c = (side - 1) / 2.0;
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      const double d = std::hypot(x - c, y - c) / (side / 2.0);
      const double a = d < 0.5 ? 1.0 : (d < 1.0 ? 2 * (1.0 - d) : 0.0);
      img.at(x, y, 0) = r;
      img.at(x, y, 1) = static_cast<uint8_t>(g + x % 7);
      img.at(x, y, 2) = b;
      img.at(x, y, 3) = static_cast<uint8_t>(a * 255 + 0.5);
    }
  }
  return img;
}

// Writes each (name, image) as `{ScratchDir("objects")}/{name}.png` and
// returns the folder.
inline std::string WriteObjects(const std::vector<std::pair<std::string, io::Image>>& objects) {
  const std::string dir = ScratchDir("objects");
  for (const auto& [name, image] : objects) {
    EXPECT_TRUE(io::SavePng(dir + "/" + name + ".png", image).ok()) << name;
  }
  return dir;
}

}  // namespace spatialid::data::testing
