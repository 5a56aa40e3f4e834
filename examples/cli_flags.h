// Command-line parsing shared by every binary in examples/.
//
// abseil's --help lists only the flags defined in a file named after the
// program (small_id_grid.cc), so binaries whose flags live in a shared file
// (experiment_main.cc, grid_job_main.h's macro) printed "No flags matched".
// ParseFlags lists the flags of every examples/ source the binary links
// instead, and treats a help or version request as a success (exit 0), as
// shell scripts and man-page generators expect.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <vector>

#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/string_view.h"

namespace spatialid::examples {

// True for a flag defined in a source under an examples/ folder: the
// binaries' own flags, not those of libraries they might link.
inline bool IsExamplesFlagFile(absl::string_view file) {
  return std::filesystem::path(std::string(file)).parent_path().filename() == "examples";
}

// absl::ParseCommandLine with the two changes above; returns the positional
// arguments (argv[0] first). Unknown flags still end the program with
// abseil's one-line error and exit 1.
inline std::vector<char*> ParseFlags(int argc, char** argv, absl::string_view usage) {
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  config.contains_help_flags = IsExamplesFlagFile;
  config.contains_helpshort_flags = IsExamplesFlagFile;
  absl::SetFlagsUsageConfig(config);
  namespace fi = absl::flags_internal;
  std::vector<char*> rest =
      fi::ParseCommandLineImpl(argc, argv, fi::ArgvListAction::kRemoveParsedArgs,
                               fi::UsageFlagsAction::kIgnoreUsage,
                               fi::OnUndefinedFlag::kAbortIfUndefined);
  // -1: no --help/--helpfull/--version... on the command line.
  if (fi::HandleUsageFlags(std::cout, absl::ProgramUsageMessage()) != -1) {
    std::cout.flush();
    std::exit(0);
  }
  return rest;
}

}  // namespace spatialid::examples
