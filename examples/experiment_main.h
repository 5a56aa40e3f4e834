// Entry point shared by the two experiment binaries (see experiment_main.cc).
#pragma once

namespace spatialid::examples {

enum class ExperimentKind { kGrid, kBatch };

// Parses flags, runs the experiment, prints an error as one line; returns
// the process exit code.
int ExperimentMain(ExperimentKind kind, int argc, char** argv, const char* usage);

}  // namespace spatialid::examples
