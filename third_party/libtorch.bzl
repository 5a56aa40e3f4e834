"""Repository rule that exposes the libtorch inside PyPI's `torch` wheel.

Lookup order: $LIBTORCH_PATH (a folder holding include/ and lib/), then the
`torch` package of $SPATIALID_PYTHON (the project venv set up by
tools/setup.sh), then python3 on PATH.
"""

def _find_torch_root(rctx):
    explicit = rctx.os.environ.get("LIBTORCH_PATH", "")
    if explicit:
        return explicit
    for py in [rctx.os.environ.get("SPATIALID_PYTHON", ""), "python3"]:
        if not py:
            continue
        res = rctx.execute([py, "-c", "import os, torch; print(os.path.dirname(torch.__file__))"])
        if res.return_code == 0:
            return res.stdout.strip()
    fail("libtorch not found: set LIBTORCH_PATH to a folder with include/ and lib/, " +
         "or run tools/setup.sh so SPATIALID_PYTHON has the pinned torch wheel")

def _libtorch_impl(rctx):
    root = _find_torch_root(rctx)
    for sub in ["include", "lib"]:
        if not rctx.path(root + "/" + sub).exists:
            fail("libtorch at %s has no %s/ folder" % (root, sub))
        rctx.symlink(root + "/" + sub, sub)
    rctx.file("BUILD.bazel", """
package(default_visibility = ["//visibility:public"])

# CPU libtorch. The CUDA libraries are deliberately not linked here: the GPU
# build (tools/build_gpu.sh) links them without --as-needed so their kernels
# register.
cc_library(
    name = "libtorch",
    hdrs = glob(["include/**/*.h", "include/**/*.hpp", "include/**/*.cuh"], allow_empty = True),
    includes = ["include", "include/torch/csrc/api/include"],
    # Linked by -l against the real folder, not copied into Bazel's solib
    # tree: libtorch_cpu finds the CUDA runtime it was built against through
    # an $ORIGIN-relative RPATH, which only resolves from the wheel's folder.
    linkopts = [
        "-LROOT/lib",
        "-Wl,-rpath,ROOT/lib",
        "-Wl,-rpath-link,ROOT/../nvidia/cuda_runtime/lib",
        "-Wl,-rpath-link,ROOT/../nvidia/cuda_cupti/lib",
        "-ltorch_cpu",
        "-lc10",
        "-lpthread",
    ],
)
""".replace("ROOT", root))

libtorch_repository = repository_rule(
    implementation = _libtorch_impl,
    environ = ["LIBTORCH_PATH", "SPATIALID_PYTHON"],
    local = True,
)
