"""spatialid's Llama 3.2 Vision (Mllama) family against transformers 5.3.0.

A tiny random-weight MllamaForConditionalGeneration (fixed seed) keeps every
switch of the real checkpoints: tiles with the real patch grid arithmetic
(112 px tiles of 14 px patches: 64 patches + the class token = 65 positions,
padded to 72 like 1601 -> 1608), up to 4 tiles with the 8 aspect ratios,
gated position/tile embeddings, a local transformer whose intermediate
layers are concatenated, a gated global transformer, and a Llama 3 decoder
(llama3 RoPE, GQA) with two gated cross-attention layers. Every gate is set
to a non-zero value (transformers initialises them to 0). The tokenizer is
the real Llama 3 one plus "<|image|>" (id 128256, as in Meta's files) and
the Llama 3.2 BOS post-processor; the chat template is Llama 3.2 Vision's.

Images: a grid-style picture (objects on a transparent canvas, opened with
.convert("RGB")) whose size maps to a 2x2 canvas with padding, like the
896 px grid images at 560 px tiles; a wide one on 3 of 4 tiles (a padding
tile); a very wide one that is downscaled onto 1x4 tiles; a small one that
is upscaled onto one tile. The prompt has text before and after "<|image|>".

Checks: pixels, aspect-ratio ids and masks against both transformers
processors (tiny and real 560 px geometry); prompt ids and the
cross-attention mask against MllamaProcessor; every hidden state at several
positions in fp32 and bf16 with an image, and text only (33-state
numbering); image features; two images in one prompt; early stopping;
checkpoint naming schemes; the real llama-11b config; errors.
"""
import datetime
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

CLI = oracle_lib.runfile("tests/families/mllama_forward_cli")
TEMPLATE = oracle_lib.runfile("spatialid/text/testdata/templates/llama_3_2_vision.jinja")
PROMPT_TEXT = "Is the frog to the left or right of the camel?"
IMAGE_TOKEN_ID = 128256
TILE = 112
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
NUM_TEXT_LAYERS = 6
CROSS_LAYERS = [1, 4]
# fp32 must agree to 1e-4 of the activation scale (DESIGN.md); bf16 to the
# stated bound, against transformers run in bf16.
REL_BOUND = {"float32": 1e-4, "bfloat16": 2e-2}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FIXED_DATE = datetime.datetime(2024, 7, 26)  # spatialid's default clock for strftime_now


def fixed_strftime_now(fmt):
    return FIXED_DATE.strftime(fmt)


def processor_settings(tile):
    """preprocessor_config.json values of the real checkpoints, with this tile size."""
    return dict(do_convert_rgb=True, do_resize=True, size={"height": tile, "width": tile}, resample=2,
                do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=CLIP_MEAN,
                image_std=CLIP_STD, do_pad=True, max_image_tiles=4)


def draw_object(size, kind, colour):
    big = Image.new("RGBA", (size * 4, size * 4), (0, 0, 0, 0))
    d = ImageDraw.Draw(big)
    if kind == "camel":
        d.ellipse([size * 0.4, size * 1.2, size * 3.6, size * 2.8], fill=colour)
        d.polygon([(size * 1.2, size * 1.3), (size * 1.6, size * 0.5), (size * 2.0, size * 1.3)], fill=colour)
        d.rectangle([size * 0.8, size * 2.6, size * 1.1, size * 3.9], fill=colour)
    else:
        d.ellipse([size * 0.5, size * 0.8, size * 3.5, size * 3.6], fill=colour)
        d.ellipse([size * 0.9, size * 0.3, size * 1.7, size * 1.1], fill=(255, 255, 255, 255))
    return big.resize((size, size), Image.LANCZOS)


def grid_image(side):
    """Two objects on a transparent canvas: the data engine's kind of PNG."""
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    camel = draw_object(side * 3 // 8, "camel", (201, 150, 80, 255))
    frog = draw_object(side * 5 // 16, "frog", (60, 170, 70, 255))
    canvas.paste(camel, (side // 16, side // 2), mask=camel)
    canvas.paste(frog, (side * 5 // 8, side // 8), mask=frog)
    return canvas


def noise_image(height, width, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    a[height // 4: height // 2, width // 5: width // 2] = [250, 20, 20]  # sharp edges to resample
    return Image.fromarray(a)


def make_images(folder, scale=1):
    """name -> path. At tile 112: grid 180x180 -> 2x2 (padded); wide 100x260 ->
    1x3 (a padding tile); long 150x500 -> 1x4, downscaled to 112x373; small
    90x60 -> 1x1, upscaled to 112x74."""
    os.makedirs(folder, exist_ok=True)
    images = {"grid": grid_image(180 * scale), "wide": noise_image(100 * scale, 260 * scale, 1),
              "long": noise_image(150 * scale, 500 * scale, 2), "small": noise_image(90 * scale, 60 * scale, 3)}
    paths = {}
    for name, img in images.items():
        paths[name] = os.path.join(folder, f"{name}.png")
        img.save(paths[name])
    return paths


def load_rgb(path):
    return Image.open(path).convert("RGB")  # as the reference opens images


def build_checkpoint(model_dir):
    from tokenizers.processors import TemplateProcessing
    from transformers import (AutoTokenizer, MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessor,
                              MllamaProcessor)
    torch.manual_seed(1234)
    tokenizer = AutoTokenizer.from_pretrained(oracle_lib.tokenizer_dir("llama3"))
    tokenizer.add_tokens(["<|image|>"], special_tokens=True)
    assert tokenizer.convert_tokens_to_ids("<|image|>") == IMAGE_TOKEN_ID
    # Llama 3.2's tokenizer.json adds <|begin_of_text|> through this post-processor.
    bos = tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=5, num_global_layers=2,
                  attention_heads=4, image_size=TILE, patch_size=14, max_num_tiles=4, norm_eps=1e-5,
                  intermediate_layers_indices=[1, 3], vision_output_dim=32 * 3, hidden_act="gelu")
    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=NUM_TEXT_LAYERS, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=128256, cross_attention_layers=CROSS_LAYERS, rms_norm_eps=1e-5,
                max_position_embeddings=131072, rope_theta=500000.0, hidden_act="silu",
                rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN_ID)
    model = MllamaForConditionalGeneration(config).eval()
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gate" in name:
                # Gates start at 0 (no image influence); trained ones are not.
                sign = torch.where(torch.rand(p.shape, generator=gen) < 0.3, -1.0, 1.0)
                p.copy_(sign * (0.4 + torch.rand(p.shape, generator=gen)))
            elif p.dim() >= 2:
                p.mul_(3.0)  # attention far from uniform, as in a trained model
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif "norm" in name and name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    model.save_pretrained(model_dir)
    image_processor = MllamaImageProcessor(**processor_settings(TILE))
    with open(TEMPLATE, encoding="utf-8") as f:
        template = f.read()
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    processor.save_pretrained(model_dir)
    image_processor.save_pretrained(model_dir)  # preprocessor_config.json, as the downloads have
    return model


def scale_of(t):
    return max(float(t.abs().max()), 1e-12)


def nested(images):
    return [[img] for img in images]


class MllamaOracleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.dir = os.path.join(oracle_lib.tmpdir(), "mllama_oracle")
        shutil.rmtree(cls.dir, ignore_errors=True)
        os.makedirs(cls.dir)
        cls.model_dir = os.path.join(cls.dir, "tiny-mllama")
        cls.model = build_checkpoint(cls.model_dir)
        from transformers import AutoProcessor, MllamaImageProcessorFast
        cls.processor = AutoProcessor.from_pretrained(cls.model_dir)
        assert isinstance(cls.processor.image_processor, MllamaImageProcessorFast)
        cls.paths = make_images(os.path.join(cls.dir, "images"))
        cls.rgb = {k: load_rgb(p) for k, p in cls.paths.items()}
        # The reference's prompt: one user turn, the image then the question.
        content = [{"type": "image"}, {"type": "text", "text": PROMPT_TEXT}]
        cls.prompt = cls.processor.apply_chat_template([{"role": "user", "content": content}],
                                                       add_generation_prompt=True)
        assert cls.prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>Is")
        # Batch of two rows with one token layout: the padded 2x2 grid image
        # and the 1x3 one (one padding tile).
        cls.batch_images = [cls.rgb["grid"], cls.rgb["wide"]]
        inputs = cls.processor(images=nested(cls.batch_images), text=[cls.prompt] * 2,
                               add_special_tokens=False, return_tensors="pt")
        cls.inputs = inputs
        cls.input_ids = inputs["input_ids"]
        ids = cls.input_ids[0].tolist()
        # The reference path (apply_chat_template with tokenize=True) gives the same ids.
        single = cls.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image", "image": cls.rgb["grid"]},
                                          {"type": "text", "text": PROMPT_TEXT}]}],
            add_generation_prompt=True, tokenize=True, return_dict=True)
        assert [int(i) for i in np.asarray(single["input_ids"]).reshape(-1)] == ids
        tok = cls.processor.tokenizer
        cls.image_pos = ids.index(IMAGE_TOKEN_ID)
        cls.targets = {}
        for word in ("frog", "left", "right"):
            last = tok.convert_ids_to_tokens(tok(" " + word, add_special_tokens=False)["input_ids"])[-1]
            cls.targets[word] = tok.convert_ids_to_tokens(ids).index(last)
        cls.positions = sorted({0, 2, cls.image_pos - 1, cls.image_pos, cls.image_pos + 1,
                                *cls.targets.values(), len(ids) - 1})
        cls.px_file = os.path.join(cls.dir, "pixels.safetensors")
        cls.save_pixels(cls.px_file, inputs)
        cls.px1_file = os.path.join(cls.dir, "pixels1.safetensors")
        cls.save_pixels(cls.px1_file, inputs, rows=slice(0, 1))
        cls.hf_cache = {}
        print(f"\nprompt tokens: {len(ids)}; <|image|> at {cls.image_pos}; targets {cls.targets}; "
              f"positions {cls.positions}; aspect_ratio_ids {inputs['aspect_ratio_ids'].tolist()}")

    @staticmethod
    def save_pixels(path, inputs, rows=slice(None)):
        # All F32: the CLI's safetensors reader takes float tensors.
        save_file({k: inputs[k][rows].float().contiguous() for k in ("pixel_values", "aspect_ratio_ids",
                                                                      "aspect_ratio_mask")}, path)

    # -- helpers -----------------------------------------------------------

    def cli(self, name, **flags):
        out = os.path.join(self.dir, name + ".safetensors")
        args = [CLI, f"--out={out}", "--threads=2"]
        for k, v in flags.items():
            args.append(f"--{k}" if v is True else f"--{k}={v}")
        proc = oracle_lib.run(args)
        return (load_file(out) if os.path.exists(out) else {}), proc.stdout

    def request(self, name, input_ids, positions, layers):
        path = os.path.join(self.dir, name + ".json")
        with open(path, "w") as f:
            json.dump({"input_ids": input_ids.tolist(), "positions": list(positions), "layers": list(layers)}, f)
        return path

    def hf_model(self, dtype_name):
        from transformers import MllamaForConditionalGeneration
        # from_pretrained(dtype=...) as the reference loads; .to(dtype) would round RoPE buffers.
        return MllamaForConditionalGeneration.from_pretrained(self.model_dir, dtype=DTYPES[dtype_name]).eval()

    def hf_hidden(self, dtype_name):
        """transformers' hidden states with the image, batch 1 per row as the reference runs."""
        key = (dtype_name, "image")
        if key not in self.hf_cache:
            model = self.hf_model(dtype_name)
            per_row = []
            with torch.no_grad():
                for b in range(self.input_ids.shape[0]):
                    out = model(input_ids=self.input_ids[b:b + 1], pixel_values=self.inputs["pixel_values"][b:b + 1],
                                aspect_ratio_ids=self.inputs["aspect_ratio_ids"][b:b + 1],
                                aspect_ratio_mask=self.inputs["aspect_ratio_mask"][b:b + 1],
                                cross_attention_mask=self.inputs["cross_attention_mask"][b:b + 1],
                                output_hidden_states=True)
                    per_row.append(torch.stack(out.hidden_states)[:, 0])
            self.hf_cache[key] = torch.stack(per_row, 1)  # [states, batch, seq, hidden]
        return self.hf_cache[key]

    def compare(self, ours, ref, label, rel_bound):
        """Per hidden state: max |diff| against rel_bound x max |activation|."""
        worst_abs, worst_rel = 0.0, 0.0
        for layer in range(ref.shape[0]):
            diff = float((ours[layer].float() - ref[layer].float()).abs().max())
            rel = diff / scale_of(ref[layer].float())
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
            self.assertLessEqual(rel, rel_bound, f"{label}: state {layer}: max abs diff {diff:.3e} is {rel:.2e} "
                                 f"of the scale {scale_of(ref[layer].float()):.3e}")
        print(f"{label}: worst max-abs diff {worst_abs:.3e}, worst relative {worst_rel:.3e} (bound {rel_bound:.0e})")
        return worst_abs, worst_rel

    # -- pixels ------------------------------------------------------------

    def check_pixels(self, label, folder, paths, ref_processor, **flags):
        rgb = [load_rgb(p) for p in paths]
        ref = ref_processor(nested(rgb), return_tensors="pt")
        got, _ = self.cli(label, mode="preprocess", model_dir=folder, images=",".join(paths), **flags)
        for key in ("aspect_ratio_ids", "aspect_ratio_mask"):
            self.assertTrue(torch.equal(got[key], ref[key]), f"{label} {key}: {got[key]} vs {ref[key]}")
        self.assertEqual(got["pixel_values"].shape, ref["pixel_values"].shape)
        diff = float((got["pixel_values"] - ref["pixel_values"]).abs().max())
        print(f"{label}: pixels max abs diff {diff:.3e} over {ref['pixel_values'].numel()} values; "
              f"aspect_ratio_ids {ref['aspect_ratio_ids'].view(-1).tolist()}")
        self.assertEqual(diff, 0.0)
        return got, ref

    def test_pixels_match_transformers5_default_processor(self):
        from transformers import AutoImageProcessor, MllamaImageProcessorFast
        auto = AutoImageProcessor.from_pretrained(self.model_dir)
        self.assertIsInstance(auto, MllamaImageProcessorFast, "transformers 5 should load the fast one")
        paths = [self.paths[k] for k in ("grid", "wide", "long", "small")]
        got, ref = self.check_pixels("px_fast", self.model_dir, paths, auto)
        # One of each: 2x2 (id 6), 1x3 (id 3), 1x4 (id 4), 1x1 (id 1).
        self.assertEqual(ref["aspect_ratio_ids"].view(-1).tolist(), [6, 3, 4, 1])
        self.assertEqual(ref["aspect_ratio_mask"][:, 0].tolist(),
                         [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])

    def test_pixels_match_slow_pillow_processor(self):
        from transformers import MllamaImageProcessor, MllamaImageProcessorFast
        paths = [self.paths[k] for k in ("grid", "wide", "long", "small")]
        slow = MllamaImageProcessor(**processor_settings(TILE))
        got, ref = self.check_pixels("px_slow", self.model_dir, paths, slow, resize="pillow")
        fast = MllamaImageProcessorFast(**processor_settings(TILE))(nested([load_rgb(p) for p in paths]),
                                                                   return_tensors="pt")
        gap = float((fast["pixel_values"] - ref["pixel_values"]).abs().max())
        print(f"fast vs slow transformers processors differ by up to {gap:.3e} (so the engines are distinct)")
        self.assertGreater(gap, 0.0)

    def test_pixels_real_geometry(self):
        """560 px tiles as in Meta's preprocessor_config.json; an 896x896 grid image."""
        from transformers import MllamaImageProcessor, MllamaImageProcessorFast
        folder = os.path.join(self.dir, "real_processor")
        os.makedirs(folder, exist_ok=True)
        MllamaImageProcessor(**processor_settings(560)).save_pretrained(folder)
        big = make_images(os.path.join(self.dir, "images_real"), scale=5)
        grid = os.path.join(self.dir, "images_real", "grid896.png")
        grid_image(896).save(grid)
        paths = [grid, big["long"], big["small"]]
        got, ref = self.check_pixels("px_real_fast", folder, paths, MllamaImageProcessorFast(**processor_settings(560)))
        self.check_pixels("px_real_slow", folder, paths[:1], MllamaImageProcessor(**processor_settings(560)),
                          resize="pillow")
        # 896x896: the 2x2 canvas (1120 px), not resized (each side is clipped
        # into [560, 1120] first), padded; 4 tiles, aspect-ratio id 6.
        self.assertEqual(tuple(ref["pixel_values"][:1].shape), (1, 1, 4, 3, 560, 560))
        self.assertEqual(ref["aspect_ratio_ids"][0].tolist(), [6])
        self.assertEqual(ref["aspect_ratio_mask"][0].tolist(), [[1, 1, 1, 1]])
        pad_value = (0 - CLIP_MEAN[0] * 255) / (CLIP_STD[0] * 255)
        # The prompt keeps one <|image|> for it; cross-attention reads 4 x 1601 positions.
        from transformers import MllamaProcessor
        real = MllamaProcessor(image_processor=MllamaImageProcessorFast(**processor_settings(560)),
                               tokenizer=self.processor.tokenizer, chat_template=self.processor.chat_template)
        inputs = real(images=[[load_rgb(grid)]], text=[self.prompt], add_special_tokens=False, return_tensors="pt")
        self.assertEqual(inputs["input_ids"][0].tolist().count(IMAGE_TOKEN_ID), 1)
        self.assertEqual(inputs["cross_attention_mask"][0, -1].tolist(), [[1, 1, 1, 1]])
        # Tile 3 (bottom right) holds the image's last 336 px and then padding.
        corner = ref["pixel_values"][0, 0, 3, 0, 336:, 336:]
        self.assertLess(float((corner - pad_value).abs().max()), 1e-5)
        self.assertGreater(float((ref["pixel_values"][0, 0, 0, 0] - pad_value).abs().max()), 0.5)

    def test_tiling_arithmetic_matches_transformers(self):
        """Canvas choice and resized size for ~1,900 image sizes (ties, clipping, extreme aspect ratios)."""
        from transformers.models.mllama.image_processing_mllama import (get_all_supported_aspect_ratios,
                                                                        get_image_size_fit_to_canvas,
                                                                        get_optimal_tiled_canvas)
        folder = os.path.join(self.dir, "tiling_processor")
        os.makedirs(folder, exist_ok=True)
        from transformers import MllamaImageProcessor
        MllamaImageProcessor(**processor_settings(560)).save_pretrained(folder)
        rng = np.random.default_rng(5)
        sizes = {(896, 896), (1, 1), (1, 5000), (5000, 1), (560, 560), (561, 559), (1120, 1120), (560, 2240),
                 (2240, 560), (1680, 560), (140, 560), (3, 7), (1121, 1)}
        sizes |= {(int(h), int(w)) for h, w in rng.integers(1, 3000, size=(1500, 2))}
        sizes |= {(int(h), int(w)) for h, w in rng.integers(1, 200, size=(300, 2))}
        sizes |= {(560 * a // b, 560 * c // d) for a in range(1, 5) for b in range(1, 4)
                  for c in range(1, 5) for d in range(1, 4)}
        sizes = sorted(sizes)
        proc = oracle_lib.run([CLI, "--mode=tiling", f"--model_dir={folder}",
                               "--sizes=" + ",".join(f"{h}x{w}" for h, w in sizes)])
        ours = json.loads(proc.stdout.strip().splitlines()[-1])
        layouts = get_all_supported_aspect_ratios(4)
        mismatches = []
        for (h, w), got in zip(sizes, ours):
            ch, cw = (int(v) for v in get_optimal_tiled_canvas(h, w, 4, 560))
            nh, nw = get_image_size_fit_to_canvas(h, w, ch, cw, 560)
            want = [ch // 560, cw // 560, int(nh), int(nw), layouts.index((ch // 560, cw // 560)) + 1]
            if got != want:
                mismatches.append(((h, w), got, want))
        print(f"tiling: {len(sizes)} sizes, {len(mismatches)} mismatches")
        self.assertEqual(len(ours), len(sizes))
        self.assertEqual(mismatches, [])

    # -- prompt ------------------------------------------------------------

    def test_prompt_ids_and_cross_attention_mask(self):
        ids = self.input_ids[0].tolist()
        out = os.path.join(self.dir, "prompt.safetensors")
        proc = oracle_lib.run([CLI, "--mode=prompt", f"--model_dir={self.model_dir}", f"--text={PROMPT_TEXT}",
                               f"--images={self.paths['grid']},{self.paths['wide']}", f"--out={out}"])
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(answer["text"], self.prompt)
        self.assertFalse(answer["add_special_tokens"], "the template writes BOS itself")
        self.assertEqual(answer["input_ids"], ids)
        self.assertEqual(ids.count(IMAGE_TOKEN_ID), 1)
        self.assertGreaterEqual(self.image_pos, 1)
        self.assertLess(self.image_pos, len(ids) - 1, "text must follow the image token too")
        got = load_file(out)
        want = self.inputs["cross_attention_mask"]
        self.assertEqual(tuple(got["cross_attention_mask"].shape), tuple(want.shape))
        self.assertTrue(torch.equal(got["cross_attention_mask"], want))
        # Rows before <|image|> see nothing; the 1x3 image's padding tile is never seen.
        self.assertEqual(int(want[:, :self.image_pos].sum()), 0)
        self.assertEqual(want[1, -1, 0].tolist(), [1, 1, 1, 0])
        print(f"prompt: {len(ids)} ids identical; cross_attention_mask {tuple(want.shape)} identical")
        # Text only: the template's system block with the fixed date.
        proc = oracle_lib.run([CLI, "--mode=prompt", f"--model_dir={self.model_dir}", f"--text={PROMPT_TEXT}",
                               "--text_only"])
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
        want_text = self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                       strftime_now=fixed_strftime_now)
        self.assertIn("Today Date: 26 Jul 2024", want_text)
        self.assertEqual(answer["text"], want_text)
        want_ids = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                      return_dict=True, strftime_now=fixed_strftime_now)["input_ids"]
        self.assertEqual(answer["input_ids"], [int(i) for i in np.asarray(want_ids).reshape(-1)])

    # -- hidden states -----------------------------------------------------

    def check_dtype(self, dtype_name):
        states = list(range(NUM_TEXT_LAYERS + 1))
        ref_all = self.hf_hidden(dtype_name)
        self.assertEqual(ref_all.shape[0], NUM_TEXT_LAYERS + 1, "with an image every layer is a hidden state")
        ref = ref_all[:, :, self.positions]
        req = self.request(f"h_{dtype_name}", self.input_ids, self.positions, states)
        got, _ = self.cli(f"h_{dtype_name}", model_dir=self.model_dir, request=req, dtype=dtype_name,
                          pixels=self.px_file)
        ours = got["hidden_states"]
        self.assertEqual(ours.dtype, DTYPES[dtype_name])
        self.assertEqual(tuple(ours.shape), (len(states), 2, len(self.positions), 64))
        self.assertTrue(torch.equal(got["cross_attention_mask"], self.inputs["cross_attention_mask"]))
        result = self.compare(ours, ref, f"hidden states {dtype_name}, batch 2", REL_BOUND[dtype_name])
        # The image matters at and after the image token and (through the
        # uniform cross-attention of masked rows) before it.
        no_gate = (ours[CROSS_LAYERS[0] + 1].float() - ours[CROSS_LAYERS[0]].float()).abs().max()
        self.assertGreater(float(no_gate), 0.0)
        # Batch 1, as the reference runs.
        req = self.request(f"b1_{dtype_name}", self.input_ids[:1], self.positions, states)
        one, _ = self.cli(f"b1_{dtype_name}", model_dir=self.model_dir, request=req, dtype=dtype_name,
                          pixels=self.px1_file)
        mismatches = int((one["hidden_states"] != ref[:, :1]).sum())
        print(f"hidden states {dtype_name}, batch 1: {mismatches} of {ref[:, :1].numel()} values differ "
              f"from transformers")
        # The same ATen kernels on the same shapes, in the same order.
        self.assertEqual(mismatches, 0)
        return result

    def test_hidden_states_fp32(self):
        self.check_dtype("float32")

    def test_hidden_states_bf16(self):
        self.check_dtype("bfloat16")

    def test_image_changes_every_row(self):
        """Another image changes rows before the image token too (uniform cross-attention)."""
        ref = self.hf_hidden("float32")
        final = NUM_TEXT_LAYERS
        before = float((ref[final, 0, 1] - ref[final, 1, 1]).abs().max())
        after = float((ref[final, 0, -1] - ref[final, 1, -1]).abs().max())
        self.assertGreater(before, 0.0)
        self.assertGreater(after, 0.0)
        # Up to the first cross-attention layer, nothing depends on the image.
        self.assertTrue(torch.equal(ref[CROSS_LAYERS[0], 0], ref[CROSS_LAYERS[0], 1]))

    def test_image_features_fp32(self):
        got, _ = self.cli("feat", model_dir=self.model_dir, dtype="float32", pixels=self.px_file,
                          request=self.request("feat", self.input_ids, [0], [0]), image_features=True)
        with torch.no_grad():
            vision = self.model.model.vision_model(
                pixel_values=self.inputs["pixel_values"], aspect_ratio_ids=self.inputs["aspect_ratio_ids"],
                aspect_ratio_mask=self.inputs["aspect_ratio_mask"]).last_hidden_state
            ref = self.model.model.multi_modal_projector(vision)
        self.assertEqual(tuple(got["image_features"].shape), (2, 1, 4, 65, 64))
        self.compare(got["image_features"].unsqueeze(0), ref.unsqueeze(0), "image features fp32", REL_BOUND["float32"])

    def check_text_only(self, dtype_name):
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
        text_ids = torch.tensor([self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True,
            strftime_now=fixed_strftime_now)["input_ids"]]).reshape(1, -1)
        model = self.hf_model(dtype_name)
        with torch.no_grad():
            ref = torch.stack(model(input_ids=text_ids, output_hidden_states=True).hidden_states)
        # transformers 5.3 skips the cross-attention layers without an image
        # and numbers only the layers that ran.
        self.assertEqual(ref.shape[0], NUM_TEXT_LAYERS - len(CROSS_LAYERS) + 1)
        n = text_ids.shape[1]
        positions = [0, n // 3, n // 2, n - 1]
        req = self.request(f"text_{dtype_name}", text_ids, positions, range(ref.shape[0]))
        got, _ = self.cli(f"text_{dtype_name}", model_dir=self.model_dir, request=req, dtype=dtype_name,
                          text_only=True)
        self.compare(got["hidden_states"], ref[:, :, positions], f"text-only {dtype_name} "
                     f"({ref.shape[0]} states)", REL_BOUND[dtype_name])
        # One index past the text-only range is refused.
        req = self.request("text_bad", text_ids, positions, [ref.shape[0]])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("text_bad", model_dir=self.model_dir, request=req, dtype=dtype_name, text_only=True)
        self.assertIn(f"outside 0..{ref.shape[0] - 1}", str(ctx.exception))
        # transformers <= 4.54 numbered every layer, a skipped cross-attention
        # layer repeating its input (its loop appended the state before the
        # skip): state i is the output of the self-attention layers among 0..i-1.
        expect = []
        for i in range(NUM_TEXT_LAYERS + 1):
            ran = len([j for j in range(i) if j not in CROSS_LAYERS])
            self.assertTrue(i == NUM_TEXT_LAYERS or ran < ref.shape[0] - 1, "final-norm state only at the end")
            expect.append(ref[ran])
        expect = torch.stack(expect)[:, :, positions]
        req = self.request(f"text41_{dtype_name}", text_ids, positions, range(NUM_TEXT_LAYERS + 1))
        got, _ = self.cli(f"text41_{dtype_name}", model_dir=self.model_dir, request=req, dtype=dtype_name,
                          text_only=True, text_only_numbering="repeated")
        self.compare(got["hidden_states"], expect, f"text-only {dtype_name}, transformers <= 4.54 numbering "
                     f"({NUM_TEXT_LAYERS + 1} states)", REL_BOUND[dtype_name])

    def test_text_only_fp32(self):
        self.check_text_only("float32")

    def test_text_only_bf16(self):
        self.check_text_only("bfloat16")

    def test_two_images_in_one_prompt(self):
        """Cross-attention ranges for two images as MllamaProcessor builds them: text between the
        image tokens (each image sees up to the next one), and two adjacent tokens (both see to the end)."""
        texts = {"apart": "<|begin_of_text|>Left: <|image|>right: <|image|>Which one shows a frog?",
                 "adjacent": "<|begin_of_text|>Look: <|image|><|image|>Which one shows a frog?"}
        images = [[self.rgb["small"], self.rgb["long"]]]
        for name, text in texts.items():
            inputs = self.processor(images=images, text=[text], add_special_tokens=False, return_tensors="pt")
            path = os.path.join(self.dir, f"two_{name}.safetensors")
            self.save_pixels(path, inputs)
            ids = inputs["input_ids"]
            req = self.request(f"two_{name}", ids, range(ids.shape[1]), range(NUM_TEXT_LAYERS + 1))
            got, _ = self.cli(f"two_{name}", model_dir=self.model_dir, request=req, dtype="float32", pixels=path)
            self.assertTrue(torch.equal(got["cross_attention_mask"], inputs["cross_attention_mask"]), name)
            with torch.no_grad():
                ref = torch.stack(self.model(**inputs, output_hidden_states=True).hidden_states)
            self.compare(got["hidden_states"], ref, f"two images ({name}) fp32", REL_BOUND["float32"])
        last = inputs["cross_attention_mask"][0, -1, :, 0].tolist()
        self.assertEqual(last, [1, 1], "adjacent image tokens both reach the end of the text")

    def test_stopping_early_changes_nothing(self):
        all_states = list(range(NUM_TEXT_LAYERS + 1))
        full, _ = self.cli("full", model_dir=self.model_dir, dtype="float32", pixels=self.px_file,
                           request=self.request("full", self.input_ids, self.positions, all_states))
        frog = self.targets["frog"]
        # [0, 1]: no cross-attention layer runs (the vision tower is skipped).
        cases = [([frog], [0, 1]), ([self.image_pos - 1], [CROSS_LAYERS[0] + 1]),
                 ([frog, self.image_pos], [3]), ([self.positions[1]], [NUM_TEXT_LAYERS])]
        worst = 0.0
        for positions, layers in cases:
            part, _ = self.cli("part", model_dir=self.model_dir, dtype="float32", pixels=self.px_file,
                               request=self.request("part", self.input_ids, positions, layers))
            cols = [self.positions.index(p) for p in positions]
            expect = full["hidden_states"][layers][:, :, cols]
            worst = max(worst, float((part["hidden_states"] - expect).abs().max()) / scale_of(expect))
        print(f"early stop vs full forward: worst relative diff {worst:.3e}")
        self.assertLessEqual(worst, 1e-5)

    def test_cpp_pixels_end_to_end(self):
        """Images -> C++ processor -> forward equals transformers' processor -> model."""
        req = self.request("e2e", self.input_ids, self.positions, [0, 2, NUM_TEXT_LAYERS])
        got, _ = self.cli("e2e", model_dir=self.model_dir, request=req, dtype="float32",
                          images=f"{self.paths['grid']},{self.paths['wide']}")
        self.assertTrue(torch.equal(got["pixel_values"], self.inputs["pixel_values"]))
        ref = self.hf_hidden("float32")[[0, 2, NUM_TEXT_LAYERS]][:, :, self.positions]
        self.compare(got["hidden_states"], ref, "end to end fp32", REL_BOUND["float32"])

    # -- checkpoints and configs --------------------------------------------

    def test_checkpoint_naming_schemes(self):
        weights = load_file(os.path.join(self.model_dir, "model.safetensors"))
        self.assertIn("language_model.model.embed_tokens.weight", weights, "save_pretrained naming changed")
        self.assertEqual(tuple(weights["language_model.model.embed_tokens.weight"].shape), (128256 + 8, 64))
        renames = {
            "module": [("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
                       ("vision_model.", "model.vision_model."),
                       ("multi_modal_projector.", "model.multi_modal_projector.")],
            "bare": [("language_model.model.", "language_model."), ("language_model.lm_head.", None)],
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
                        k = None if new is None else new + k[len(old):]
                        break
                if k is not None:
                    renamed[k] = v
            save_file(renamed, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
            got, _ = self.cli(f"names_{scheme}", model_dir=folder, request=req, pixels=self.px_file)
            self.assertTrue(torch.equal(got["hidden_states"], base["hidden_states"]), scheme)
            shutil.rmtree(folder, ignore_errors=True)
        folder = os.path.join(self.dir, "ckpt_missing")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.model_dir, folder)
        broken = dict(weights)
        del broken["language_model.model.layers.4.cross_attn_mlp_gate"]
        del broken["vision_model.global_transformer.layers.1.gate_ffn"]
        save_file(broken, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        with self.assertRaises(AssertionError) as ctx:
            self.cli("missing", model_dir=folder, request=req, pixels=self.px_file)
        self.assertIn("2 missing (", str(ctx.exception))
        self.assertIn("language_model.model.layers.4.cross_attn_mlp_gate", str(ctx.exception))
        self.assertIn("vision_model.global_transformer.layers.1.gate_ffn", str(ctx.exception))
        shutil.rmtree(folder, ignore_errors=True)

    def test_real_llama_11b_config(self):
        """config.json as the Llama-3.2-11B-Vision-Instruct download spells it (MODELS.md 3.4)."""
        from transformers import MllamaConfig
        cfg = {
            "architectures": ["MllamaForConditionalGeneration"], "image_token_index": 128256,
            "model_type": "mllama", "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0",
            "text_config": {
                "model_type": "mllama_text_model", "vocab_size": 128256, "hidden_size": 4096,
                "intermediate_size": 14336, "num_hidden_layers": 40, "num_attention_heads": 32,
                "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
                "rope_theta": 500000.0, "hidden_act": "silu", "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
                "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                 "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "pad_token_id": 128004,
                "torch_dtype": "bfloat16"},
            "vision_config": {
                "model_type": "mllama_vision_model", "attention_heads": 16, "hidden_size": 1280,
                "image_size": 560, "intermediate_size": 5120, "num_hidden_layers": 32, "num_global_layers": 8,
                "patch_size": 14, "max_num_tiles": 4, "norm_eps": 1e-05, "num_channels": 3, "hidden_act": "gelu",
                "vision_output_dim": 7680, "intermediate_layers_indices": [3, 7, 15, 23, 30],
                "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
                "torch_dtype": "bfloat16"},
        }
        folder = os.path.join(self.dir, "real_config")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f)
        proc = oracle_lib.run([CLI, "--mode=config", f"--model_dir={folder}"])
        ours = json.loads(proc.stdout.strip().splitlines()[-1])
        hf = MllamaConfig.from_pretrained(folder)
        t, v = hf.text_config, hf.vision_config
        p = (v.image_size // v.patch_size) ** 2 + 1
        expect = {
            "num_layers": t.num_hidden_layers, "text_only_num_layers": 32,
            "cross_attention_layers": t.cross_attention_layers, "hidden_size": t.hidden_size,
            "num_heads": t.num_attention_heads, "num_kv_heads": t.num_key_value_heads,
            "head_dim": t.hidden_size // t.num_attention_heads, "embedding_rows": t.vocab_size + 8,
            "rope_type": t.rope_parameters["rope_type"], "rope_theta": t.rope_parameters["rope_theta"],
            "rope_factor": t.rope_parameters["factor"], "vision_layers": v.num_hidden_layers,
            "vision_global_layers": v.num_global_layers, "vision_hidden_size": v.hidden_size,
            "vision_output_dim": v.vision_output_dim, "tile_size": v.image_size, "max_num_tiles": v.max_num_tiles,
            "positions_per_tile": p, "padded_positions_per_tile": 1608, "vision_positions_per_image": 4 * p,
            "image_tokens": 1, "image_token_index": hf.image_token_index, "dtype": "BFloat16"}
        self.assertEqual(ours, expect)
        self.assertEqual(ours["vision_positions_per_image"], 6404)
        print(f"llama-11b config: {ours['num_layers']} decoder layers ({ours['num_layers'] + 1} states with an "
              f"image, {ours['text_only_num_layers'] + 1} text-only), {ours['vision_positions_per_image']} vision "
              f"positions per image, 1 image token")

    def test_bad_inputs_are_errors(self):
        # A row without its image token.
        ids = self.input_ids.clone()
        ids[1, self.image_pos] = 1000
        req = self.request("bad", ids, [0], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn("sequence 1 holds 0 image tokens but its image gives 1 features", str(ctx.exception))
        # Image tokens in a text-only forward.
        req = self.request("bad_text", self.input_ids[:1], [0], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad_text", model_dir=self.model_dir, request=req, text_only=True)
        self.assertIn("text-only forward takes no image tokens", str(ctx.exception))
        # A position past the end.
        req = self.request("bad2", self.input_ids, [self.input_ids.shape[1]], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad2", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn("outside the sequence", str(ctx.exception))
        # Pixels of the wrong batch size.
        req = self.request("bad3", self.input_ids, [0], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad3", model_dir=self.model_dir, request=req, pixels=self.px1_file)
        self.assertIn("the ids hold 2 image tokens (id", str(ctx.exception))
        self.assertIn("but 1 image(s) give 1 features", str(ctx.exception))
        # A checkpoint of another family.
        other = os.path.join(self.dir, "not_mllama")
        os.makedirs(other, exist_ok=True)
        with open(os.path.join(self.model_dir, "config.json")) as f:
            cfg = json.load(f)
        cfg["model_type"] = "llava"
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(cfg, f)
        with self.assertRaises(AssertionError) as ctx:
            self.cli("other", model_dir=other, request=req, pixels=self.px_file)
        self.assertIn('model_type: expected "mllama", got "llava"', str(ctx.exception))

    # -- speed (reported, not asserted) -------------------------------------

    def test_zz_throughput_report(self):
        """Rough CPU throughput, batch 1, reference recipe vs spatialid's forward."""
        args = dict(input_ids=self.input_ids[:1], pixel_values=self.inputs["pixel_values"][:1],
                    aspect_ratio_ids=self.inputs["aspect_ratio_ids"][:1],
                    aspect_ratio_mask=self.inputs["aspect_ratio_mask"][:1],
                    cross_attention_mask=self.inputs["cross_attention_mask"][:1])
        reps = 5
        with torch.no_grad():
            self.model(**args, output_hidden_states=True)
            t0 = time.perf_counter()
            for _ in range(reps):
                self.model(**args, output_hidden_states=True)
            hf = (time.perf_counter() - t0) / reps
        req = self.request("speed", self.input_ids[:1], [self.targets["frog"]], list(range(NUM_TEXT_LAYERS + 1)))
        _, stdout = self.cli("speed", model_dir=self.model_dir, request=req, dtype="float32",
                             pixels=self.px1_file, repeat=reps)
        ours = float(stdout.split("forward_seconds=")[1].split()[0])
        print(f"throughput (tiny model, CPU, 2 threads): transformers {1 / hf:.1f} images/s, "
              f"spatialid {1 / ours:.1f} images/s, ratio {hf / ours:.2f}x")
        self.assertGreater(ours, 0.0)


if __name__ == "__main__":
    unittest.main()
