"""tools/build_without_bazel.sh: the no-Bazel build a GPU machine uses.

Builds small_id_grid, grid_data and device_probe from the checkout with g++,
third_party/carry/ and the venv's libtorch, then:
- grid_data's PNGs are byte-identical to the Bazel-built grid_data's;
- small_id_grid's four .pt files (IDs, axes, text embeddings) on the tiny
  LLaVA of the e2e test hold exactly the tensors the Bazel-built binary
  writes (the e2e test holds those to the reference recipe);
- the script-built binaries link libtorch's CUDA libraries and their
  --device=cuda says "no usable GPU" (this machine has none) in one line;
- against a CPU-only libtorch (the wheel's lib/ without libtorch_cuda.so and
  libc10_cuda.so, in a folder of links) the build still passes, links no
  CUDA, and --device=cuda says the build has no CUDA.
Objects are kept in ~/.cache/spatialid/nobazel-ci between runs (the script
recompiles only what changed), under a lock so concurrent runs do not mix.
"""
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

import torch

import oracle_lib

SCRIPT = os.path.realpath(oracle_lib.runfile("tools/build_without_bazel.sh"))
REPO = os.path.dirname(os.path.dirname(SCRIPT))  # the checkout the runfiles point into
BAZEL_GRID_DATA = oracle_lib.runfile("examples/grid_data")
BAZEL_SMALL_ID_GRID = oracle_lib.runfile("examples/small_id_grid")
MAKE_TINY = oracle_lib.runfile("tools/make_tiny_llava.py")
CACHE = os.path.join(os.environ.get("SPATIALID_HOME") or os.path.expanduser("~/.cache/spatialid"), "nobazel-ci")
CODEPOINTS = {"camel": "1F42B", "frog": "1F438"}


def needed(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


def build(out, targets, env=None):
    start = time.time()
    proc = subprocess.run([SCRIPT, f"--out={out}", *targets], capture_output=True, text=True,
                          env=env or os.environ.copy())
    print(proc.stderr.strip())
    if proc.returncode != 0:
        raise AssertionError(f"build_without_bazel.sh {' '.join(targets)} exited {proc.returncode}:\n{proc.stderr}")
    return time.time() - start


def flatten(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, path + (k,))
    else:
        yield path, obj


class BuildWithoutBazelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.makedirs(CACHE, exist_ok=True)
        cls.lock = open(os.path.join(CACHE, "lock"), "w")
        fcntl.flock(cls.lock, fcntl.LOCK_EX)
        cls.out = os.path.join(CACHE, "venv-libtorch")
        seconds = build(cls.out, ["small_id_grid", "grid_data", "device_probe"])
        print(f"no-Bazel build of small_id_grid, grid_data, device_probe: {seconds:.0f} s")
        cls.bin = os.path.join(cls.out, "bin")
        cls.tmp = os.path.join(oracle_lib.tmpdir(), "nobazel")
        shutil.rmtree(cls.tmp, ignore_errors=True)
        os.makedirs(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        fcntl.flock(cls.lock, fcntl.LOCK_UN)
        cls.lock.close()

    def draw(self, grid_data, name):
        objects = os.path.join(self.tmp, "objects")
        if not os.path.isdir(objects):
            os.makedirs(objects)
            for obj, cp in CODEPOINTS.items():
                oracle_lib.run(["rsvg-convert", "-w", "512", "-h", "512", "-f", "png", "-o",
                                os.path.join(objects, obj + ".png"),
                                os.path.join(oracle_lib.assets_dir(), "openmoji", cp + ".svg")])
        out = os.path.join(self.tmp, name)
        oracle_lib.run([grid_data, f"--objects_dir={objects}", f"--out={out}", "--pairs=camel_frog",
                        "--sizes=224"])
        return out

    def test_grid_data_and_small_id_grid_match_bazel(self):
        ours = self.draw(os.path.join(self.bin, "grid_data"), "grid_script")
        theirs = self.draw(BAZEL_GRID_DATA, "grid_bazel")
        files = sorted(os.path.relpath(os.path.join(d, f), ours) for d, _, fs in os.walk(ours) for f in fs)
        self.assertEqual(len(files), 240)
        for f in files:
            with open(os.path.join(ours, f), "rb") as a, open(os.path.join(theirs, f), "rb") as b:
                self.assertEqual(a.read(), b.read(), f)

        model = os.path.join(self.tmp, "tiny-llava")
        oracle_lib.run([sys.executable, MAKE_TINY, model, "--size", "test", "--dtype", "float32", "--seed", "7"])
        outs = {}
        for name, binary in (("script", os.path.join(self.bin, "small_id_grid")), ("bazel", BAZEL_SMALL_ID_GRID)):
            outs[name] = os.path.join(self.tmp, f"ids_{name}")
            start = time.time()
            oracle_lib.run([binary, "--model=llava-7b", f"--model_dir={model}", "--dtype=float32", "--quiet",
                            "--batch_size=5", "--threads=2", f"--images={ours}", f"--out={outs[name]}",
                            "--name=tiny"])
            print(f"{name} small_id_grid: {time.time() - start:.1f} s")
        for stem in ("tiny", "tiny_x", "tiny_y", "tiny_text"):
            a = torch.load(os.path.join(outs["script"], stem + ".pt"), weights_only=True)
            b = torch.load(os.path.join(outs["bazel"], stem + ".pt"), weights_only=True)
            la, lb = dict(flatten(a)), dict(flatten(b))
            self.assertEqual(set(la), set(lb), stem)
            self.assertGreater(len(la), 0, stem)
            for key, t in lb.items():
                self.assertEqual(la[key].dtype, t.dtype, (stem, key))
                self.assertTrue(torch.equal(la[key], t), f"{stem} {key}: max diff {(la[key] - t).abs().max()}")
            with open(os.path.join(outs["script"], stem + ".pt"), "rb") as fa, \
                    open(os.path.join(outs["bazel"], stem + ".pt"), "rb") as fb:
                same = fa.read() == fb.read()
            print(f"{stem}.pt: {len(la)} tensors equal; files byte-identical: {same}")

    def test_cuda_linked_and_no_gpu_said_in_one_line(self):
        has_cuda = os.path.isfile(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cuda.so"))
        self.assertTrue(has_cuda, "the pinned torch wheel ships libtorch_cuda.so")
        for name in ("small_id_grid", "device_probe"):
            libs = needed(os.path.join(self.bin, name))
            self.assertIn("libtorch_cuda.so", libs, name)
            self.assertIn("libc10_cuda.so", libs, name)
        proc = subprocess.run([os.path.join(self.bin, "device_probe"), "cuda"], capture_output=True, text=True)
        probe = json.loads(proc.stdout)
        self.assertTrue(probe["kernels_registered"], probe)
        self.assertTrue(probe["runtime_linked"], probe)
        count = probe["device_count"]  # 0 here; a GPU machine gets the out-of-range message
        value = f"cuda:{max(count, 7)}"
        proc = subprocess.run([os.path.join(self.bin, "small_id_grid"), f"--device={value}",
                               f"--model_dir={self.tmp}"], capture_output=True, text=True)
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn(f"small_id_grid: error: --device={value}: "
                      + ("no such GPU" if count else "no usable GPU: this build has CUDA"), lines[0])

    def test_cpu_only_libtorch_builds_and_says_no_cuda(self):
        # A libtorch without CUDA libraries: links to every file of the wheel's
        # lib/ but libtorch_cuda*.so, libc10_cuda.so and nvrtc, in a layout
        # where libtorch_cpu's $ORIGIN-relative RPATH still finds the CUDA
        # runtime it was built against (a real CPU-only libtorch needs none).
        real = os.path.dirname(torch.__file__)
        sim = os.path.join(self.tmp, "cpu_only")
        shutil.rmtree(sim, ignore_errors=True)
        os.makedirs(os.path.join(sim, "torch", "lib"))
        os.symlink(os.path.join(real, "include"), os.path.join(sim, "torch", "include"))
        os.symlink(os.path.join(real, "..", "nvidia"), os.path.join(sim, "nvidia"))
        left_out = []
        for f in os.listdir(os.path.join(real, "lib")):
            if re.match(r"lib(torch_cuda|c10_cuda|caffe2_nvrtc)", f):
                left_out.append(f)
                continue
            os.symlink(os.path.join(real, "lib", f), os.path.join(sim, "torch", "lib", f))
        self.assertIn("libtorch_cuda.so", left_out)
        env = dict(os.environ, LIBTORCH_PATH=os.path.join(sim, "torch"))
        out = os.path.join(CACHE, "cpu-only-libtorch")
        seconds = build(out, ["device_probe"], env=env)
        print(f"CPU-only libtorch: device_probe built in {seconds:.0f} s")
        binary = os.path.join(out, "bin", "device_probe")
        libs = needed(binary)
        self.assertIn("libtorch_cpu.so", libs)
        self.assertNotIn("libtorch_cuda.so", libs)
        self.assertNotIn("libc10_cuda.so", libs)
        proc = subprocess.run([binary, "cuda"], capture_output=True, text=True)
        probe = json.loads(proc.stdout)
        print(probe)
        self.assertEqual(proc.returncode, 1)
        self.assertFalse(probe["runtime_linked"])
        self.assertFalse(probe["kernels_registered"])
        self.assertIn("--device=cuda: this build of spatialid has no CUDA", probe["message"])
        proc = subprocess.run([binary, "cpu"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout)


if __name__ == "__main__":
    unittest.main()
