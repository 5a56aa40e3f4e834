"""spatialid's Gemma 3 family against transformers 5.3.0 (the oracle).

A tiny random-weight Gemma3ForConditionalGeneration (fixed seed) is saved
with save_pretrained, with every switch the real checkpoints use: a SigLIP
tower (no class token, gelu tanh, post-layernorm, patch 14) at 448 px, so
32x32 patches are average-pooled 4x4 into mm_tokens_per_image = 64 soft
tokens, as gemma-3's 64x64 -> 16x16; Gemma RMSNorms (1 + w) with non-zero
weights; a decoder with sandwich norms, QK-norm, GQA, head_dim * heads !=
hidden, query_pre_attn_scalar != head_dim, GeGLU, embeddings scaled by
sqrt(48) (not exact in bf16), sliding and full layers with separate RoPE
(full: theta 1e6, linear x8), and a sliding window of 16: shorter than
the prompt and than the 64-token image block, so the bidirectional
attention inside the image reaches past the window. The real Gemma 3
tokenizer (npm files, chat template included) makes the prompt; the
processor's settings match the tiny tower (448 x 448, bilinear, 0.5/0.5,
image_seq_length 64).

Checks: pixels against both transformers processors; prompt ids against
the processor; every hidden state at several positions in fp32 and bf16
(transformers in the same dtype, with the processor's token_type_ids as the
reference passes them); a truncated layer request (as gemma-4b keeps 0..29
of 34) and positions inside the image block; the image features; the
text-only forward; naming schemes; real gemma-3-4b/12b config.json files
and the 896 px token count; error reporting. Figures are printed.
"""
import json
import os
import shutil
import sys
import time
import unittest

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import oracle_lib  # noqa: E402

CLI = oracle_lib.runfile("tests/families/gemma3_forward_cli")
PROMPT_TEXT = "Is the frog to the left or right of the camel?"
LAYER_TYPES = ["sliding_attention", "sliding_attention", "full_attention",
               "sliding_attention", "sliding_attention", "full_attention"]
NUM_TEXT_LAYERS = len(LAYER_TYPES)
TEXT_HIDDEN = 48
IMAGE_SIZE = 448
IMAGE_TOKENS = 64
SLIDING_WINDOW = 16
PROCESSOR_SETTINGS = dict(
    size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, resample=2, do_resize=True, do_rescale=True,
    rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    do_convert_rgb=None, do_pan_and_scan=None)
# fp32 must agree to 1e-4 of the activation scale (DESIGN.md); bf16 to the
# stated bound, against transformers run in bf16.
REL_BOUND = {"float32": 1e-4, "bfloat16": 2e-2}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
IMAGE_TOKEN_ID = 262144


def make_images(folder):
    """Two 896x896 grid-style PNGs (shapes on a transparent canvas, read as
    RGB like the reference) and one odd-sized noise PNG."""
    paths = []
    for i, (a, b) in enumerate([((40, 600), (560, 180)), ((620, 60), (100, 500))]):
        canvas = Image.new("RGBA", (896, 896), (0, 0, 0, 0))
        d = ImageDraw.Draw(canvas)
        d.ellipse([a[0], a[1], a[0] + 200, a[1] + 150], fill=(201, 150, 80, 255))
        d.polygon([(a[0] + 60, a[1]), (a[0] + 100, a[1] - 70), (a[0] + 140, a[1])], fill=(190, 140, 70, 200))
        d.ellipse([b[0], b[1], b[0] + 150, b[1] + 150], fill=(60, 170, 70, 255))
        d.ellipse([b[0] + 20, b[1] + 10, b[0] + 60, b[1] + 50], fill=(255, 255, 255, 255))
        canvas = canvas.resize((896, 896), Image.LANCZOS, box=(1, 1, 895, 895))  # soft edges
        path = os.path.join(folder, f"grid_{i}.png")
        canvas.save(path)
        paths.append(path)
    # Landscape: Pillow 13 runs the vertical pass first when the height
    # shrinks by more than twice the width's shrink (Resample.c), which
    # io::PillowResize (Pillow <= 12's order, the paper's) does not follow.
    rng = np.random.default_rng(11)
    noise = rng.integers(0, 256, size=(333, 517, 3), dtype=np.uint8)
    noise[100:300, 50:250] = [250, 20, 20]
    path = os.path.join(folder, "noise.png")
    Image.fromarray(noise).save(path)
    paths.append(path)
    return paths


def tiny_config():
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig
    text = Gemma3TextConfig(
        vocab_size=262208, hidden_size=TEXT_HIDDEN, intermediate_size=96, num_hidden_layers=NUM_TEXT_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24,
        sliding_window=SLIDING_WINDOW, layer_types=LAYER_TYPES, max_position_embeddings=1024,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}},
        rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh")
    vision = SiglipVisionConfig(hidden_size=40, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                                image_size=IMAGE_SIZE, patch_size=14, vision_use_head=False, layer_norm_eps=1e-6,
                                hidden_act="gelu_pytorch_tanh")
    return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=IMAGE_TOKENS)


def build_checkpoint(model_dir):
    from transformers import (AutoTokenizer, Gemma3ForConditionalGeneration, Gemma3ImageProcessorFast,
                              Gemma3Processor)
    torch.manual_seed(1234)
    model = Gemma3ForConditionalGeneration(tiny_config()).eval()
    # transformers initialises RMSNorm offsets and the projection to zero and
    # attention nearly uniform; random norms, a random projection and larger
    # matrices make every hidden state depend on position and image.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("mm_input_projection_weight"):
                p.normal_(0.0, 0.3)
            elif "norm" in name and p.dim() == 1 and "vision_tower" not in name:
                p.normal_(0.0, 0.4)
            elif p.dim() >= 2:
                p.mul_(3.0)
    model.save_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(oracle_lib.tokenizer_dir("gemma3"))
    assert tokenizer.chat_template, "the npm Gemma 3 tokenizer_config.json carries the chat template"
    image_processor = Gemma3ImageProcessorFast(**PROCESSOR_SETTINGS)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                chat_template=tokenizer.chat_template, image_seq_length=IMAGE_TOKENS)
    processor.save_pretrained(model_dir)
    image_processor.save_pretrained(model_dir)  # preprocessor_config.json, as real downloads have
    return model


def scale_of(t):
    return max(float(t.abs().max()), 1e-12)


class Gemma3OracleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.dir = os.path.join(oracle_lib.tmpdir(), "gemma3_oracle")
        shutil.rmtree(cls.dir, ignore_errors=True)
        os.makedirs(cls.dir)
        cls.model_dir = os.path.join(cls.dir, "tiny-gemma3")
        build_checkpoint(cls.model_dir)
        from transformers import AutoProcessor, Gemma3ImageProcessorFast
        cls.processor = AutoProcessor.from_pretrained(cls.model_dir)
        assert isinstance(cls.processor.image_processor, Gemma3ImageProcessorFast)
        cls.images = make_images(cls.dir)
        cls.rgb = [Image.open(p).convert("RGB") for p in cls.images]
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT_TEXT}]}]
        cls.prompt = cls.processor.apply_chat_template(messages, add_generation_prompt=True)
        assert cls.prompt == ("<bos><start_of_turn>user\n<start_of_image>" + PROMPT_TEXT +
                              "<end_of_turn>\n<start_of_turn>model\n"), cls.prompt
        # Batch of two grid images with the same prompt. The template writes
        # <bos> itself, so no second one (apply_chat_template's rule).
        inputs = cls.processor(images=[[cls.rgb[0]], [cls.rgb[1]]], text=[cls.prompt, cls.prompt], add_special_tokens=False,
                               return_tensors="pt")
        cls.input_ids = inputs["input_ids"]
        cls.token_type_ids = inputs["token_type_ids"]
        cls.pixel_values = inputs["pixel_values"]
        ids = cls.input_ids[0].tolist()
        tok = cls.processor.tokenizer
        cls.targets = {}
        for word in ("frog", "left", "right"):
            last = tok.convert_ids_to_tokens(tok(" " + word, add_special_tokens=False)["input_ids"])[-1]
            cls.targets[word] = tok.convert_ids_to_tokens(ids).index(last)
        cls.image_positions = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_ID]
        assert len(cls.image_positions) == IMAGE_TOKENS, len(cls.image_positions)
        assert len(ids) > SLIDING_WINDOW * 4
        ip = cls.image_positions
        cls.positions = sorted({0, ip[0] - 1, ip[0], ip[5], ip[40], ip[-1], ip[-1] + 1,
                                *cls.targets.values(), len(ids) - 1})
        cls.px_file = os.path.join(cls.dir, "pixels.safetensors")
        save_file({"pixel_values": cls.pixel_values.contiguous()}, cls.px_file)
        cls.px1_file = os.path.join(cls.dir, "pixels1.safetensors")
        save_file({"pixel_values": cls.pixel_values[:1].contiguous()}, cls.px1_file)
        cls.hf_cache = {}
        print(f"\nprompt tokens: {len(ids)}; image tokens {ip[0]}..{ip[-1]}; targets {cls.targets}; "
              f"positions {cls.positions}")

    # -- helpers -----------------------------------------------------------

    def cli(self, name, **flags):
        out = os.path.join(self.dir, name + ".safetensors")
        args = [CLI, f"--out={out}", "--threads=2"]
        for k, v in flags.items():
            args.append(f"--{k}" if v is True else f"--{k}={v}")
        proc = oracle_lib.run(args)
        return load_file(out), proc.stdout

    def cli_json(self, **flags):
        args = [CLI] + [f"--{k}" if v is True else f"--{k}={v}" for k, v in flags.items()]
        return json.loads(oracle_lib.run(args).stdout.strip().splitlines()[-1])

    def request(self, name, input_ids, positions, layers):
        path = os.path.join(self.dir, name + ".json")
        with open(path, "w") as f:
            json.dump({"input_ids": input_ids.tolist(), "positions": list(positions), "layers": list(layers)}, f)
        return path

    def hf_model(self, dtype_name, **text_overrides):
        from transformers import Gemma3Config, Gemma3ForConditionalGeneration
        # Loaded in the dtype, as the reference does (Module.to(dtype) would
        # also round the RoPE inverse frequencies kept in fp32).
        config = Gemma3Config.from_pretrained(self.model_dir)
        for k, v in text_overrides.items():
            setattr(config.text_config, k, v)
        return Gemma3ForConditionalGeneration.from_pretrained(self.model_dir, config=config,
                                                              dtype=DTYPES[dtype_name]).eval()

    def hf_hidden(self, dtype_name, text_only=False, token_types=True, model=None):
        """transformers' hidden states, batch 1 per image as the reference runs."""
        key = (dtype_name, text_only, token_types)
        if model is None and key in self.hf_cache:
            return self.hf_cache[key]
        m = model if model is not None else self.hf_model(dtype_name)
        per_row = []
        with torch.no_grad():
            if text_only:
                out = m(input_ids=self.text_ids, token_type_ids=torch.zeros_like(self.text_ids),
                        output_hidden_states=True)
                per_row.append(torch.stack(out.hidden_states)[:, 0])
            else:
                for b in range(self.input_ids.shape[0]):
                    kw = {"token_type_ids": self.token_type_ids[b:b + 1]} if token_types else {}
                    out = m(input_ids=self.input_ids[b:b + 1], pixel_values=self.pixel_values[b:b + 1],
                            output_hidden_states=True, **kw)
                    per_row.append(torch.stack(out.hidden_states)[:, 0])
        result = torch.stack(per_row, 1)  # [layers, batch, seq, hidden]
        if model is None:
            self.hf_cache[key] = result
        return result

    def compare(self, ours, ref, label, rel_bound):
        """Per hidden state: max |diff| against rel_bound x max |activation|."""
        worst_abs, worst_rel = 0.0, 0.0
        for layer in range(ref.shape[0]):
            diff = float((ours[layer].float() - ref[layer].float()).abs().max())
            rel = diff / scale_of(ref[layer].float())
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
            self.assertLessEqual(rel, rel_bound, f"{label}: hidden state {layer}: max abs diff {diff:.3e}"
                                 f" is {rel:.2e} of the scale {scale_of(ref[layer].float()):.3e}")
        print(f"{label}: worst max-abs diff {worst_abs:.3e}, worst relative {worst_rel:.3e} "
              f"(bound {rel_bound:.0e})")
        return worst_abs, worst_rel

    def run_forward(self, dtype_name, positions, layers, name, **extra):
        req = self.request(name, self.input_ids, positions, layers)
        flags = dict(model_dir=self.model_dir, request=req, dtype=dtype_name, pixels=self.px_file)
        flags.update(extra)
        return self.cli(name, **flags)

    # -- pixels ------------------------------------------------------------

    def test_pixels_match_transformers5_default_processor(self):
        from transformers import AutoImageProcessor, Gemma3ImageProcessorFast
        auto = AutoImageProcessor.from_pretrained(self.model_dir)
        self.assertIsInstance(auto, Gemma3ImageProcessorFast, "transformers 5 should load the fast one")
        ref = self.processor(images=[[im] for im in self.rgb], text=["<start_of_image>"] * 3, return_tensors="pt")["pixel_values"]
        self.assertTrue(torch.equal(ref, auto(self.rgb, return_tensors="pt")["pixel_values"]))
        got, _ = self.cli("px_fast", mode="preprocess", model_dir=self.model_dir, images=",".join(self.images))
        self.assertEqual(got["pixel_values"].shape, ref.shape)
        diff = float((got["pixel_values"] - ref).abs().max())
        print(f"pixels vs Gemma3Processor (fast image processor): max abs diff {diff:.3e} over {ref.numel()} values")
        self.assertEqual(diff, 0.0)
        # processor_config.json alone (transformers 5's layout) gives the same settings.
        alt = os.path.join(self.dir, "processor_only")
        shutil.rmtree(alt, ignore_errors=True)
        os.makedirs(alt)
        shutil.copy(os.path.join(self.model_dir, "processor_config.json"), alt)
        got2, _ = self.cli("px_fast2", mode="preprocess", model_dir=alt, images=",".join(self.images))
        self.assertTrue(torch.equal(got2["pixel_values"], got["pixel_values"]))

    def test_pixels_match_slow_pillow_processor(self):
        from transformers import Gemma3ImageProcessor
        ref = Gemma3ImageProcessor(**PROCESSOR_SETTINGS)(self.rgb, return_tensors="pt")["pixel_values"]
        fast = self.processor.image_processor(self.rgb, return_tensors="pt")["pixel_values"]
        got, _ = self.cli("px_slow", mode="preprocess", model_dir=self.model_dir, images=",".join(self.images),
                          resize="pillow")
        diff = float((got["pixel_values"] - ref).abs().max())
        gap = float((fast - ref).abs().max())
        print(f"pixels vs Gemma3ImageProcessor (Pillow): max abs diff {diff:.3e}; fast vs slow differ by up to {gap:.3e}")
        self.assertLessEqual(diff, 1e-6)
        self.assertGreater(gap, 1e-3, "the two processors should differ; the test would not tell them apart")

    # -- prompt ------------------------------------------------------------

    def test_prompt_ids_match_processor(self):
        tok = self.processor.tokenizer
        for with_image in (True, False):
            flags = dict(mode="prompt", model_dir=self.model_dir, text=PROMPT_TEXT)
            if not with_image:
                flags["text_only"] = True
            ours = self.cli_json(**flags)
            content = ([{"type": "image", "image": self.rgb[0]}] if with_image else []) + \
                [{"type": "text", "text": PROMPT_TEXT}]
            out = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                     add_generation_prompt=True, tokenize=True, return_dict=True)
            want = [int(i) for i in np.asarray(out["input_ids"]).reshape(-1)]
            self.assertFalse(ours["add_special_tokens"])
            self.assertEqual(ours["input_ids"], want, f"with_image={with_image}")
            if with_image:
                self.assertEqual(want, self.input_ids[0].tolist())
                self.assertEqual(sum(1 for i in want if i == IMAGE_TOKEN_ID), IMAGE_TOKENS)
            # What a bare processor(text=rendered) call does: the tokenizer
            # adds <bos> again (GemmaTokenizer add_bos_token=True).
            images = [self.rgb[0]] if with_image else None
            double = self.processor(text=ours["text"], images=images)["input_ids"][0]
            self.assertEqual(double[:2], [tok.bos_token_id, tok.bos_token_id])
            self.assertEqual(double[1:], want)
            print(f"prompt with_image={with_image}: {len(want)} ids identical to apply_chat_template"
                  f"(tokenize=True); processor(text=rendered) gives {len(double)} ids starting <bos><bos>")

    # -- hidden states -----------------------------------------------------

    def check_dtype(self, dtype_name):
        layers = list(range(NUM_TEXT_LAYERS + 1))
        ref = self.hf_hidden(dtype_name)[:, :, self.positions]
        # Batch 2 in one forward: GEMM blocking may differ from transformers'
        # batch-1 runs, so rows agree to rounding, within the stated bound.
        got, _ = self.run_forward(dtype_name, self.positions, layers, f"fwd_{dtype_name}")
        ours = got["hidden_states"]
        self.assertEqual(ours.dtype, DTYPES[dtype_name])
        self.assertEqual(tuple(ours.shape), (len(layers), 2, len(self.positions), TEXT_HIDDEN))
        self.compare(ours, ref, f"hidden states {dtype_name}, batch 2", REL_BOUND[dtype_name])
        req = self.request(f"b1_{dtype_name}", self.input_ids[:1], self.positions, layers)
        one, _ = self.cli(f"b1_{dtype_name}", model_dir=self.model_dir, request=req, dtype=dtype_name,
                          pixels=self.px1_file)
        mismatches = int((one["hidden_states"] != ref[:, :1]).sum())
        print(f"hidden states {dtype_name}, batch 1: {mismatches} of {ref[:, :1].numel()} values differ "
              f"from transformers")
        # Batch 1, as the reference runs: the same ATen kernels in the same
        # order (explicit boolean masks included), so every value is identical.
        self.assertEqual(mismatches, 0)

    def test_hidden_states_fp32(self):
        self.check_dtype("float32")

    def test_hidden_states_bf16(self):
        self.check_dtype("bfloat16")

    def test_masks_matter(self):
        """The oracle can tell: without the image-block bidirectional mask, or
        with a window wider than the prompt, transformers' states move far
        beyond the fp32 bound."""
        ref = self.hf_hidden("float32")
        no_types = self.hf_hidden("float32", token_types=False)
        wide = self.hf_hidden("float32", model=self.hf_model("float32", sliding_window=4096))
        first_image, last = self.image_positions[0], self.input_ids.shape[1] - 1
        d_types = float((ref[1:, :, first_image] - no_types[1:, :, first_image]).abs().max()) / scale_of(ref[1:, :, first_image])
        d_window = float((ref[1:, :, last] - wide[1:, :, last]).abs().max()) / scale_of(ref[1:, :, last])
        print(f"relative effect at the first image token of the bidirectional mask {d_types:.2e}; "
              f"at the last token of the sliding window {d_window:.2e}")
        self.assertGreater(d_types, 1e-2)
        self.assertGreater(d_window, 1e-2)

    def test_truncated_layers_and_image_positions(self):
        """A preset that stops before the last layers (gemma-4b keeps 0..29 of
        34), and single positions inside the image block, whose states depend
        on the rest of the block."""
        ref = self.hf_hidden("float32")
        kept = list(range(NUM_TEXT_LAYERS - 1))  # the final norm never runs
        got, _ = self.run_forward("float32", self.positions, kept, "truncated")
        self.assertEqual(tuple(got["hidden_states"].shape), (len(kept), 2, len(self.positions), TEXT_HIDDEN))
        self.compare(got["hidden_states"], ref[kept][:, :, self.positions], "layers 0..4 of 0..6 fp32",
                     REL_BOUND["float32"])
        full, _ = self.run_forward("float32", self.positions, list(range(NUM_TEXT_LAYERS + 1)), "full")
        ip = self.image_positions
        worst = 0.0
        for positions, layers in (([ip[5]], [2, 3]), ([ip[0], ip[40]], [NUM_TEXT_LAYERS]), ([ip[-1] + 1], [1])):
            part, _ = self.run_forward("float32", positions, layers, "part")
            cols = [self.positions.index(p) for p in positions]
            expect = full["hidden_states"][layers][:, :, cols]
            worst = max(worst, float((part["hidden_states"] - expect).abs().max()) / scale_of(expect))
            self.compare(part["hidden_states"], ref[layers][:, :, positions], f"positions {positions} fp32",
                         REL_BOUND["float32"])
        print(f"early stop inside the image block vs full forward: worst relative diff {worst:.3e}")
        self.assertLessEqual(worst, 1e-5)

    def test_image_features_fp32(self):
        got, _ = self.run_forward("float32", [self.targets["frog"]], [1], "feat", image_features=True)
        model = self.hf_model("float32")
        with torch.no_grad():
            ref = model.model.get_image_features(pixel_values=self.pixel_values).pooler_output
        self.assertEqual(tuple(got["image_features"].shape), (2, IMAGE_TOKENS, TEXT_HIDDEN))
        self.compare(got["image_features"].unsqueeze(0), ref.unsqueeze(0), "image features fp32", REL_BOUND["float32"])

    def test_text_only_forward(self):
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
        out = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True, return_tensors="pt")
        type(self).text_ids = out["input_ids"]
        n = self.text_ids.shape[1]
        self.assertGreater(n, SLIDING_WINDOW)
        positions = [0, n // 2, n - 1]
        req = self.request("text", self.text_ids, positions, range(NUM_TEXT_LAYERS + 1))
        got, _ = self.cli("text", model_dir=self.model_dir, request=req, dtype="float32", text_only=True)
        ref = self.hf_hidden("float32", text_only=True)[:, :, positions]
        self.compare(got["hidden_states"], ref, "text-only fp32", REL_BOUND["float32"])

    def test_cpp_pixels_end_to_end(self):
        """Images -> C++ processor -> forward equals transformers' processor -> model."""
        req = self.request("e2e", self.input_ids, self.positions, [0, 3, NUM_TEXT_LAYERS])
        got, _ = self.cli("e2e", model_dir=self.model_dir, request=req, dtype="float32",
                          images=",".join(self.images[:2]))
        self.assertTrue(torch.equal(got["pixel_values"], self.pixel_values))
        ref = self.hf_hidden("float32")[[0, 3, NUM_TEXT_LAYERS]][:, :, self.positions]
        self.compare(got["hidden_states"], ref, "end to end fp32", REL_BOUND["float32"])

    # -- checkpoints and configs -------------------------------------------

    def test_checkpoint_naming_schemes(self):
        """Hub/save_pretrained, module (>= 4.52) and bare Gemma3Model names load alike."""
        weights = load_file(os.path.join(self.model_dir, "model.safetensors"))
        self.assertIn("language_model.model.embed_tokens.weight", weights, "save_pretrained naming changed")
        renames = {
            "module": [("language_model.model.", "model.language_model."), ("vision_tower.", "model.vision_tower."),
                       ("multi_modal_projector.", "model.multi_modal_projector.")],
            "bare": [("language_model.model.", "language_model.")],
        }
        req = self.request("names", self.input_ids, self.positions, [1, NUM_TEXT_LAYERS])
        base, _ = self.cli("names_legacy", model_dir=self.model_dir, request=req, pixels=self.px_file)
        for scheme, rules in renames.items():
            folder = os.path.join(self.dir, f"ckpt_{scheme}")
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(self.model_dir, folder)
            renamed = {}
            for k, v in weights.items():
                for old, new in rules:
                    if k.startswith(old):
                        k = new + k[len(old):]
                        break
                renamed[k] = v
            if scheme == "module":  # an untied LM head, as some exports write it
                renamed["lm_head.weight"] = weights["language_model.model.embed_tokens.weight"].clone()
            save_file(renamed, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
            got, _ = self.cli(f"names_{scheme}", model_dir=folder, request=req, pixels=self.px_file)
            self.assertTrue(torch.equal(got["hidden_states"], base["hidden_states"]), scheme)
        folder = os.path.join(self.dir, "ckpt_missing")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.model_dir, folder)
        broken = dict(weights)
        del broken["language_model.model.layers.2.post_feedforward_layernorm.weight"]
        save_file(broken, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        with self.assertRaises(AssertionError) as ctx:
            self.cli("missing", model_dir=folder, request=req, pixels=self.px_file)
        self.assertIn("missing (language_model.model.layers.2.post_feedforward_layernorm.weight)", str(ctx.exception))

    def test_real_gemma3_configs_and_896px_token_count(self):
        """config.json as google/gemma-3-4b-it and -12b-it spell it (most keys
        left to defaults), and the real processor geometry at 896 x 896."""
        from transformers import (AutoTokenizer, Gemma3Config, Gemma3ImageProcessorFast, Gemma3Processor)
        text_4b = {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                   "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                   "sliding_window": 1024}
        text_12b = dict(text_4b, hidden_size=3840, intermediate_size=15360, num_hidden_layers=48,
                        num_attention_heads=16, num_key_value_heads=8, query_pre_attn_scalar=256)
        vision = {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                  "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 27,
                  "patch_size": 14, "vision_use_head": False}
        for name, text in (("4b", text_4b), ("12b", text_12b)):
            cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
                   "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
                   "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
                   "text_config": text, "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
                   "vision_config": vision}
            folder = os.path.join(self.dir, f"real_config_{name}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(cfg, f)
            ours = self.cli_json(mode="config", model_dir=folder)
            hf = Gemma3Config.from_pretrained(folder)
            t, v = hf.text_config, hf.vision_config
            rf, rs = t.rope_parameters["full_attention"], t.rope_parameters["sliding_attention"]
            expect = {"num_layers": t.num_hidden_layers, "hidden_size": t.hidden_size,
                      "intermediate_size": t.intermediate_size, "num_heads": t.num_attention_heads,
                      "num_kv_heads": t.num_key_value_heads, "head_dim": t.head_dim, "vocab_size": t.vocab_size,
                      "rms_norm_eps": t.rms_norm_eps, "query_pre_attn_scalar": t.query_pre_attn_scalar,
                      "sliding_window": t.sliding_window, "layer_types": t.layer_types,
                      "rope_full": {"rope_type": rf["rope_type"], "rope_theta": rf["rope_theta"],
                                    "factor": rf.get("factor", 1.0)},
                      "rope_sliding": {"rope_type": rs["rope_type"], "rope_theta": rs["rope_theta"],
                                       "factor": rs.get("factor", 1.0)},
                      "vision_layers": v.num_hidden_layers, "vision_hidden_size": v.hidden_size,
                      "vision_intermediate_size": v.intermediate_size, "vision_heads": v.num_attention_heads,
                      "image_size": v.image_size, "patch_size": v.patch_size,
                      "pool_kernel": (v.image_size // v.patch_size) // int(hf.mm_tokens_per_image ** 0.5),
                      "image_tokens": hf.mm_tokens_per_image, "image_token_index": hf.image_token_index,
                      "boi_token_index": hf.boi_token_index, "eoi_token_index": hf.eoi_token_index,
                      "dtype": "BFloat16"}
            self.assertEqual(ours, expect, name)
            print(f"gemma-3-{name} config: {ours['num_layers']} layers x {ours['hidden_size']} "
                  f"({ours['layer_types'].count('full_attention')} global), rope full {ours['rope_full']}, "
                  f"sliding {ours['rope_sliding']}, {ours['image_tokens']} image tokens, {ours['dtype']}")
        # The real processor geometry on an 896 x 896 grid image.
        real = os.path.join(self.dir, "real_processor")
        tok = AutoTokenizer.from_pretrained(oracle_lib.tokenizer_dir("gemma3"))
        ip = Gemma3ImageProcessorFast(**dict(PROCESSOR_SETTINGS, size={"height": 896, "width": 896}))
        Gemma3Processor(image_processor=ip, tokenizer=tok, chat_template=tok.chat_template,
                        image_seq_length=256).save_pretrained(real)
        shutil.copy(os.path.join(self.dir, "real_config_4b", "config.json"), real)
        processor = Gemma3Processor.from_pretrained(real)
        content = [{"type": "image", "image": self.rgb[0]}, {"type": "text", "text": PROMPT_TEXT}]
        out = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                            tokenize=True, return_dict=True, return_tensors="pt")
        want = out["input_ids"][0].tolist()
        ours = self.cli_json(mode="prompt", model_dir=real, text=PROMPT_TEXT)
        self.assertEqual(ours["input_ids"], want)
        n_image = want.count(IMAGE_TOKEN_ID)
        self.assertEqual(n_image, 256)
        got, _ = self.cli("px_896", mode="preprocess", model_dir=real, images=self.images[0])
        self.assertTrue(torch.equal(got["pixel_values"], out["pixel_values"]))
        self.assertEqual(tuple(got["pixel_values"].shape), (1, 3, 896, 896))
        print(f"896x896 image: {n_image} <image_soft_token> of {len(want)} prompt ids, identical to "
              f"Gemma3Processor; pixels identical")

    def test_bad_inputs_are_errors(self):
        ids = self.input_ids.clone()
        ids[:, self.image_positions[3]] = 108
        req = self.request("bad", ids, [0], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn(f"{2 * IMAGE_TOKENS - 2} image tokens", str(ctx.exception))
        req = self.request("bad2", self.input_ids, [self.input_ids.shape[1]], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad2", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn("outside the sequence", str(ctx.exception))
        req = self.request("bad3", self.input_ids, [0], [NUM_TEXT_LAYERS + 1])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad3", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn("outside 0..6", str(ctx.exception))
        other = os.path.join(self.dir, "not_gemma3")
        shutil.rmtree(other, ignore_errors=True)
        shutil.copytree(self.model_dir, other)
        with open(os.path.join(other, "config.json")) as f:
            cfg = json.load(f)
        cfg["model_type"] = "llava"
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(cfg, f)
        req = self.request("other", self.input_ids, [0], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("other", model_dir=other, request=req, pixels=self.px_file)
        self.assertIn('model_type: expected "gemma3", got "llava"', str(ctx.exception))

    # -- speed (reported, not asserted) -------------------------------------

    def test_zz_throughput_report(self):
        """Rough CPU throughput, batch 1, reference recipe vs spatialid's forward."""
        ids, px, tt = self.input_ids[:1], self.pixel_values[:1], self.token_type_ids[:1]
        model = self.hf_model("float32")
        reps = 3
        with torch.no_grad():
            model(input_ids=ids, pixel_values=px, token_type_ids=tt, output_hidden_states=True)
            t0 = time.perf_counter()
            for _ in range(reps):
                model(input_ids=ids, pixel_values=px, token_type_ids=tt, output_hidden_states=True)
            hf = (time.perf_counter() - t0) / reps
        req = self.request("speed", ids, [self.targets["frog"]], list(range(NUM_TEXT_LAYERS)))
        _, stdout = self.cli("speed", model_dir=self.model_dir, request=req, dtype="float32",
                             pixels=self.px1_file, repeat=reps)
        ours = float(stdout.split("forward_seconds=")[1].split()[0])
        print(f"throughput (tiny model, CPU, 2 threads): transformers {1 / hf:.1f} images/s, "
              f"spatialid {1 / ours:.1f} images/s, ratio {hf / ours:.2f}x")
        self.assertGreater(ours, 0.0)


if __name__ == "__main__":
    unittest.main()
