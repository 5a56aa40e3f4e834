"""One binary for CPU and GPU: what the Bazel-built experiment binaries link
and say, on a machine without a usable GPU (CI) or with one.

- small_id_grid and batch_extraction NEED libtorch_cuda.so and libc10_cuda.so
  exactly when the libtorch the build found has them (@libtorch//:build_info.h);
- the dispatcher of a binary linked the same way (tools/device_probe) holds
  CUDA kernels for aten::mm and CUDA's device guard, again exactly then;
- --device=cuda, cuda:0 and cuda:7 fail with one line and exit 1 before any
  weights load (the checkpoint's weights file here is garbage: reading it
  would be a different error), saying "no usable GPU" on a CUDA build without
  a GPU and "has no CUDA" on a CPU-only build;
- weights that cannot fit in memory in float32 are refused in one line
  before loading, naming the --dtype that fits (a sparse checkpoint whose
  header declares more weights than this machine has memory).
"""
import json
import os
import re
import struct
import subprocess
import unittest

import oracle_lib

SMALL_ID_GRID = oracle_lib.runfile("examples/small_id_grid")
BATCH_EXTRACTION = oracle_lib.runfile("examples/batch_extraction")
DEVICE_PROBE = oracle_lib.runfile("tools/device_probe")


def build_has_cuda():
    path = os.path.join(os.environ.get("TEST_SRCDIR", ""), "libtorch", "build_info.h")
    with open(path) as f:
        m = re.search(r"kHasCuda = (true|false);", f.read())
    assert m, path
    return m.group(1) == "true"


def needed(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


def probe(value="cuda"):
    proc = subprocess.run([DEVICE_PROBE, value], capture_output=True, text=True)
    return proc.returncode, json.loads(proc.stdout)


def write_llava_config(folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"],
                   "text_config": {"model_type": "llama"}, "vision_config": {"model_type": "clip_vision_model"}},
                  f)


class CudaLinkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.has_cuda = build_has_cuda()
        cls.tmp = os.path.join(oracle_lib.tmpdir(), "cuda_link")
        os.makedirs(cls.tmp, exist_ok=True)
        _, cls.probe = probe()
        print(f"libtorch has CUDA: {cls.has_cuda}; probe: {cls.probe}")

    def test_examples_link_the_cuda_libraries(self):
        for binary in (SMALL_ID_GRID, BATCH_EXTRACTION, DEVICE_PROBE):
            libs = needed(binary)
            self.assertIn("libtorch_cpu.so", libs, binary)
            for lib in ("libtorch_cuda.so", "libc10_cuda.so"):
                self.assertEqual(lib in libs, self.has_cuda, f"{binary}: {lib} in NEEDED {sorted(libs)}")

    def test_dispatcher_holds_cuda_kernels(self):
        self.assertEqual(self.probe["kernels_registered"], self.has_cuda, self.probe)
        self.assertEqual(self.probe["runtime_linked"], self.has_cuda, self.probe)
        rc, cpu = probe("cpu")
        self.assertEqual(rc, 0, cpu)
        self.assertEqual(cpu["resolved"], "cpu")

    def test_device_cuda_fails_in_one_line_before_loading(self):
        model = os.path.join(self.tmp, "garbage_weights")
        write_llava_config(model)
        with open(os.path.join(model, "model.safetensors"), "wb") as f:
            f.write(b"not a safetensors file")
        count = self.probe["device_count"]
        values = ["cuda", "cuda:0", "cuda:7"] if count == 0 else [f"cuda:{count}"]
        for binary in (SMALL_ID_GRID, BATCH_EXTRACTION):
            for value in values:
                proc = subprocess.run([binary, "--model=llava-7b", f"--model_dir={model}",
                                       f"--images={self.tmp}/none", f"--out={self.tmp}/out", f"--device={value}"],
                                      capture_output=True, text=True)
                what = f"{os.path.basename(binary)} --device={value}"
                self.assertEqual(proc.returncode, 1, f"{what}: {proc.stderr}")
                lines = proc.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, f"{what}: {proc.stderr}")
                line = lines[0]
                print(line)
                self.assertTrue(line.startswith(f"{os.path.basename(binary)}: error: --device={value}: "), line)
                if count > 0:
                    self.assertIn("no such GPU", line)
                elif self.has_cuda:
                    self.assertIn("no usable GPU: this build has CUDA", line)
                    self.assertNotIn("has no CUDA", line)
                else:
                    self.assertIn("this build of spatialid has no CUDA", line)
                self.assertNotIn("safetensors", line)
                self.assertEqual(proc.stdout, "")

    def test_weights_that_cannot_fit_are_refused_before_loading(self):
        with open("/proc/meminfo") as f:
            available = int(re.search(r"MemAvailable:\s+(\d+) kB", f.read()).group(1)) * 1024
        # float32 needs 1.5x what is available; bfloat16 (+10% headroom) about 0.83x.
        elements = int(available * 1.5 / 4)
        cols = 1 << 20
        rows = elements // cols
        model = os.path.join(self.tmp, "too_big")
        write_llava_config(model)
        header = json.dumps({"model.embed_tokens.weight": {"dtype": "F16", "shape": [rows, cols],
                                                           "data_offsets": [0, rows * cols * 2]}}).encode()
        path = os.path.join(model, "model.safetensors")
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header)
            f.truncate(8 + len(header) + rows * cols * 2)  # sparse: no disk is used
        # Layouts drawn in memory from two plain object images: the image
        # source is opened (and checked) before the checkpoint.
        from PIL import Image
        objects = os.path.join(self.tmp, "objects")
        os.makedirs(objects, exist_ok=True)
        for name, colour in (("camel", (200, 150, 50, 255)), ("frog", (40, 180, 40, 255))):
            Image.new("RGBA", (64, 64), colour).save(os.path.join(objects, name + ".png"))
        try:
            proc = subprocess.run([SMALL_ID_GRID, "--model=llava-7b", f"--model_dir={model}",
                                   f"--objects_dir={objects}", f"--out={self.tmp}/out_fit", "--device=cpu"],
                                  capture_output=True, text=True)
        finally:
            os.remove(path)
        lines = proc.stderr.strip().splitlines()
        print("\n".join(lines))
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(len(lines), 1, proc.stderr)
        gib = rows * cols * 4 / 2**30
        self.assertRegex(lines[0], r"^small_id_grid: error: llava-7b weights need " + f"{gib:.1f}".replace(".", r"\.")
                         + r" GiB in float32 \(\+[\d.]+ GiB headroom\) but [\d.]+ GiB are available "
                         r"\((MemAvailable|cgroup memory limit)\); --dtype=bfloat16 needs [\d.]+ GiB")


if __name__ == "__main__":
    unittest.main()
