"""Pillow is the oracle for the data engine.

The grid images spatialid writes must equal what the reference's
`paste_two_objects_on_grid` produces with Pillow on the same inputs: Lanczos
resize (through premultiplied RGBa), rotate with expand (NEAREST), centring
with int(), `canvas.paste(obj, box, obj)`, background `convert("RGBA")` then
`resize` (BICUBIC). Each case replays sampled layouts in Pillow with the
variation draws and background the C++ run recorded in its manifest, and
compares every value. The requirement is 99% of values within 1 grey level;
the engine is exact, and the tests assert that too. The resize, rotate and
paste primitives are also compared on random images of 1 to 4 channels.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import unittest

import numpy as np
from PIL import Image

# run_py_test.py puts only this file's folder on sys.path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import oracle_lib  # noqa: E402

TOOL = oracle_lib.runfile("tests/data/pillow_ops_tool")
GRID = oracle_lib.runfile("examples/grid_data")
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
SIZES = [224, 174, 124, 74]
CELL = 224


class Diff:
    """Running parity figures over many images."""

    def __init__(self, name):
        self.name, self.n, self.exact, self.within1, self.max = name, 0, 0, 0, 0
        self.images, self.shape_mismatches = 0, []

    def add(self, got, want, label):
        self.images += 1
        if got.shape != want.shape:
            self.shape_mismatches.append(f"{label}: {got.shape} vs {want.shape}")
            return
        d = np.abs(got.astype(np.int16) - want.astype(np.int16))
        self.n += d.size
        self.exact += int((d == 0).sum())
        self.within1 += int((d <= 1).sum())
        self.max = max(self.max, int(d.max()) if d.size else 0)

    def report(self):
        frac_exact = self.exact / max(self.n, 1)
        frac_within1 = self.within1 / max(self.n, 1)
        print(f"[parity] {self.name}: {self.images} images, {self.n} values, max abs diff {self.max}, "
              f"fraction exact {frac_exact:.6f}, fraction within 1 {frac_within1:.6f}", flush=True)
        return frac_exact, frac_within1

    def check(self, case):
        frac_exact, frac_within1 = self.report()
        case.assertEqual(self.shape_mismatches, [])
        case.assertGreater(self.n, 0)
        case.assertGreaterEqual(frac_within1, 0.99)
        case.assertEqual(self.max, 0, f"{self.name}: not bit-exact")


def run_tool(lines):
    proc = oracle_lib.run([TOOL], input="\n".join(lines) + "\n")
    results = proc.stdout.splitlines()
    assert len(results) == len(lines), proc.stdout
    for line, res in zip(lines, results):
        assert res == "ok", f"{line}: {res}"


def random_image(rng, w, h, c):
    arr = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if c in (2, 4):
        # Alpha mixes fully transparent, opaque and partial values, the
        # cases premultiplication treats differently.
        arr[..., -1] = np.where(rng.random((h, w)) < 0.3, 0,
                                np.where(rng.random((h, w)) < 0.5, 255, arr[..., -1]))
    return Image.fromarray(arr[..., 0] if c == 1 else arr, MODES[c])


class PrimitiveOracle(unittest.TestCase):
    """Resize, rotate and paste against Pillow on random images."""

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(oracle_lib.tmpdir(), "primitives")
        shutil.rmtree(cls.dir, ignore_errors=True)
        os.makedirs(cls.dir)
        rng = np.random.default_rng(0)
        cls.inputs = []
        for c in (1, 2, 3, 4):
            for w, h in [(1, 1), (7, 5), (64, 48), (301, 203)]:
                path = os.path.join(cls.dir, f"in_{c}_{w}x{h}.png")
                random_image(rng, w, h, c).save(path)
                cls.inputs.append((path, w, h, c))

    def test_resize_matches_pillow_up_and_down(self):
        lines, cases = [], []
        for path, w, h, c in self.inputs:
            for tw, th in [(1, 1), (3, 9), (2 * w + 1, h + 3), (max(1, w // 3), max(1, h // 2)),
                           (224, 224), (w, h)]:
                for name in FILTERS:
                    out = os.path.join(self.dir, f"resize_{len(cases)}.png")
                    lines.append(f"resize {path} {out} {tw} {th} {name}")
                    cases.append((path, out, (tw, th), name))
        run_tool(lines)
        per_filter = {name: Diff(f"resize {name}") for name in FILTERS}
        for path, out, size, name in cases:
            want = np.asarray(Image.open(path).resize(size, FILTERS[name]))
            per_filter[name].add(np.asarray(Image.open(out)), want, f"{path} -> {size} {name}")
        for diff in per_filter.values():
            diff.check(self)

    def test_rotate_matches_pillow(self):
        rnd = random.Random(1)
        angles = [0, 90, -90, 180, 270, 45, 12.345, -14.9, 1e-12, 359.99999, 720.5, -375.25]
        angles += [rnd.uniform(-15, 15) for _ in range(12)]
        lines, cases = [], []
        for path, w, h, c in self.inputs:
            for angle in angles:
                for expand in (0, 1):
                    out = os.path.join(self.dir, f"rotate_{len(cases)}.png")
                    lines.append(f"rotate {path} {out} {angle!r} {expand}")
                    cases.append((path, out, angle, expand))
        run_tool(lines)
        diff = Diff("rotate (NEAREST, expand and not)")
        for path, out, angle, expand in cases:
            want = np.asarray(Image.open(path).rotate(angle, expand=bool(expand)))
            diff.add(np.asarray(Image.open(out)), want, f"{path} {angle} {expand}")
        diff.check(self)

    def test_paste_with_own_alpha_matches_pillow(self):
        rng = np.random.default_rng(2)
        canvas = os.path.join(self.dir, "canvas.png")
        random_image(rng, 90, 70, 4).save(canvas)
        lines, cases = [], []
        for k, (w, h) in enumerate([(30, 20), (90, 70), (120, 100), (1, 1)]):
            obj = os.path.join(self.dir, f"obj_{k}.png")
            random_image(rng, w, h, 4).save(obj)
            for x, y in [(0, 0), (10, 5), (-7, -3), (80, 60), (-200, 0), (89, 69), (-29, 45)]:
                out = os.path.join(self.dir, f"paste_{len(cases)}.png")
                lines.append(f"paste {canvas} {obj} {out} {x} {y}")
                cases.append((obj, out, x, y))
        run_tool(lines)
        diff = Diff("paste(obj, box, mask=obj)")
        for obj, out, x, y in cases:
            want = Image.open(canvas).copy()
            src = Image.open(obj)
            want.paste(src, (x, y), src)
            diff.add(np.asarray(Image.open(out)), np.asarray(want), f"{obj} at {x},{y}")
        diff.check(self)


def reference_canvas(a_img, b_img, object_wh, cell_wh, a_cell, b_cell, variation, bg):
    """The reference's steps for one layout, verbatim in Pillow."""
    a_x, a_y = a_cell[0] * cell_wh, a_cell[1] * cell_wh
    b_x, b_y = b_cell[0] * cell_wh, b_cell[1] * cell_wh
    if variation:
        w_a = h_a = int(object_wh * variation["a_factor"])
        temp_a = a_img.resize((w_a, h_a), Image.LANCZOS)
        temp_a = temp_a.rotate(variation["a_angle"], expand=True)
        ow_a, oh_a = temp_a.size
        w_b = h_b = int(object_wh * variation["b_factor"])
        temp_b = b_img.resize((w_b, h_b), Image.LANCZOS)
        temp_b = temp_b.rotate(variation["b_angle"], expand=True)
        ow_b, oh_b = temp_b.size
    else:
        temp_a = a_img.resize((object_wh, object_wh), Image.LANCZOS)
        ow_a = oh_a = object_wh
        temp_b = b_img.resize((object_wh, object_wh), Image.LANCZOS)
        ow_b = oh_b = object_wh
    ax = int(a_x + (cell_wh - ow_a) / 2)
    ay = int(a_y + (cell_wh - oh_a) / 2)
    bx = int(b_x + (cell_wh - ow_b) / 2)
    by = int(b_y + (cell_wh - oh_b) / 2)
    canvas = bg.copy() if bg is not None else Image.new("RGBA", (cell_wh * 4, cell_wh * 4), (0, 0, 0, 0))
    canvas.paste(temp_a, (ax, ay), temp_a)
    canvas.paste(temp_b, (bx, by), temp_b)
    return canvas


def soft_object(rng, w, h):
    """A noisy colour blob whose alpha falls off smoothly, on transparency."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2.3) / (h / 2))
    alpha = np.clip((1.0 - r) * 3, 0, 1) * 255
    rgb = np.stack([xx * 255 / w, yy * 255 / h, 128 + 60 * np.sin(xx / 5.0)], -1)
    rgb = np.clip(rgb + rng.normal(0, 25, rgb.shape), 0, 255)
    return Image.fromarray(np.dstack([rgb, alpha]).astype(np.uint8), "RGBA")


class GridOracle(unittest.TestCase):
    """Whole grid images from //examples:grid_data against the reference's steps."""

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(oracle_lib.tmpdir(), "grid")
        shutil.rmtree(cls.dir, ignore_errors=True)
        cls.objects = os.path.join(cls.dir, "objects")
        os.makedirs(cls.objects)
        # Two real default objects, rendered as tools/setup.sh does.
        svgs = os.path.join(oracle_lib.assets_dir(), "openmoji")
        for name, code in [("camel", "1F42B"), ("frog", "1F438")]:
            oracle_lib.run(["rsvg-convert", "-w", "512", "-h", "512", "-f", "png", "-o",
                            os.path.join(cls.objects, name + ".png"), os.path.join(svgs, code + ".svg")])
        # A non-square object and a small one (upscaled for the big sizes).
        rng = np.random.default_rng(3)
        soft_object(rng, 300, 200).save(os.path.join(cls.objects, "blob.png"))
        soft_object(rng, 100, 100).save(os.path.join(cls.objects, "speck.png"))
        cls.images = {name: Image.open(os.path.join(cls.objects, name + ".png"))
                      for name in ("camel", "frog", "blob", "speck")}
        # Backgrounds, one per folder so each run uses a known one: an RGB
        # PNG, a grey PNG, and a 4:2:0 JPEG (decoded by libjpeg-turbo like Pillow).
        yy, xx = np.mgrid[0:333, 0:500]
        photo = np.stack([xx / 2, yy / 1.4, 128 + 100 * np.sin(xx / 23.0 + yy / 31.0)], -1)
        photo = np.clip(photo + rng.normal(0, 6, (333, 500, 3)), 0, 255).astype(np.uint8)
        cls.bg_dirs = {}
        for name, image, kw in [("street.png", Image.fromarray(photo), {}),
                                ("grey.png", Image.fromarray(photo[::2, ::3, 1]), {}),
                                ("field.JPG", Image.fromarray(photo), {"quality": 85})]:
            folder = os.path.join(cls.dir, "bg_" + name.replace(".", "_"))
            os.makedirs(folder)
            image.save(os.path.join(folder, name), **kw)
            cls.bg_dirs[name] = folder

    def generate(self, name, pairs, sizes, *flags):
        out = os.path.join(self.dir, name)
        manifest = out + ".jsonl"
        proc = oracle_lib.run([GRID, f"--objects_dir={self.objects}", f"--out={out}", f"--pairs={pairs}",
                               f"--sizes={','.join(map(str, sizes))}", "--threads=2",
                               f"--manifest={manifest}", *flags])
        with open(manifest) as f:
            recipes = [json.loads(line) for line in f]
        return out, recipes, proc

    def compare(self, name, out, recipes, sample, bg_dir=None):
        rnd = random.Random(name)
        chosen = rnd.sample(recipes, min(sample, len(recipes)))
        backgrounds = {}
        diff = Diff(name)
        for r in chosen:
            bg = None
            if r["background"]:
                if r["background"] not in backgrounds:
                    backgrounds[r["background"]] = Image.open(os.path.join(bg_dir, r["background"])) \
                        .convert("RGBA").resize((CELL * 4, CELL * 4))
                bg = backgrounds[r["background"]]
            want = reference_canvas(self.images[r["a"]], self.images[r["b"]], r["size"], CELL,
                                    r["a_cell"], r["b_cell"], r.get("variation"), bg)
            got = Image.open(os.path.join(out, r["path"]))
            self.assertEqual(got.mode, "RGBA")
            diff.add(np.asarray(got), np.asarray(want), r["path"])
            # What the model sees: convert("RGB") drops alpha.
            diff.add(np.asarray(got.convert("RGB")), np.asarray(want.convert("RGB")), r["path"] + " RGB")
        diff.check(self)
        return chosen

    def test_plain_layouts_all_sizes(self):
        out, recipes, _ = self.generate("plain", "camel_frog", SIZES)
        self.assertEqual(len(recipes), 4 * 240)
        for r in recipes:
            self.assertTrue(os.path.isfile(os.path.join(out, r["path"])), r["path"])
            self.assertNotIn("variation", r)
        chosen = self.compare("grid, no variation, sizes 224/174/124/74", out, recipes, 40)
        self.assertEqual({r["size"] for r in chosen}, set(SIZES))
        # A non-square object and a small one that gets upscaled.
        out, recipes, _ = self.generate("plain_odd", "blob_speck", SIZES, "--no_same_row_or_col")
        self.compare("grid, non-square and upscaled objects", out, recipes, 16)

    def test_local_variation_all_sizes(self):
        out, recipes, _ = self.generate("variation", "camel_frog", SIZES,
                                        "--local_variation", "--seed=11", "--no_same_row_or_col")
        v = [r["variation"] for r in recipes]
        self.assertTrue(all(0.95 <= x["a_factor"] < 1.05 and 0.9 <= x["b_factor"] < 1.1 for x in v))
        self.assertTrue(all(-15 <= x["a_angle"] < 15 and -15 <= x["b_angle"] < 15 for x in v))
        # B grown 10% and rotated spills out of its cell: clipping and
        # int() truncation of negative offsets are exercised.
        self.assertTrue(any(x["b_factor"] > 1.05 and abs(x["b_angle"]) > 10 for x in v))
        chosen = self.compare("grid, local variation (seed 11), sizes 224/174/124/74", out, recipes, 48)
        self.assertEqual({r["size"] for r in chosen}, set(SIZES))
        # Same seed, same draws; another seed, other draws.
        _, again, _ = self.generate("variation_again", "camel_frog", [74], "--local_variation",
                                    "--seed=11", "--no_same_row_or_col")
        first = {r["path"]: r["variation"] for r in recipes}
        self.assertTrue(all(first[r["path"]] == r["variation"] for r in again))
        _, other, _ = self.generate("variation_other", "camel_frog", [74], "--local_variation",
                                    "--seed=12", "--no_same_row_or_col")
        self.assertNotEqual(other[0]["variation"], first[other[0]["path"]])

    def test_backgrounds_png_grey_and_jpeg(self):
        for (name, folder), (sizes, flags) in zip(sorted(self.bg_dirs.items()), [
                ([174, 74], []), ([124], ["--local_variation"]), ([224], [])]):
            out, recipes, _ = self.generate("bg_" + name, "frog_camel", sizes, f"--bg_dir={folder}",
                                            "--no_same_row_or_col", *flags)
            self.assertEqual({r["background"] for r in recipes}, {name})
            self.compare(f"grid on background {name}", out, recipes, 10, folder)

    def test_no_same_row_or_col_and_resume(self):
        out, recipes, _ = self.generate("nosame", "frog_camel", [124, 74], "--no_same_row_or_col")
        self.assertEqual(len(recipes), 2 * 16 * 9)
        for r in recipes:
            self.assertNotEqual(r["a_cell"][0], r["b_cell"][0])
            self.assertNotEqual(r["a_cell"][1], r["b_cell"][1])
        files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
        self.assertEqual(len(files), 288)
        self.compare("grid, no shared row or column", out, recipes, 8)
        _, _, proc = self.generate("nosame", "frog_camel", [124, 74], "--no_same_row_or_col")
        self.assertIn("288 of 288 images already exist", proc.stderr)

    def test_bad_input_gives_one_line_and_nonzero_exit(self):
        for flags, needle in [
            ([f"--objects_dir={self.dir}/nowhere"], "objects folder not found"),
            ([f"--objects_dir={self.objects}", "--pairs=camel_unicorn"], "camel_unicorn"),
            ([f"--objects_dir={self.objects}", "--sizes=300"], "--sizes"),
            ([f"--objects_dir={self.objects}", f"--bg_dir={self.dir}/none"], "background folder"),
        ]:
            proc = subprocess.run([GRID, f"--out={self.dir}/bad", *flags], capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, flags)
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
            self.assertIn(needle, proc.stderr)


if __name__ == "__main__":
    unittest.main()
