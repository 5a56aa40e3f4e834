"""Oracle for spatialid's streaming spatial-ID math.

Python draws random vectors for a synthetic pair set laid out like the real
one (16 A folders per pair, B never on A's cell, some images missing, one
flat folder, several tokens), computes the reference recipe directly with
torch (docs/reference_pipeline.md sections 4 to 7, written as the reference writes it: dicts of
stacks, centring per A folder, averaging, universal, axes in both variants),
runs the C++ tool on the same vectors, and compares every value:
  float32 outputs: |C++ - reference| within float32 rounding of the inputs;
  float16/bfloat16 outputs: C++ within 1 ulp of the float32 reference
  rounded to that dtype.
"""
import os
import shutil
import subprocess
import sys
import unittest

import torch

# run_py_test.py puts only this file's folder on sys.path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import oracle_lib  # noqa: E402

TOOL = oracle_lib.runfile("tests/extract/spatial_id_tool")
LAYERS = [0, 3, 7]
D = 24
SIZES = [224, 74]
MODEL = "tiny-vlm"


def make_inputs(seed=11):
    """{"layers", "pairs": {pair: {a: {token: {(x, y, s): [L, D]}}}}, "text"} in float32."""
    g = torch.Generator().manual_seed(seed)
    L = len(LAYERS)
    offset = torch.zeros(L, D)
    offset[:, :4] = 40.0  # a large common component, as hidden states have
    ex, ey = torch.randn(L, D, generator=g), torch.randn(L, D, generator=g)

    def vec(x, y, s, token_shift):
        return (offset + x * ex + y * ey + 0.01 * s * token_shift
                + 0.7 * torch.randn(L, D, generator=g))

    pairs = {}
    # Nested pairs: 16 A folders, B on every other cell, about 8% of images missing.
    for pair, tokens in [("camel_frog", ["rog"]), ("frog_camel", ["▁camel", "left", "right"]),
                         ("cake_dog", ["dog"])]:
        per_a = {}
        for ax in range(4):
            for ay in range(4):
                per_token = {}
                for ti, t in enumerate(tokens):
                    cells = {}
                    for bx in range(4):
                        for by in range(4):
                            if (bx, by) == (ax, ay):
                                continue
                            for s in SIZES:
                                if torch.rand(1, generator=g).item() < 0.08:
                                    continue
                                cells[(bx, by, s)] = vec(bx, by, s, ti + 1)
                    per_token[t] = cells
                per_a[f"{ax}_{ay}"] = per_token
        pairs[pair] = per_a
    # A flat folder: one A position holding every cell.
    pairs["dog_teapot"] = {"": {"pot": {(x, y, s): vec(x, y, s, 5)
                                        for x in range(4) for y in range(4) for s in SIZES}}}
    text = {"left": torch.randn(L, D, generator=g) * 5, "right": torch.randn(L, D, generator=g) * 5}
    return {"layers": torch.tensor(LAYERS), "pairs": pairs, "text": text}


def cast_inputs(inputs, dtype):
    def c(v):
        return {k: c(x) for k, x in v.items()} if isinstance(v, dict) else v.to(dtype)
    return {"layers": inputs["layers"], "pairs": c(inputs["pairs"]), "text": c(inputs["text"])}


# ---- the reference recipe, written directly ----

def reference_pair(per_a, acc=torch.float32):
    """compute_id: centre within each A folder (stack, subtract the mean), then
    average each key over the folders holding it, in `acc`. {L: {t: {key: v}}}."""
    centred = {}  # (layer index, token, key) -> list of centred vectors
    for a, per_token in per_a.items():
        for t, cells in per_token.items():
            keys = sorted(cells)
            stack = torch.stack([cells[k].to(acc) for k in keys])  # [K, L, D]
            stack = stack - stack.mean(0, keepdim=True)
            for k, v in zip(keys, stack):
                for li in range(len(LAYERS)):
                    centred.setdefault((li, t, k), []).append(v[li])
    out = {}
    for (li, t, k), vs in centred.items():
        out.setdefault(LAYERS[li], {}).setdefault(t, {})[k] = torch.stack(vs).mean(0)
    return out


def reference_universal(pair_dicts, acc=torch.float32):
    buckets = {}
    for ids in pair_dicts:
        for layer, per_token in ids.items():
            for t, per_key in per_token.items():
                for k, v in per_key.items():
                    buckets.setdefault(layer, {}).setdefault(k, []).append(v.to(acc))
    return {layer: {"universal": {k: torch.stack(vs).mean(0) for k, vs in per_key.items()}}
            for layer, per_key in buckets.items()}


def reference_axes(ids, size=224, strict=False, acc=torch.float32):
    ax, ay = {}, {}
    for layer, per_token in ids.items():
        ax[layer], ay[layer] = {}, {}
        for t, per_key in per_token.items():
            dx, dy = [], []
            for x in range(4):
                for y1 in range(3):
                    for y2 in range(y1 + (1 if strict else 0), 4):
                        if (x, y1, size) in per_key and (x, y2, size) in per_key:
                            dy.append(per_key[(x, y2, size)].to(acc) - per_key[(x, y1, size)].to(acc))
            for y in range(4):
                for x1 in range(3):
                    for x2 in range(x1 + (1 if strict else 0), 4):
                        if (x1, y, size) in per_key and (x2, y, size) in per_key:
                            dx.append(per_key[(x2, y, size)].to(acc) - per_key[(x1, y, size)].to(acc))
            if dx:
                ax[layer][t] = torch.stack(dx).mean(0)
            if dy:
                ay[layer][t] = torch.stack(dy).mean(0)
    return ax, ay


# ---- comparisons ----

def ordered_bits(t):
    """Integers that step by one per representable value (sign-magnitude unfolded)."""
    if t.dtype == torch.float32:
        b = t.view(torch.int32).to(torch.int64)
        return torch.where(b < 0, -(b & 0x7FFFFFFF), b)
    b = t.view(torch.int16).to(torch.int64)
    return torch.where(b < 0, -(b & 0x7FFF), b)


class Stats:
    def __init__(self):
        self.values = 0
        self.max_abs = 0.0        # C++ vs the float32 reference
        self.max_ulp = 0          # C++ vs the float32 reference rounded to the output dtype
        self.at_one_ulp = 0
        self.cpp_err64 = None     # C++ vs the float64 reference
        self.py_err64 = None      # the float32 reference vs the float64 reference
        self.ref32_off = 0        # half outputs > 1 ulp from ref32, within 1 ulp of ref64

    def line(self):
        s = (f"{self.values} values, max |C++ - ref32| {self.max_abs:.3g}, max {self.max_ulp} ulp "
             f"({self.at_one_ulp} at 1 ulp)")
        if self.cpp_err64 is not None:
            s += (f"; max error vs float64: C++ {self.cpp_err64:.3g}, "
                  f"float32 reference {self.py_err64:.3g}")
        if self.ref32_off:
            s += f"; {self.ref32_off} where the float32 reference itself rounds off"
        return s


def compare_tree(test, got, ref32, dtype, atol, stats, path="ids", ref64=None):
    """got: what C++ wrote (in dtype); ref32: the float32 reference; ref64: the
    float64 one. Keys must match with their Python types.

    float32: |C++ - ref32| <= atol. float16/bfloat16: C++ equals ref32 rounded
    to the dtype within 1 ulp; where it does not, the float32 reference's own
    rounding error is to blame, and C++ must be within 1 ulp of the float64
    reference rounded to the dtype instead (counted in ref32_off)."""
    test.assertIsInstance(got, dict, path)
    test.assertEqual(sorted(got, key=repr), sorted(ref32, key=repr), f"{path}: keys differ")
    for k in ref32:
        test.assertIs(type(next(x for x in got if x == k)), type(k), f"{path}: key {k!r} type")
        sub64 = ref64[k] if ref64 is not None else None
        if isinstance(ref32[k], dict):
            compare_tree(test, got[k], ref32[k], dtype, atol, stats, f"{path}[{k!r}]", sub64)
            continue
        g, r = got[k], ref32[k]
        test.assertEqual(g.dtype, dtype, path)
        test.assertEqual(tuple(g.shape), (D,), path)
        stats.values += g.numel()
        stats.max_abs = max(stats.max_abs, (g.float() - r).abs().max().item())
        if sub64 is not None:
            stats.cpp_err64 = max(stats.cpp_err64 or 0.0, (g.double() - sub64).abs().max().item())
            stats.py_err64 = max(stats.py_err64 or 0.0, (r.double() - sub64).abs().max().item())
        if dtype == torch.float32:
            test.assertTrue(torch.allclose(g, r, rtol=0, atol=atol),
                            f"{path}[{k!r}]: max diff {(g - r).abs().max().item()} > {atol}")
            ulps = (ordered_bits(g) - ordered_bits(r)).abs()
        else:
            ulps = (ordered_bits(g) - ordered_bits(r.to(dtype))).abs()
            ok = ulps <= 1
            if sub64 is not None:
                ulps64 = (ordered_bits(g) - ordered_bits(sub64.to(dtype))).abs()
                stats.ref32_off += int((~ok & (ulps64 <= 1)).sum())
                ok = ok | (ulps64 <= 1)
            test.assertTrue(bool(ok.all()), f"{path}[{k!r}]: {ulps.max().item()} ulps")
            ulps = torch.where(ok, torch.clamp(ulps, max=1), ulps)
        stats.max_ulp = max(stats.max_ulp, ulps.max().item())
        stats.at_one_ulp += int((ulps == 1).sum())


def load(path):
    return torch.load(path, weights_only=True)


class SpatialIdOracle(unittest.TestCase):
    report = {}

    @classmethod
    def setUpClass(cls):
        cls.inputs32 = make_inputs()
        cls.runs = {}

    def run_tool(self, dtype, shards=1):
        key = (dtype, shards)
        if key in self.runs:
            return self.runs[key]
        name = f"{str(dtype).split('.')[-1]}_s{shards}"
        root = os.path.join(oracle_lib.tmpdir(), "spatial_id", name)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        inputs = cast_inputs(self.inputs32, dtype)
        in_path = os.path.join(root, "inputs.pt")
        torch.save(inputs, in_path)
        out = os.path.join(root, "out")
        oracle_lib.run([TOOL, f"--inputs={in_path}", f"--out={out}", f"--model={MODEL}",
                        f"--dtype={str(dtype).split('.')[-1]}", f"--shards={shards}"])
        self.runs[key] = (inputs, out)
        return inputs, out

    def atol(self, inputs):
        # float32 rounding of sums of up to 16 vectors of this magnitude.
        scale = max(v.abs().max().item() for pair in inputs["pairs"].values()
                    for per_t in pair.values() for cells in per_t.values() for v in cells.values())
        return 64 * torch.finfo(torch.float32).eps * scale

    def check_pairs(self, dtype):
        inputs, out = self.run_tool(dtype)
        stats = Stats()
        for pair, per_a in inputs["pairs"].items():
            ref = reference_pair(per_a)
            ref64 = reference_pair(per_a, torch.float64)
            got = load(os.path.join(out, pair, f"{MODEL}.pt"))
            self.assertEqual(list(got), LAYERS)  # layer order as the reference builds it
            compare_tree(self, got, ref, dtype, self.atol(inputs), stats, pair, ref64)
            for layer in got:  # keys sorted, as the reference sorts them
                for t in got[layer]:
                    self.assertEqual(list(got[layer][t]), sorted(got[layer][t]))
        self.assertGreater(stats.values, 10000)
        SpatialIdOracle.report[f"pair {dtype}"] = stats
        return stats

    def check_universal_and_axes(self, dtype):
        inputs, out = self.run_tool(dtype)
        # The universal IDs average what the pair files hold, as the reference does.
        pair_files = [load(os.path.join(out, pair, f"{MODEL}.pt")) for pair in inputs["pairs"]]
        ref_u = reference_universal(pair_files)
        got_u = load(os.path.join(out, f"{MODEL}.pt"))
        stats = Stats()
        compare_tree(self, got_u, ref_u, dtype, 1e-5, stats, "universal",
                     reference_universal(pair_files, torch.float64))
        SpatialIdOracle.report[f"universal {dtype}"] = stats
        # Axes of the universal file, both variants; and of one pair's file.
        for suffix, strict in [("", False), ("_strict", True)]:
            ref_x, ref_y = reference_axes(got_u, strict=strict)
            x64, y64 = reference_axes(got_u, strict=strict, acc=torch.float64)
            s = Stats()
            compare_tree(self, load(os.path.join(out, f"{MODEL}{suffix}_x.pt")), ref_x, dtype, 1e-5, s,
                         "x", x64)
            compare_tree(self, load(os.path.join(out, f"{MODEL}{suffix}_y.pt")), ref_y, dtype, 1e-5, s,
                         "y", y64)
            SpatialIdOracle.report[f"axes{suffix or '_reference'} {dtype}"] = s
        ref_x, ref_y = reference_axes(pair_files[1])
        s = Stats()
        compare_tree(self, load(os.path.join(out, "frog_camel", f"{MODEL}_x.pt")), ref_x, dtype, 1e-5, s)
        compare_tree(self, load(os.path.join(out, "frog_camel", f"{MODEL}_y.pt")), ref_y, dtype, 1e-5, s)
        self.assertEqual(sorted(ref_x[0]), ["left", "right", "▁camel"])

    def test_pair_ids_float32(self):
        stats = self.check_pairs(torch.float32)
        self.assertLess(stats.max_abs, 1e-4)

    def test_pair_ids_float16(self):
        self.check_pairs(torch.float16)

    def test_pair_ids_bfloat16(self):
        self.check_pairs(torch.bfloat16)

    def test_universal_and_axes_float32(self):
        self.check_universal_and_axes(torch.float32)

    def test_universal_and_axes_float16(self):
        self.check_universal_and_axes(torch.float16)

    def test_universal_and_axes_bfloat16(self):
        self.check_universal_and_axes(torch.bfloat16)

    def test_end_to_end_float32_against_reference_only(self):
        # Universal IDs and axes from Python's own pair IDs: no C++ value enters.
        inputs, out = self.run_tool(torch.float32)
        ref_u = reference_universal([reference_pair(p) for p in inputs["pairs"].values()])
        ref_u64 = reference_universal([reference_pair(p, torch.float64)
                                       for p in inputs["pairs"].values()], torch.float64)
        stats = Stats()
        compare_tree(self, load(os.path.join(out, f"{MODEL}.pt")), ref_u, torch.float32,
                     self.atol(inputs), stats, "universal", ref_u64)
        ref_x, ref_y = reference_axes(ref_u)
        compare_tree(self, load(os.path.join(out, f"{MODEL}_x.pt")), ref_x, torch.float32,
                     self.atol(inputs), stats, "x")
        compare_tree(self, load(os.path.join(out, f"{MODEL}_y.pt")), ref_y, torch.float32,
                     self.atol(inputs), stats, "y")
        SpatialIdOracle.report["end-to-end float32"] = stats

    def test_reference_axes_are_two_thirds_of_strict(self):
        _, out = self.run_tool(torch.float32)
        for axis in "xy":
            ref = load(os.path.join(out, f"{MODEL}_{axis}.pt"))
            strict = load(os.path.join(out, f"{MODEL}_strict_{axis}.pt"))
            for layer in LAYERS:
                r, s = ref[layer]["universal"], strict[layer]["universal"]
                self.assertTrue(torch.allclose(r, s * 2 / 3, atol=1e-5), f"{axis} layer {layer}")

    def test_text_embeddings(self):
        for dtype in (torch.float32, torch.bfloat16):
            inputs, out = self.run_tool(dtype)
            got = load(os.path.join(out, f"{MODEL}_text.pt"))
            self.assertEqual(list(got), LAYERS)
            for li, layer in enumerate(LAYERS):
                self.assertEqual(list(got[layer]), ["left", "right"])
                for t in ("left", "right"):
                    self.assertTrue(torch.equal(got[layer][t], inputs["text"][t][li]))

    def test_sharded_runs_merge_to_the_same_ids(self):
        for dtype in (torch.float32, torch.float16):
            _, out1 = self.run_tool(dtype, shards=1)
            _, out3 = self.run_tool(dtype, shards=3)
            names = [os.path.join(p, f"{MODEL}.pt") for p in self.inputs32["pairs"]]
            names += [f"{MODEL}.pt", f"{MODEL}_x.pt", f"{MODEL}_y.pt"]
            stats = Stats()
            for name in names:
                a, b = load(os.path.join(out1, name)), load(os.path.join(out3, name))
                compare_tree(self, b, flatten_float(a), dtype, 1e-4, stats, name)
            SpatialIdOracle.report[f"3 shards vs 1 {dtype}"] = stats

    @classmethod
    def tearDownClass(cls):
        for k, s in sorted(cls.report.items()):
            print(f"{k}: {s.line()}", file=sys.stderr)


def flatten_float(d):
    return {k: flatten_float(v) for k, v in d.items()} if isinstance(d, dict) else d.float()


class ErrorsReachTheUser(unittest.TestCase):
    def test_duplicate_and_misshapen_vectors(self):
        root = os.path.join(oracle_lib.tmpdir(), "spatial_id_errors")
        os.makedirs(root, exist_ok=True)
        v = torch.zeros(len(LAYERS), D)
        cases = {
            "wrong_rows": ({"p_q": {"0_0": {"t": {(1, 0, 224): torch.zeros(2, D)}}}},
                           "one row per kept layer"),
            "bad_key": ({"p_q": {"0_0": {"t": {(1, 0): v}}}}, "not an (x, y, size) tuple"),
        }
        for name, (pairs, message) in cases.items():
            path = os.path.join(root, f"{name}.pt")
            torch.save({"layers": torch.tensor(LAYERS), "pairs": pairs, "text": {}}, path)
            proc = subprocess.run(
                [TOOL, f"--inputs={path}", f"--out={root}/{name}_out"], capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, name)
            self.assertIn(message, proc.stderr, name)


if __name__ == "__main__":
    unittest.main()
