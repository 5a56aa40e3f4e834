"""Bazel macros shared by spatialid's packages."""

def spatialid_py_test(name, src, data = [], args = [], size = "medium", **kwargs):
    """A Python unittest file run with the project venv's interpreter.

    The venv (torch, transformers, tokenizers, Pillow...) is the oracle for
    the C++ code: tests put the C++ binaries they drive in `data` and find
    them through runfiles paths. Each test case is reported in the JUnit XML
    Bazel collects, so the suite's totals count test cases, not targets.
    """
    native.sh_test(
        name = name,
        srcs = ["//tools:run_py_test.sh"],
        args = ["$(location //tools:run_py_test.py)", "$(location %s)" % src] + args,
        data = [src, "//tools:run_py_test.py", "//tests/python:oracle_lib"] + data,
        size = size,
        **kwargs
    )
