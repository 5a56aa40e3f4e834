"""What every model family's test against transformers shares.

transformers is the oracle for every number a family produces. A family's
test file (tests/families/<family>_oracle_test.py) is a subclass

    class LlavaOracleTest(family_oracle.FamilyOracle, unittest.TestCase)

that sets its parameters (class attributes: tool name, layer count, bounds,
which shared checks apply), builds its tiny random-weight checkpoint and the
shared inputs in `prepare()`, and adds its truly family-specific checks. The
test bodies here run for every family from those parameters: hidden states at
every layer in each dtype (batch 2, and batch 1 as the reference runs), image
features, early stopping, the text-only forward, images through the C++
processor, checkpoint naming schemes, the planned forward against the plain
one and against transformers, the whole extractor against the reference
recipe (chat template, BOS rule, target position, pooling, forward), and a
throughput report. A shared test a family cannot take is set to None in its
class (unittest then does not collect it); none is skipped.

The family's tool is forward_tool.h built for it (<family>_forward_cli). The
mixin is not a TestCase itself, so importing this module adds no test.

Environment (the GPU-check contract, tools/gpu_check.sh):
  SPATIALID_ORACLE_DEVICE    cpu (default) or cuda[:N]: the tool and
                             transformers both run there.
  SPATIALID_FORWARD_CLI_DIR  a folder holding <family>_forward_cli built
                             outside Bazel (tools/build_without_bazel.sh);
                             otherwise Bazel's runfiles, or bazel-bin/ when a
                             test file is run directly from the repository root.
"""
import json
import os
import re
import shutil
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

import oracle_lib

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "reference"))
import spatial_id_reference as reference  # noqa: E402

DEVICE = os.environ.get("SPATIALID_ORACLE_DEVICE", "cpu")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# fp32 must agree to 1e-4 of the activation scale (docs/architecture.md
# section 6); half precisions to these stated bounds, against transformers
# run in that dtype.
REL_BOUND = {"float32": 1e-4, "bfloat16": 2e-2, "float16": 4e-3}
# The reference's grid question, the families' shared prompt.
PROMPT_TEXT = reference.GRID_PROMPT
# A result that should not change at all when only the work is split
# differently (early stopping) agrees to matmul rounding.
SAME_RESULT_BOUND = 1e-5


def tool_path(family):
    """<family>_forward_cli: from SPATIALID_FORWARD_CLI_DIR, Bazel's runfiles or bazel-bin."""
    name = f"{family}_forward_cli"
    folder = os.environ.get("SPATIALID_FORWARD_CLI_DIR")
    if folder:
        return os.path.join(folder, name)
    path = oracle_lib.runfile(f"tests/families/{name}")
    if not os.path.exists(path):
        built = os.path.abspath(os.path.join("bazel-bin", "tests", "families", name))
        if os.path.exists(built):
            return built
    return path


def scale_of(t):
    return max(float(t.abs().max()), 1e-12)


def draw_object(size, kind, colour, legs=1):
    """An RGBA object with soft (anti-aliased) edges on transparency: a camel
    (body, hump, `legs` legs) or a frog (body, two eyes)."""
    big = Image.new("RGBA", (size * 4, size * 4), (0, 0, 0, 0))
    d = ImageDraw.Draw(big)
    if kind == "camel":
        d.ellipse([size * 0.4, size * 1.2, size * 3.6, size * 2.8], fill=colour)
        d.polygon([(size * 1.2, size * 1.3), (size * 1.6, size * 0.5), (size * 2.0, size * 1.3)], fill=colour)
        d.rectangle([size * 0.8, size * 2.6, size * 1.1, size * 3.9], fill=colour)
        if legs > 1:
            d.rectangle([size * 2.9, size * 2.6, size * 3.2, size * 3.9], fill=colour)
    else:
        d.ellipse([size * 0.5, size * 0.8, size * 3.5, size * 3.6], fill=colour)
        d.ellipse([size * 0.9, size * 0.3, size * 1.7, size * 1.1], fill=(255, 255, 255, 255))
        if legs > 1:
            d.ellipse([size * 2.3, size * 0.3, size * 3.1, size * 1.1], fill=(255, 255, 255, 255))
    return big.resize((size, size), Image.LANCZOS)


def noise_png(path, height, width, seed, edge=None):
    """Random RGB noise with an optional sharp red box (rows, cols) to resample."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    if edge is not None:
        (r0, r1), (c0, c1) = edge
        a[r0:r1, c0:c1] = [250, 20, 20]
    Image.fromarray(a).save(path)
    return path


def to_device(kwargs):
    return {k: (v.to(DEVICE) if torch.is_tensor(v) else v) for k, v in kwargs.items()}


class FamilyOracle:
    """The shared checks; see the module comment. Subclasses set:"""
    FAMILY = None            # tool name prefix: tests/families/<FAMILY>_forward_cli
    NUM_TEXT_LAYERS = None   # decoder layers (hidden states 0..NUM_TEXT_LAYERS)
    HIDDEN = None            # text hidden size
    REL_BOUND = REL_BOUND    # the dtypes the family is checked in, with their bounds
    BATCH1 = "exact"         # batch 1 vs transformers: "exact" (bit for bit), "bound" or None (not run)
    FEATURE_SHAPE = None     # image_features' shape for self.inputs
    # The extractor checks: a question with a word of several sub-tokens in
    # every tokenizer here (axolotl), so mean_of_subtokens is not last_subtoken.
    EXTRACT_QUESTION = "Is the axolotl to the left or right of the camel?"
    EXTRACT_WORDS = ("axolotl", "left", "right")
    # Whether the planned extractor keeps a prefix cache for a request of
    # every layer (Mllama: not past its first cross-attention layer).
    PREFIX_FOR_ALL_LAYERS = True
    # The chat template starts with the tokenizer's BOS (Gemma 3, Llama 3.2),
    # so the two BOS rules give different prompts.
    TEMPLATE_WRITES_BOS = False
    # Chat-template arguments of the recipe: the extractor's fixed clock
    # where a template prints the date (Llama 3.2's text-only system turn).
    TEMPLATE_KWARGS = {}

    # -- set up --------------------------------------------------------------

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.dir = os.path.join(oracle_lib.tmpdir(), f"{cls.FAMILY}_oracle")
        shutil.rmtree(cls.dir, ignore_errors=True)
        os.makedirs(cls.dir)
        cls.tool = tool_path(cls.FAMILY)
        cls.hf_cache = {}
        cls.hf_models = {}
        cls.recipe_cache = {}
        cls.tool_cache = {}
        cls.prepare()

    @classmethod
    def prepare(cls):
        """Builds the checkpoint(s) and sets model_dir, processor, inputs (a
        batch of two rows with one token layout), input_ids, targets,
        positions, px_file (and px1_file for batch 1), batch_images (the two
        image paths of `inputs`)."""
        raise NotImplementedError

    @staticmethod
    def load_processor(model_dir, image_processor_class):
        """What transformers 5 loads from the folder, as the reference does;
        its image processor must be the one the family's pixels match."""
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained(model_dir)
        assert isinstance(processor.image_processor, image_processor_class), type(processor.image_processor)
        return processor

    @staticmethod
    def user_prompt(processor, text=PROMPT_TEXT, with_image=True, **template_kwargs):
        """The reference's prompt: one user turn (the image, then the text), the generation prompt."""
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
        return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                             **template_kwargs)

    @classmethod
    def save_pixels(cls, name, inputs, rows=None):
        """The processor outputs the tool reads (--pixels), as float tensors."""
        path = os.path.join(cls.dir, name + ".safetensors")
        save_file({k: v.float().contiguous() for k, v in cls.pixel_tensors(inputs, rows).items()}, path)
        return path

    @classmethod
    def pixel_tensors(cls, inputs, rows=None):
        """Hook: the tensors --pixels holds for rows `rows` (a slice) of `inputs`."""
        px = inputs["pixel_values"]
        return {"pixel_values": px if rows is None else px[rows]}

    # -- the tool ------------------------------------------------------------

    def cli(self, name, **flags):
        """Runs the tool with --out; returns (its outputs, stdout)."""
        out = os.path.join(self.dir, name + ".safetensors")
        if os.path.exists(out):
            os.remove(out)
        # Same thread count as torch here, so both split work alike.
        args = [self.tool, f"--out={out}", "--threads=2", f"--device={DEVICE}"]
        args += [f"--{k}" if v is True else f"--{k}={v}" for k, v in flags.items()]
        proc = oracle_lib.run(args)
        return (load_file(out) if os.path.exists(out) else {}), proc.stdout

    def cli_json(self, **flags):
        """Runs the tool without --out; returns the JSON of its last line."""
        args = [self.tool] + [f"--{k}" if v is True else f"--{k}={v}" for k, v in flags.items()]
        return json.loads(oracle_lib.run(args).stdout.strip().splitlines()[-1])

    def cli_error(self, name, needles, **flags):
        """The tool must fail, its message holding every needle."""
        with self.assertRaises(AssertionError) as ctx:
            self.cli(name, **flags)
        for needle in [needles] if isinstance(needles, str) else needles:
            self.assertIn(needle, str(ctx.exception))
        return str(ctx.exception)

    def request(self, name, input_ids, positions, layers):
        path = os.path.join(self.dir, name + ".json")
        with open(path, "w") as f:
            json.dump({"input_ids": input_ids.tolist(), "positions": [int(p) for p in positions],
                       "layers": [int(l) for l in layers]}, f)
        return path

    def run_forward(self, dtype_name, positions, layers, name, model_dir=None, inputs=None, px_file=None,
                    **extra):
        """The tool's forward over `inputs`' ids (default: the shared batch)."""
        inputs = self.inputs if inputs is None else inputs
        req = self.request(name, inputs["input_ids"], positions, layers)
        flags = dict(model_dir=model_dir or self.model_dir, request=req, dtype=dtype_name)
        if extra.pop("text_only", False):
            flags["text_only"] = True
        else:
            flags["pixels"] = px_file or self.px_file
        flags.update(extra)
        return self.cli(name, **flags)

    def all_layers(self):
        return list(range(self.NUM_TEXT_LAYERS + 1))

    def full_forward(self, dtype_name="float32", model_dir=None, inputs=None, px_file=None, **flags):
        """The tool's hidden states at self.positions and every layer, batch 2:
        run once per arguments (the dtype check, early stopping and the
        planned check all compare against it)."""
        key = ("full", dtype_name, model_dir, id(inputs), px_file, tuple(sorted(flags.items())))
        if key not in self.tool_cache:
            name = f"full_{dtype_name}_{len(self.tool_cache)}"
            self.tool_cache[key] = self.run_forward(dtype_name, self.positions, self.all_layers(), name,
                                                    model_dir=model_dir, inputs=inputs, px_file=px_file, **flags)[0]
        return self.tool_cache[key]

    # -- transformers ----------------------------------------------------------

    def hf_model(self, dtype_name, model_dir=None, config=None):
        """The checkpoint loaded by transformers in the dtype, on the device.

        Loaded in the dtype, as the reference does: Module.to(dtype) would
        also round the RoPE inverse frequencies that from_pretrained keeps in
        fp32. Cached unless `config` overrides the folder's."""
        from transformers import AutoModelForImageTextToText
        model_dir = model_dir or self.model_dir
        key = (model_dir, dtype_name)
        if config is None and key in self.hf_models:
            return self.hf_models[key]
        kw = {} if config is None else {"config": config}
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=DTYPES[dtype_name], **kw)
        model = model.to(DEVICE).eval()
        if config is None:
            self.hf_models[key] = model
        return model

    def hf_row_kwargs(self, inputs, b, dtype_name, **options):
        """Hook: model() arguments for row b of `inputs`, as the family's reference run passes them."""
        return {"input_ids": inputs["input_ids"][b:b + 1],
                "pixel_values": inputs["pixel_values"][b:b + 1].to(DTYPES[dtype_name])}

    def hf_text_kwargs(self, text_ids):
        """Hook: model() arguments of a text-only forward."""
        return {"input_ids": text_ids}

    def before_hf_call(self, model):
        """Hook: state to reset before each transformers forward (Qwen's rope_deltas)."""

    def hf_hidden(self, dtype_name, inputs=None, model_dir=None, text_ids=None, model=None, **row_options):
        """transformers' hidden states [states, batch, seq, hidden] on the CPU,
        one row at a time as the reference runs; cached per arguments."""
        inputs = self.inputs if inputs is None else inputs
        key = (model_dir or self.model_dir, dtype_name, id(inputs) if text_ids is None else None,
               None if text_ids is None else tuple(text_ids.reshape(-1).tolist()), tuple(sorted(row_options.items())))
        if model is None and key in self.hf_cache:
            return self.hf_cache[key]
        m = model if model is not None else self.hf_model(dtype_name, model_dir)
        calls = ([self.hf_text_kwargs(text_ids)] if text_ids is not None else
                 [self.hf_row_kwargs(inputs, b, dtype_name, **row_options) for b in range(inputs["input_ids"].shape[0])])
        rows = []
        with torch.no_grad():
            for kwargs in calls:
                self.before_hf_call(m)
                out = m(**to_device(kwargs), output_hidden_states=True)
                rows.append(torch.stack(out.hidden_states)[:, 0].cpu())
        result = torch.stack(rows, 1)
        if model is None:
            self.hf_cache[key] = result
        return result

    def hf_image_features(self, inputs, model_dir=None):
        """Hook: transformers' image features for `inputs` (the decoder's input rows)."""
        model = self.hf_model("float32", model_dir)
        with torch.no_grad():
            feats = model.model.get_image_features(pixel_values=inputs["pixel_values"].to(DEVICE)).pooler_output
        return torch.stack(list(feats)).cpu() if isinstance(feats, (list, tuple)) else feats.cpu()

    # -- comparisons -------------------------------------------------------------

    def compare(self, ours, ref, label, rel_bound):
        """Per hidden state: max |diff| against rel_bound x max |activation|."""
        self.assertEqual(tuple(ours.shape), tuple(ref.shape), label)
        worst_abs, worst_rel = 0.0, 0.0
        for layer in range(ref.shape[0]):
            diff = float((ours[layer].float() - ref[layer].float()).abs().max())
            rel = diff / scale_of(ref[layer].float())
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
            self.assertLessEqual(rel, rel_bound, f"{label}: hidden state {layer}: max abs diff {diff:.3e} is "
                                 f"{rel:.2e} of the scale {scale_of(ref[layer].float()):.3e}")
        print(f"{label}: worst max-abs diff {worst_abs:.3e}, worst relative {worst_rel:.3e} "
              f"(bound {rel_bound:.0e}; scale {scale_of(ref.float()):.3e})")
        return worst_abs, worst_rel

    def assert_same_result(self, part, expect, label):
        worst = float((part.float() - expect.float()).abs().max()) / scale_of(expect.float())
        self.assertLessEqual(worst, SAME_RESULT_BOUND, label)
        return worst

    # -- shared test bodies --------------------------------------------------------

    def check_dtype(self, dtype_name, model_dir=None, inputs=None, px_file=None, px1_file=None, label="",
                    **flags):
        """Every hidden state at self.positions: batch 2 against transformers
        within the dtype's bound; batch 1 as BATCH1 says."""
        inputs = self.inputs if inputs is None else inputs
        layers = self.all_layers()
        ref = self.hf_hidden(dtype_name, inputs, model_dir)[:, :, self.positions]
        # Batch 2 in one forward: GEMM blocking may differ from transformers'
        # batch-1 runs, so rows agree to rounding, within the stated bound.
        got = self.full_forward(dtype_name, model_dir, None if inputs is self.inputs else inputs, px_file, **flags)
        ours = got["hidden_states"]
        self.assertEqual(ours.dtype, DTYPES[dtype_name])
        self.assertEqual(tuple(ours.shape), (len(layers), 2, len(self.positions), self.HIDDEN))
        result = self.compare(ours, ref, f"hidden states {dtype_name}{label}, batch 2", self.REL_BOUND[dtype_name])
        if self.BATCH1 is None:
            return got, result
        req = self.request(f"b1_{dtype_name}{label}", inputs["input_ids"][:1], self.positions, layers)
        one, _ = self.cli(f"b1_{dtype_name}{label}", model_dir=model_dir or self.model_dir, request=req,
                          dtype=dtype_name, pixels=px1_file or self.px1_file, **flags)
        mismatches = int((one["hidden_states"] != ref[:, :1]).sum())
        print(f"hidden states {dtype_name}{label}, batch 1: {mismatches} of {ref[:, :1].numel()} values "
              f"differ from transformers")
        if self.BATCH1 == "exact":
            # Batch 1, as the reference runs: the same ATen kernels in the
            # same order, so every value is bit-identical.
            self.assertEqual(mismatches, 0)
        else:
            self.compare(one["hidden_states"], ref[:, :1], f"hidden states {dtype_name}{label}, batch 1",
                         self.REL_BOUND[dtype_name])
        return got, result

    def test_hidden_states_fp32(self):
        self.check_dtype("float32")

    def test_hidden_states_bf16(self):
        self.check_dtype("bfloat16")

    def check_image_features(self, inputs=None, px_file=None, model_dir=None, label="image features fp32",
                             shape=None, **flags):
        inputs = self.inputs if inputs is None else inputs
        got, _ = self.run_forward("float32", [self.targets["frog"]], [self.NUM_TEXT_LAYERS], "feat",
                                  model_dir=model_dir, inputs=inputs, px_file=px_file, image_features=True,
                                  **flags)
        ref = self.hf_image_features(inputs, model_dir)
        self.assertEqual(tuple(got["image_features"].shape), tuple(shape or self.FEATURE_SHAPE))
        self.compare(got["image_features"].unsqueeze(0), ref.unsqueeze(0), label, REL_BOUND["float32"])
        return got

    def test_image_features_fp32(self):
        self.check_image_features()

    def early_stop_cases(self):
        """Hook: (positions, layers) requests that stop before the full forward."""
        frog = self.targets["frog"]
        return [([frog], [0, 2]), ([frog, self.positions[1]], [1]), ([self.positions[1]], [self.NUM_TEXT_LAYERS])]

    def check_early_stop(self, cases, model_dir=None, label="early stop", **flags):
        """Positions and layers cut short give the full forward's values;
        returns each case's hidden states."""
        full = self.full_forward("float32", model_dir, **flags)
        worst, parts = 0.0, []
        for positions, layers in cases:
            part, _ = self.run_forward("float32", positions, layers, "part", model_dir=model_dir, **flags)
            cols = [self.positions.index(p) for p in positions]
            expect = full["hidden_states"][layers][:, :, cols]
            worst = max(worst, self.assert_same_result(part["hidden_states"], expect, f"{label} {positions} {layers}"))
            parts.append(part["hidden_states"])
        print(f"{label} vs full forward: worst relative diff {worst:.3e}")
        return parts

    def test_stopping_early_changes_nothing(self):
        self.check_early_stop(self.early_stop_cases())

    def text_prompt_ids(self):
        """Hook: the reference's text-only prompt ids [1, S] (the processor's
        template through its tokenizer)."""
        prompt = self.user_prompt(self.processor, with_image=False)
        return self.processor.tokenizer(prompt, return_tensors="pt")["input_ids"]

    def check_text_only(self, text_ids, positions, model_dir=None, dtype_name="float32", label="text-only fp32",
                        ref=None, **flags):
        req = self.request(f"text_{dtype_name}", text_ids, positions, range(self.NUM_TEXT_LAYERS + 1)
                           if ref is None else range(ref.shape[0]))
        got, _ = self.cli(f"text_{dtype_name}", model_dir=model_dir or self.model_dir, request=req,
                          dtype=dtype_name, text_only=True, **flags)
        if ref is None:
            ref = self.hf_hidden(dtype_name, model_dir=model_dir, text_ids=text_ids)
        self.compare(got["hidden_states"], ref[:, :, positions], label, self.REL_BOUND[dtype_name])
        return got

    def test_text_only_forward(self):
        text_ids = self.text_prompt_ids()
        n = text_ids.shape[1]
        self.check_text_only(text_ids, [0, n // 2, n - 1])

    def cpp_pixels_layers(self):
        return [0, self.NUM_TEXT_LAYERS]

    def check_cpp_pixels(self, model_dir=None, inputs=None, images=None, label="end to end fp32", **flags):
        """Images -> C++ processor -> forward equals transformers' processor -> model."""
        inputs = self.inputs if inputs is None else inputs
        layers = self.cpp_pixels_layers()
        req = self.request("e2e", inputs["input_ids"], self.positions, layers)
        got, _ = self.cli("e2e", model_dir=model_dir or self.model_dir, request=req, dtype="float32",
                          images=",".join(images or self.batch_images), **flags)
        ref = self.hf_hidden("float32", inputs, model_dir)[layers][:, :, self.positions]
        self.compare(got["hidden_states"], ref, label, REL_BOUND["float32"])
        return got

    def test_cpp_pixels_end_to_end(self):
        """Images -> C++ processor -> forward equals transformers' processor -> model."""
        got = self.check_cpp_pixels()
        self.assertTrue(torch.equal(got["pixel_values"], self.inputs["pixel_values"]))

    def check_naming_schemes(self, renames, missing, needles, model_dir=None, sharded=False, untied_head=None,
                             keep_folders=True):
        """The checkpoint under other weight names loads to identical states;
        a missing weight is reported by name.

        renames: {scheme: [(old prefix, new prefix or None to drop)]};
        untied_head: (scheme, embedding key) that also gets an lm_head copy."""
        model_dir = model_dir or self.model_dir
        weights = load_file(os.path.join(model_dir, "model.safetensors"))
        req = self.request("names", self.input_ids, self.positions, [1, self.NUM_TEXT_LAYERS])
        base, _ = self.cli("names_legacy", model_dir=model_dir, request=req, pixels=self.px_file)

        def copy_with(folder_name, tensors):
            folder = os.path.join(self.dir, folder_name)
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(model_dir, folder)
            if tensors is not None:
                save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
            return folder

        def same_states(folder, scheme):
            got, _ = self.cli(f"names_{scheme}", model_dir=folder, request=req, pixels=self.px_file)
            self.assertTrue(torch.equal(got["hidden_states"], base["hidden_states"]), scheme)
            if not keep_folders:
                shutil.rmtree(folder, ignore_errors=True)

        for scheme, rules in renames.items():
            renamed = {}
            for k, v in weights.items():
                for old, new in rules:
                    if k.startswith(old):
                        k = None if new is None else new + k[len(old):]
                        break
                if k is not None:
                    renamed[k] = v
            if untied_head and scheme == untied_head[0]:  # an untied head, as some exports write it
                renamed["lm_head.weight"] = weights[untied_head[1]].clone()
            same_states(copy_with(f"ckpt_{scheme}", renamed), scheme)
        if sharded:  # like the real downloads: model-0000N-of-0000M + index
            folder = copy_with("ckpt_sharded", None)
            os.remove(os.path.join(folder, "model.safetensors"))
            names = sorted(weights)
            shards = [names[: len(names) // 2], names[len(names) // 2:]]
            weight_map = {}
            for i, part in enumerate(shards):
                file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                save_file({k: weights[k] for k in part}, os.path.join(folder, file), metadata={"format": "pt"})
                weight_map.update({k: file for k in part})
            with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {}, "weight_map": weight_map}, f)
            same_states(folder, "sharded")
        broken = {k: v for k, v in weights.items() if k not in missing}
        self.assertEqual(len(broken), len(weights) - len(missing), "the weights to drop must exist")
        folder = copy_with("ckpt_missing", broken)
        self.cli_error("missing", needles, model_dir=folder, request=req, pixels=self.px_file)
        if not keep_folders:
            shutil.rmtree(folder, ignore_errors=True)
        return weights

    def write_config(self, name, cfg):
        """A folder holding only config.json; returns it."""
        folder = os.path.join(self.dir, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f)
        return folder

    def check_other_family_refused(self, model_type, needle, model_dir=None, edit=None, **flags):
        """A copy of the checkpoint whose config.json says another model_type."""
        model_dir = model_dir or self.model_dir
        other = os.path.join(self.dir, "other_family")
        shutil.rmtree(other, ignore_errors=True)
        shutil.copytree(model_dir, other)
        with open(os.path.join(other, "config.json")) as f:
            cfg = json.load(f)
        cfg["model_type"] = model_type
        if edit:
            edit(cfg)
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.cli_error("other", needle, model_dir=other, **flags)
        return other, cfg

    # -- the planned forward --------------------------------------------------------

    def planned_cases(self):
        """Hook: (label, positions, layers, prefix expected) for the planned
        forward; every position lies after the text before the image, so
        the prefix cache is not empty."""
        first_image = min(p for p in self.positions if p >= self.first_image_position())
        after = [p for p in self.positions if p >= first_image]
        return [("all layers", after, self.all_layers(), True)]

    def first_image_position(self):
        ids = self.input_ids[0].tolist()
        return ids.index(self.image_token_id())

    def image_token_id(self):
        """Hook: the id image features replace (or cross-attention keys on)."""
        return self.hf_model("float32").config.image_token_id

    def check_planned(self, model_dir=None, inputs=None, px_file=None, label="", **flags):
        """--engine=planned (prefix cache, rows-only deepest layer, packed
        matmuls) against the plain forward and against transformers."""
        ref_all = self.hf_hidden("float32", inputs, model_dir)
        # The plain forward (the default engine) of every position and layer.
        full = self.full_forward("float32", model_dir, inputs, px_file, **flags)["hidden_states"]
        for name, positions, layers, with_prefix in self.planned_cases():
            tag = re.sub(r"\W+", "_", f"{label}{name}")
            plain = full[layers][:, :, [self.positions.index(p) for p in positions]]
            planned, stdout = self.run_forward("float32", positions, layers, f"planned_{tag}", model_dir=model_dir,
                                               inputs=inputs, px_file=px_file, engine="planned", **flags)
            m = re.search(r"prefix_length=(\d+) prefix_layers=(\d+)", stdout)
            self.assertIsNotNone(m, stdout)
            length, depth = int(m.group(1)), int(m.group(2))
            if with_prefix:
                self.assertGreater(length, 0, f"{name}: the prefix cache should hold the text before the image")
                self.assertLessEqual(length, min(positions))
                self.assertEqual(depth, max(layers), f"{name}: the prefix cache holds every layer run")
            else:
                self.assertEqual(length, 0, f"{name}: no prefix cache past the layers it is exact for")
            print(f"planned forward{label} ({name}): prefix cache of {length} positions x {depth} layers")
            self.compare(planned["hidden_states"], plain, f"planned vs plain{label} ({name}) fp32",
                         REL_BOUND["float32"])
            self.compare(planned["hidden_states"], ref_all[layers][:, :, positions],
                         f"planned vs transformers{label} ({name}) fp32", REL_BOUND["float32"])

    def test_planned_forward_matches_plain_and_transformers(self):
        self.check_planned()

    # -- the whole extractor against the reference recipe --------------------------------

    def extract_images(self):
        """Hook: two image paths of one geometry (one prompt serves the batch)."""
        return list(self.batch_images)

    def extract_model_dirs(self):
        """Hook: the checkpoints the extractor checks run on."""
        return [self.model_dir]

    def recipe_model(self, model_dir):
        """Hook: transformers' model for the recipe (Qwen2.5-VL corrects its positions)."""
        return self.hf_model("float32", model_dir)

    def recipe(self, model_dir, bos, image_paths=None, text_only=False):
        """The reference recipe (tests/reference/spatial_id_reference.py) on
        each image alone: the model's chat template with the generation
        prompt, processor(text=..., images=...) under the BOS rule, the model
        with output_hidden_states. Returns (ids, [states, seq, hidden] per
        image); forwards are shared between rules that give the same ids."""
        processor = self.recipe_processor(model_dir)
        calls = []
        if text_only:
            calls.append(("text", reference.text_inputs(processor, self.EXTRACT_QUESTION, bos=bos,
                                                        **self.TEMPLATE_KWARGS)))
        else:
            for path in image_paths or self.extract_images():
                image = Image.open(path).convert("RGB")
                calls.append((path, reference.image_inputs(processor, self.EXTRACT_QUESTION, image, bos=bos,
                                                           **self.TEMPLATE_KWARGS)))
        ids, states = None, []
        for what, inputs in calls:
            row = inputs["input_ids"][0].tolist()
            self.assertTrue(ids is None or row == ids, "one prompt for every image of the batch")
            ids = row
            key = (model_dir, what, tuple(row))
            if key not in self.recipe_cache:
                model = self.recipe_model(model_dir)
                self.before_hf_call(model)
                with torch.no_grad():
                    out = model(**to_device(reference.model_inputs(model, inputs)), output_hidden_states=True)
                self.recipe_cache[key] = torch.stack(out.hidden_states)[:, 0].cpu()
            states.append(self.recipe_cache[key])
        return ids, states

    def recipe_processor(self, model_dir):
        """AutoProcessor of the folder, as the reference loads it (prepare's
        own for self.model_dir: loading one can take seconds)."""
        from transformers import AutoProcessor
        key = ("processor", model_dir)
        if key not in self.recipe_cache:
            same = model_dir == self.model_dir and getattr(self, "processor", None) is not None
            self.recipe_cache[key] = self.processor if same else AutoProcessor.from_pretrained(model_dir)
        return self.recipe_cache[key]

    def recipe_rows(self, model_dir, ids, states, pooling):
        """{word: ([positions], [states, batch, hidden])} by the reference's target rule."""
        tok = self.recipe_processor(model_dir).tokenizer
        rows = {}
        for word in self.EXTRACT_WORDS:
            positions = reference.word_positions(tok, ids, word, pooling)
            self.assertIsNotNone(positions, f"'{word}' is not in the prompt")
            rows[word] = (positions, torch.stack([reference.pool(s, positions) for s in states], 1))
        return rows

    def extract(self, name, model_dir, **flags):
        """The tool's extract mode: ({word: [layers, batch, hidden]}, info)."""
        flags.setdefault("images", ",".join(self.extract_images()))
        got, stdout = self.cli(name, mode="extract", model_dir=model_dir, dtype="float32",
                               question=self.EXTRACT_QUESTION, words=",".join(self.EXTRACT_WORDS), **flags)
        info = json.loads(stdout.strip().splitlines()[-1])
        return {w: got[f"target_{w}"] for w in self.EXTRACT_WORDS}, info

    def check_extraction(self, got, info, ids, rows, label, model_dir):
        tok = self.recipe_processor(model_dir).tokenizer
        self.assertEqual(info["ids"], ids, f"{label}: prompt ids")
        self.assertEqual(info["layers"], self.all_layers())
        for word, (positions, ref) in rows.items():
            self.assertEqual(info["positions"][word], positions, f"{label}: '{word}' positions")
            # The key the output files use: the reference's token string.
            self.assertEqual(info["tokens"][word], reference.target_token(tok, word), word)
            self.compare(got[word], ref, f"{label} '{word}'", REL_BOUND["float32"])

    def test_extractor_matches_reference_recipe(self):
        """Extractor<F> (chat template, BOS rule, target position, pooling,
        forward) on PNG images against the reference recipe, fp32, both
        engines and both BOS rules."""
        for model_dir in self.extract_model_dirs():
            name = os.path.basename(model_dir)
            ids_by_rule = {}
            for bos in ("processor", "chat_template"):
                ids, states = self.recipe(model_dir, bos)
                ids_by_rule[bos] = ids
                rows = self.recipe_rows(model_dir, ids, states, "last_subtoken")
                for engine in ("planned", "plain"):
                    label = f"{name} extractor, --bos={bos} --engine={engine}"
                    got, info = self.extract(f"extract_{bos}_{engine}", model_dir, bos=bos, engine=engine)
                    self.check_extraction(got, info, ids, rows, label, model_dir)
                    if engine == "planned" and self.PREFIX_FOR_ALL_LAYERS:
                        self.assertGreater(info["prefix_length"], 0, label)
                        self.assertEqual(info["engine_note"], "", label)
                    elif engine == "planned":
                        self.assertEqual(info["prefix_length"], 0, label)
                        self.assertIn("no shared-prefix cache", info["engine_note"], label)
                    else:
                        self.assertEqual(info["prefix_length"], 0, label)
            self.check_bos_rules(model_dir, ids_by_rule)

    def check_bos_rules(self, model_dir, ids_by_rule):
        """The two BOS rules differ exactly when the template writes BOS itself."""
        tok = self.recipe_processor(model_dir).tokenizer
        proc, chat = ids_by_rule["processor"], ids_by_rule["chat_template"]
        if self.TEMPLATE_WRITES_BOS:
            self.assertEqual(proc[:2], [tok.bos_token_id] * 2, "processor(text=...) adds a second BOS")
            self.assertEqual(proc[1:], chat)
        else:
            self.assertEqual(proc, chat)
        print(f"{os.path.basename(model_dir)}: --bos=processor gives {len(proc)} ids, chat_template {len(chat)}")

    def test_extractor_mean_of_subtokens(self):
        """--pooling=mean_of_subtokens against the mean of transformers' rows
        over the word's sub-tokens (their first run in the prompt)."""
        for model_dir in self.extract_model_dirs():
            name = os.path.basename(model_dir)
            ids, states = self.recipe(model_dir, "processor")
            rows = self.recipe_rows(model_dir, ids, states, "mean_of_subtokens")
            last = self.recipe_rows(model_dir, ids, states, "last_subtoken")
            several = [w for w, (p, _) in rows.items() if len(p) > 1]
            self.assertTrue(several, "some word must have several sub-tokens, or the mean is the last row")
            for word in several:  # so the check can tell the poolings apart
                self.assertGreater(float((rows[word][1] - last[word][1]).abs().max()), 1e-3 * scale_of(last[word][1]))
            got, info = self.extract("extract_mean", model_dir, pooling="mean_of_subtokens", engine="planned")
            self.check_extraction(got, info, ids, rows, f"{name} extractor, --pooling=mean_of_subtokens", model_dir)

    def recipe_text_states(self, states):
        """Hook: transformers' text-only states as the extractor numbers them."""
        return states

    def test_extractor_text_prompt_matches_reference_recipe(self):
        """The extractor's text-only prompt (the grid experiment's text
        embeddings) against the recipe on the rendered text alone."""
        for model_dir in self.extract_model_dirs():
            ids, states = self.recipe(model_dir, "processor", text_only=True)
            states = [self.recipe_text_states(s) for s in states]
            rows = self.recipe_rows(model_dir, ids, states, "last_subtoken")
            got, info = self.extract("extract_text", model_dir, text_only=True, images="")
            self.check_extraction(got, info, ids, rows, f"{os.path.basename(model_dir)} extractor, text only",
                                  model_dir)

    # -- speed (reported, not asserted) ----------------------------------------------------

    def check_throughput(self, kwargs, ids, px_file, reps=5, layers=None, model_dir=None, label="tiny model",
                         **flags):
        """Rough CPU throughput, batch 1: the reference recipe's forward
        (transformers with output_hidden_states) against the tool's."""
        model = self.hf_model("float32", model_dir)
        kwargs = to_device(kwargs)
        with torch.no_grad():
            self.before_hf_call(model)
            model(**kwargs, output_hidden_states=True)
            t0 = time.perf_counter()
            for _ in range(reps):
                self.before_hf_call(model)
                model(**kwargs, output_hidden_states=True)
            hf = (time.perf_counter() - t0) / reps
        req = self.request("speed", ids, [self.targets["frog"]], layers or self.all_layers())
        _, stdout = self.cli("speed", model_dir=model_dir or self.model_dir, request=req, dtype="float32",
                             pixels=px_file, repeat=reps, **flags)
        ours = float(stdout.split("forward_seconds=")[1].split()[0])
        print(f"throughput ({label}, {DEVICE}, 2 threads): transformers {1 / hf:.1f} images/s, "
              f"spatialid {1 / ours:.1f} images/s, ratio {hf / ours:.2f}x")
        self.assertGreater(ours, 0.0)

    def test_zz_throughput_report(self):
        """Rough CPU throughput, batch 1, reference recipe vs spatialid's forward."""
        self.check_throughput(self.hf_row_kwargs(self.inputs, 0, "float32"), self.input_ids[:1], self.px1_file)
