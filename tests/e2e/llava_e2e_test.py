"""End to end: spatialid's binaries vs the reference recipe run with transformers.

A tiny random-weight LLaVA-1.5 (real Llama-2 tokenizer file, real CLIP
processor settings) is made by transformers; the data engine draws grid
images; small_id_grid and batch_extraction write their .pt files; the
reference recipe (tests/reference/spatial_id_reference.py: batch 1,
output_hidden_states, compute_id / average_id / compute_axes) runs on the
same images; every file must hold the same keys, dtypes, shapes and values.
The grid experiment is also checked with --pooling=mean_of_subtokens (the
recipe averaging the word's sub-token rows; " frog" is two tokens here), and
examples/compose_extractor (the README's one-line composition) against the
recipe's rows.
"""
import os
import shutil
import subprocess
import sys
import unittest

import torch

import oracle_lib

sys.path.insert(0, os.path.dirname(oracle_lib.runfile("tests/reference/spatial_id_reference.py")))
import spatial_id_reference as ref  # noqa: E402

GRID_DATA = oracle_lib.runfile("examples/grid_data")
SMALL_ID_GRID = oracle_lib.runfile("examples/small_id_grid")
BATCH_EXTRACTION = oracle_lib.runfile("examples/batch_extraction")
MAKE_TINY = oracle_lib.runfile("tools/make_tiny_llava.py")
FIG5 = oracle_lib.runfile("examples/fig5")
COMPOSE = oracle_lib.runfile("examples/compose_extractor")
# openmoji code points of the objects the test draws (as tools/setup.sh does).
CODEPOINTS = {"camel": "1F42B", "frog": "1F438", "dog": "1F415", "cake": "1F382"}

# fp32 parity bound relative to the largest magnitude of a file's values.
REL_TOL = 1e-4


def compare_files(test, ours_path, ref_obj, what, scale_from=None):
    """Max abs diff <= REL_TOL x the largest reference magnitude.

    `scale_from`: a reference object whose magnitude sets the bound instead.
    Axes are differences of IDs, so their error is the IDs' rounding while
    their own magnitude shrinks by cancellation; they are bounded by the IDs'
    scale.
    """
    ours = torch.load(ours_path, weights_only=True)
    worst = scale = 0.0
    leaves = 0

    def walk(a, b, path):
        nonlocal worst, scale, leaves
        if isinstance(b, dict):
            test.assertIsInstance(a, dict, f"{what} {path}")
            test.assertEqual(set(a.keys()), set(b.keys()), f"{what} keys at {path}")
            for k in b:
                walk(a[k], b[k], path + [k])
            return
        test.assertTrue(torch.is_tensor(a), f"{what} {path}")
        test.assertEqual(a.dtype, b.dtype, f"{what} dtype at {path}")
        test.assertEqual(tuple(a.shape), tuple(b.shape), f"{what} shape at {path}")
        worst = max(worst, (a.float() - b.float()).abs().max().item())
        scale = max(scale, b.float().abs().max().item())
        leaves += 1

    walk(ours, ref_obj, [])
    test.assertGreater(leaves, 0, what)
    if scale_from is not None:
        scale = max(v.float().abs().max().item() for v in leaf_tensors(scale_from))
    print(f"{what}: {leaves} vectors, max abs diff {worst:.3g}, scale {scale:.3g}, "
          f"relative {worst / max(scale, 1e-30):.3g}")
    test.assertLessEqual(worst, REL_TOL * scale, what)
    return worst / max(scale, 1e-30)


def leaf_tensors(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from leaf_tensors(v)
    else:
        yield obj


class LlavaEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = os.path.join(oracle_lib.tmpdir(), "e2e")
        shutil.rmtree(cls.tmp, ignore_errors=True)
        os.makedirs(cls.tmp)
        cls.model_dir = os.path.join(cls.tmp, "tiny-llava")
        oracle_lib.run([sys.executable, MAKE_TINY, cls.model_dir, "--size", "test", "--dtype", "float32",
                        "--seed", "7"])
        objects = os.path.join(cls.tmp, "objects")
        os.makedirs(objects)
        for name, cp in CODEPOINTS.items():
            oracle_lib.run(["rsvg-convert", "-w", "512", "-h", "512", "-f", "png", "-o",
                            os.path.join(objects, name + ".png"),
                            os.path.join(oracle_lib.assets_dir(), "openmoji", cp + ".svg")])
        cls.grid_images = os.path.join(cls.tmp, "grid_data")
        oracle_lib.run([GRID_DATA, f"--objects_dir={objects}", f"--out={cls.grid_images}",
                        "--pairs=camel_frog", "--sizes=224"])
        cls.batch_images = os.path.join(cls.tmp, "extraction_data")
        oracle_lib.run([GRID_DATA, f"--objects_dir={objects}", f"--out={cls.batch_images}",
                        "--pairs=camel_frog,dog_cake", "--sizes=224,74", "--no_same_row_or_col"])
        cls.processor, cls.model = ref.load(cls.model_dir, "float32")
        torch.set_num_threads(2)
        # One C++ grid run and one reference extraction serve several tests.
        cls.grid_out = os.path.join(cls.tmp, "grid_out")
        oracle_lib.run([SMALL_ID_GRID, *cls.common_flags(cls), f"--images={cls.grid_images}",
                        f"--out={cls.grid_out}", "--name=tiny"])
        # Both poolings from one transformers forward per image.
        cls.grid_es = ref.extract_pair(cls.model, cls.processor, os.path.join(cls.grid_images, "camel_frog"),
                                       ref.GRID_PROMPT, ref.GRID_TARGETS, poolings=ref.POOLINGS)
        cls.grid_e = cls.grid_es["last_subtoken"]
        cls.text_rows = ref.hidden_rows(cls.model, cls.processor, ref.text_inputs(cls.processor, ref.GRID_PROMPT),
                                        ["left", "right"], None, poolings=ref.POOLINGS)

    def common_flags(self):
        return ["--model=llava-7b", f"--model_dir={self.model_dir}", "--dtype=float32", "--quiet",
                "--batch_size=5"]

    def compare_grid_outputs(self, out, pooling):
        """small_id_grid's four files in `out` (IDs, x and y axes, text
        embeddings) against the recipe with `pooling`; returns the IDs."""
        label = "" if pooling == "last_subtoken" else ", " + pooling
        ids = ref.compute_id(self.grid_es[pooling])
        compare_files(self, os.path.join(out, "tiny.pt"), ids, "grid IDs" + label)
        ax, ay = ref.compute_axes(ids)
        compare_files(self, os.path.join(out, "tiny_x.pt"), ax, "grid x axis" + label, scale_from=ids)
        compare_files(self, os.path.join(out, "tiny_y.pt"), ay, "grid y axis" + label, scale_from=ids)
        tok = self.processor.tokenizer
        text = {layer: {ref.target_token(tok, w): v for w, v in per.items()}
                for layer, per in self.text_rows[pooling].items()}
        compare_files(self, os.path.join(out, "tiny_text.pt"), text, "text embeddings" + label)
        return ids

    def test_grid_experiment_matches_reference(self):
        out = self.grid_out
        self.compare_grid_outputs(out, "last_subtoken")
        # Every hidden state is kept by default: layers 0..num_layers.
        self.assertEqual(sorted(torch.load(os.path.join(out, "tiny.pt"), weights_only=True).keys()),
                         list(range(self.model.config.text_config.num_hidden_layers + 1)))

    def test_batch_extraction_matches_reference_and_resumes(self):
        out = os.path.join(self.tmp, "batch_out")
        args = [BATCH_EXTRACTION, *self.common_flags(), f"--images={self.batch_images}", f"--out={out}",
                "--name=tiny"]
        oracle_lib.run(args)
        pair_ids = []
        for pair in ["camel_frog", "dog_cake"]:
            a, b = pair.split("_")
            prompt, words = ref.batch_prompt(a, b)
            ids = ref.compute_id(ref.extract_pair(self.model, self.processor,
                                                  os.path.join(self.batch_images, pair), prompt, words))
            compare_files(self, os.path.join(out, pair, "tiny.pt"), ids, f"{pair} IDs")
            pair_ids.append(ids)
        universal = ref.average_id(pair_ids)
        compare_files(self, os.path.join(out, "tiny.pt"), universal, "universal IDs")
        ax, ay = ref.compute_axes(universal)
        compare_files(self, os.path.join(out, "tiny_x.pt"), ax, "universal x axis", scale_from=universal)
        compare_files(self, os.path.join(out, "tiny_y.pt"), ay, "universal y axis", scale_from=universal)
        # The consumers' indexing works.
        u = torch.load(os.path.join(out, "tiny.pt"), weights_only=True)
        self.assertEqual(u[2]["universal"][(3, 0, 224)].shape, (64,))

        # Resume: a rerun skips both pairs and rewrites identical files.
        before = {f: open(os.path.join(out, f), "rb").read() for f in ["tiny.pt", "tiny_x.pt", "tiny_y.pt"]}
        os.remove(os.path.join(out, "tiny.pt"))
        proc = subprocess.run([a for a in args if a != "--quiet"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("already done", proc.stderr)
        for f, data in before.items():
            self.assertEqual(open(os.path.join(out, f), "rb").read(), data, f)

    def test_fig5_projection_matches_python(self):
        out = self.grid_out
        oracle_lib.run([FIG5, f"--dir={out}", "--model=tiny", "--layer=2", "--sheet_layers=1-3",
                        "--json", f"--out={out}/fig"])
        import json
        got = json.load(open(os.path.join(out, "fig.json")))
        ids = torch.load(os.path.join(out, "tiny.pt"), weights_only=True)
        xs = torch.load(os.path.join(out, "tiny_x.pt"), weights_only=True)
        ys = torch.load(os.path.join(out, "tiny_y.pt"), weights_only=True)
        text = torch.load(os.path.join(out, "tiny_text.pt"), weights_only=True)
        token = got["token"]
        self.assertEqual(token, list(ids[2].keys())[0])  # frog's token: the first target
        self.assertEqual([p["layer"] for p in got["sheet"]], [1, 2, 3])
        for panel in [got["single"]] + got["sheet"]:
            layer = panel["layer"]
            # docs/reference_pipeline.md section 8: x axis normalised; y axis orthogonalised against it, normalised.
            u = xs[layer][token].double()
            u = u / u.norm()
            y = ys[layer][token].double()
            v = y - (y @ u) * u
            v = v / v.norm()
            e = torch.stack([ids[layer][token][(x, yy, 224)].double() for x in range(4) for yy in range(4)])
            c = e - e.mean(0, keepdim=True)
            ratio = ((c @ u).pow(2).sum() + (c @ v).pow(2).sum()) / c.pow(2).sum()
            self.assertAlmostEqual(panel["explained_variance"], ratio.item(), places=9)
            for p, row in zip(panel["ids"], e):
                self.assertAlmostEqual(p["u"], (row @ u).item(), delta=1e-9 * max(1, abs(p["u"])))
                self.assertAlmostEqual(p["v"], (row @ v).item(), delta=1e-9 * max(1, abs(p["v"])))
            for p, key in zip(panel["text"], list(text[layer].keys())):
                self.assertAlmostEqual(p["u"], (text[layer][key].double() @ u).item(), delta=1e-7)
        for f in ["fig.png", "fig.svg", "fig_sheet.png"]:
            self.assertGreater(os.path.getsize(os.path.join(out, f)), 1000, f)
        with open(os.path.join(out, "fig.png"), "rb") as fh:
            self.assertEqual(fh.read(8), b"\x89PNG\r\n\x1a\n")

    def test_reference_averaging_policy_agrees(self):
        out = os.path.join(self.tmp, "grid_refavg")
        oracle_lib.run([SMALL_ID_GRID, *self.common_flags(), f"--images={self.grid_images}",
                        f"--out={out}", "--name=tiny", "--averaging=reference", "--layers=0,2"])
        e = {layer: self.grid_e[layer] for layer in (0, 2)}
        compare_files(self, os.path.join(out, "tiny.pt"), ref.compute_id(e), "grid IDs (reference mean, layers 0,2)")

    def test_plain_engine_matches_planned_and_reference(self):
        """--engine=plain (no prefix cache, no packed matmuls) gives the same files."""
        out = os.path.join(self.tmp, "grid_plain")
        oracle_lib.run([SMALL_ID_GRID, *self.common_flags(), f"--images={self.grid_images}",
                        f"--out={out}", "--name=tiny", "--engine=plain"])
        compare_files(self, os.path.join(out, "tiny.pt"), ref.compute_id(self.grid_e),
                      "grid IDs, plain engine")
        planned = torch.load(os.path.join(self.grid_out, "tiny.pt"), weights_only=True)
        compare_files(self, os.path.join(out, "tiny.pt"), planned, "grid IDs, plain vs planned")

    def test_grid_mean_of_subtokens_matches_reference(self):
        """small_id_grid --pooling=mean_of_subtokens against the recipe with that pooling."""
        out = os.path.join(self.tmp, "grid_mean")
        oracle_lib.run([SMALL_ID_GRID, *self.common_flags(), f"--images={self.grid_images}",
                        f"--out={out}", "--name=tiny", "--pooling=mean_of_subtokens"])
        ids = self.compare_grid_outputs(out, "mean_of_subtokens")
        tok = self.processor.tokenizer
        # " frog" is two sub-tokens: the two poolings must give different IDs,
        # or this check could not tell them apart.
        frog = ref.target_token(tok, "frog")
        self.assertGreater(len(tok.tokenize(" frog")), 1)
        last = ref.compute_id(self.grid_e)
        gap = max((ids[layer][frog][k] - last[layer][frog][k]).abs().max().item()
                  for layer in ids for k in ids[layer][frog])
        self.assertGreater(gap, 0.0, "mean_of_subtokens should differ from last_subtoken for frog")

    def test_compose_extractor_example_matches_reference(self):
        """examples/compose_extractor (Extractor<Llava> with Reference{.last = 2} and
        mean_of_subtokens composed in one line) against the recipe's rows."""
        images = ref.list_pair_images(os.path.join(self.grid_images, "camel_frog"))[:2]
        paths = [p for _, _, p in images]
        out = os.path.join(self.tmp, "compose.pt")
        proc = oracle_lib.run([COMPOSE, f"--model_dir={self.model_dir}", f"--images={','.join(paths)}",
                               "--question=" + ref.GRID_PROMPT, "--words=" + ",".join(ref.GRID_TARGETS),
                               "--last=2", "--pooling=mean_of_subtokens", "--dtype=float32", f"--out={out}"])
        print(proc.stdout.strip())
        # The recipe's rows of these images, from setUpClass's forwards.
        tok = self.processor.tokenizer
        e = self.grid_es["mean_of_subtokens"]
        expect = {layer: {ref.target_token(tok, w): torch.stack([e[layer][ref.target_token(tok, w)][a][key]
                                                                  for a, key, _ in images])
                          for w in ref.GRID_TARGETS} for layer in (0, 1, 2)}
        compare_files(self, out, expect, "compose_extractor rows (layers 0..2, mean_of_subtokens)")

    def test_clear_errors(self):
        cases = [
            (["--targets=zebra"], "zebra"),                       # target word not in the prompt
            (["--layers=reference"], "only 4"),                   # llava-7b's 0..32 on a 3-layer model
            (["--model=gemma-9b"], "unknown model alias"),
            (["--images=/nonexistent/folder"], "/nonexistent/folder"),
            (["--dtype=float64"], "--dtype"),
            (["--engine=fast"], "--engine"),
        ]
        for extra, needle in cases:
            args = [SMALL_ID_GRID, *self.common_flags(), f"--images={self.grid_images}",
                    f"--out={os.path.join(self.tmp, 'err')}", *extra]
            proc = subprocess.run(args, capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, extra)
            self.assertIn(needle, proc.stderr, extra)
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)


if __name__ == "__main__":
    unittest.main()
