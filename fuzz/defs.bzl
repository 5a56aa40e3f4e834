"""libFuzzer targets run as Bazel tests.

Each target is one `.cc` file defining `LLVMFuzzerTestOneInput`. The test
compiles it with clang (`-fsanitize=fuzzer,address,undefined`) against the
header-only sources listed in `srcs_deps`, runs it over its seed corpus
(`corpus/<name>/`) and then for a fixed time budget, and fails on any crash,
leak, sanitizer report or timeout. Before fuzzing it replays every file of
`findings/<name>/` (what earlier campaigns found) as a regression input, so a
finding that crashes again fails the run whatever the fuzzing budget finds.
Adding a target is one `.cc` file, a seed folder and one
`spatialid_fuzz_test` line in fuzz/BUILD.bazel.
"""

def spatialid_fuzz_test(
        name,
        src,
        srcs_deps = [],
        libs = [],
        dict = None,
        max_total_time = 20,
        max_len = 0,
        size = "medium",
        **kwargs):
    """A libFuzzer target compiled and run for `max_total_time` seconds.

    Args:
      name: the test name; seeds are read from corpus/<name>/.
      src: the .cc file with LLVMFuzzerTestOneInput.
      srcs_deps: header files (labels) the target includes, so they are in
        the test's runfiles; the workspace root is the include path.
      libs: extra link flags, e.g. ["-labsl_strings"].
      dict: an optional libFuzzer dictionary file.
      max_total_time: fuzzing budget in seconds after the seeds ran.
      max_len: the largest input libFuzzer generates (0: its default).
    """
    findings = native.glob(["findings/%s/**" % name])
    data = [src, "//fuzz:run_fuzzer.sh"] + srcs_deps + findings + native.glob(["corpus/%s/**" % name])
    args = [
        "--name=%s" % name,
        "--src=$(location %s)" % src,
        "--max_total_time=%d" % max_total_time,
        "--max_len=%d" % max_len,
        "--libs=%s" % ",".join(libs),
    ]
    if findings:
        args.append("--findings=fuzz/findings/%s" % name)
    if dict:
        data.append(dict)
        args.append("--dict=$(location %s)" % dict)
    native.sh_test(
        name = name,
        srcs = ["//fuzz:run_fuzzer.sh"],
        args = args,
        data = data,
        size = size,
        tags = kwargs.pop("tags", []) + ["fuzz"],
        **kwargs
    )
