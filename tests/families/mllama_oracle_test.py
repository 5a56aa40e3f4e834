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

The shared checks (tests/python/family_oracle.py) run with Mllama's
parameters: every hidden state in fp32 and bf16 with an image (batch 1 bit
for bit), image features, early stopping, C++ pixels end to end, naming
schemes, the planned forward (its prefix cache stops at the first
cross-attention layer), the whole extractor against the reference recipe
(the template writes BOS, so the two BOS rules differ). Mllama's own:
pixels, aspect-ratio ids and masks against both transformers processors
(tiny and real 560 px geometry); tiling arithmetic; prompt ids and the
cross-attention mask against MllamaProcessor; the text-only forward in both
numberings; two images in one prompt; the real llama-11b config; errors.
"""
import datetime
import json
import os
import sys
import unittest

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import family_oracle  # noqa: E402
import oracle_lib  # noqa: E402
from family_oracle import PROMPT_TEXT, draw_object  # noqa: E402

TEMPLATE = oracle_lib.runfile("spatialid/text/testdata/templates/llama_3_2_vision.jinja")
IMAGE_TOKEN_ID = 128256
TILE = 112
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
NUM_TEXT_LAYERS = 6
CROSS_LAYERS = [1, 4]
REL_BOUND = {k: family_oracle.REL_BOUND[k] for k in ("float32", "bfloat16")}
FIXED_DATE = datetime.datetime(2024, 7, 26)  # spatialid's default clock for strftime_now


def fixed_strftime_now(fmt):
    return FIXED_DATE.strftime(fmt)


def processor_settings(tile):
    """preprocessor_config.json values of the real checkpoints, with this tile size."""
    return dict(do_convert_rgb=True, do_resize=True, size={"height": tile, "width": tile}, resample=2,
                do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=CLIP_MEAN,
                image_std=CLIP_STD, do_pad=True, max_image_tiles=4)


def grid_image(side, mirrored=False):
    """Two objects on a transparent canvas: the data engine's kind of PNG."""
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    camel = draw_object(side * 3 // 8, "camel", (201, 150, 80, 255))
    frog = draw_object(side * 5 // 16, "frog", (60, 170, 70, 255))
    canvas.paste(camel, (side // 16, side // 2), mask=camel)
    canvas.paste(frog, (side * 5 // 8, side // 8), mask=frog)
    return canvas.transpose(Image.FLIP_LEFT_RIGHT) if mirrored else canvas


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


def nested(images):
    return [[img] for img in images]


class MllamaOracleTest(family_oracle.FamilyOracle, unittest.TestCase):
    FAMILY = "mllama"
    NUM_TEXT_LAYERS = NUM_TEXT_LAYERS
    HIDDEN = 64
    REL_BOUND = REL_BOUND
    FEATURE_SHAPE = (2, 1, 4, 65, 64)
    TEMPLATE_WRITES_BOS = True
    TEMPLATE_KWARGS = {"strftime_now": fixed_strftime_now}
    # Cross-attention gives even the text before the image an average of it:
    # no prefix cache for a request past the first cross-attention layer.
    PREFIX_FOR_ALL_LAYERS = False
    test_text_only_forward = None  # test_text_only_fp32/bf16: both numberings

    @classmethod
    def prepare(cls):
        cls.model_dir = os.path.join(cls.dir, "tiny-mllama")
        cls.model = build_checkpoint(cls.model_dir)
        from transformers import MllamaImageProcessorFast
        cls.processor = cls.load_processor(cls.model_dir, MllamaImageProcessorFast)
        cls.paths = make_images(os.path.join(cls.dir, "images"))
        # A second image of the grid's size (the same tiles) for the extractor's batch.
        cls.paths["grid_mirrored"] = os.path.join(cls.dir, "images", "grid_mirrored.png")
        grid_image(180, mirrored=True).save(cls.paths["grid_mirrored"])
        cls.rgb = {k: load_rgb(p) for k, p in cls.paths.items()}
        # The reference's prompt: one user turn, the image then the question.
        cls.prompt = cls.user_prompt(cls.processor)
        assert cls.prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>Is")
        # Batch of two rows with one token layout: the padded 2x2 grid image
        # and the 1x3 one (one padding tile).
        cls.batch_images = [cls.paths["grid"], cls.paths["wide"]]
        inputs = cls.processor(images=nested([cls.rgb["grid"], cls.rgb["wide"]]), text=[cls.prompt] * 2,
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
        cls.px_file = cls.save_pixels("pixels", inputs)
        cls.px1_file = cls.save_pixels("pixels1", inputs, slice(0, 1))
        print(f"\nprompt tokens: {len(ids)}; <|image|> at {cls.image_pos}; targets {cls.targets}; "
              f"positions {cls.positions}; aspect_ratio_ids {inputs['aspect_ratio_ids'].tolist()}")

    @classmethod
    def pixel_tensors(cls, inputs, rows=None):
        rows = slice(None) if rows is None else rows
        return {k: inputs[k][rows] for k in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")}

    def image_token_id(self):
        return IMAGE_TOKEN_ID

    def hf_row_kwargs(self, inputs, b, dtype_name):
        # The processor's outputs as they are (transformers casts the pixels).
        return {k: inputs[k][b:b + 1] for k in ("input_ids", "pixel_values", "aspect_ratio_ids",
                                                 "aspect_ratio_mask", "cross_attention_mask")}

    def hf_image_features(self, inputs, model_dir=None):
        model = self.hf_model("float32", model_dir)
        with torch.no_grad():
            vision = model.model.vision_model(
                pixel_values=inputs["pixel_values"].to(family_oracle.DEVICE),
                aspect_ratio_ids=inputs["aspect_ratio_ids"].to(family_oracle.DEVICE),
                aspect_ratio_mask=inputs["aspect_ratio_mask"].to(family_oracle.DEVICE)).last_hidden_state
            return model.model.multi_modal_projector(vision).cpu()

    def extract_images(self):
        return [self.paths["grid"], self.paths["grid_mirrored"]]

    def planned_cases(self):
        after = [p for p in self.positions if p >= self.image_pos]
        return [("through the first cross-attention layer", after, list(range(CROSS_LAYERS[0] + 1)), True),
                ("all layers, no prefix cache", after, self.all_layers(), False)]

    def recipe_text_states(self, states):
        # The extractor numbers text-only states like image ones (as
        # transformers <= 4.54 did): state i is the output of the
        # self-attention layers among 0..i-1.
        return torch.stack([states[len([j for j in range(i) if j not in CROSS_LAYERS])]
                            for i in range(NUM_TEXT_LAYERS + 1)])

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
        proc = oracle_lib.run([self.tool, "--mode=tiling", f"--model_dir={folder}",
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
        got, stdout = self.cli("prompt", mode="prompt", model_dir=self.model_dir, question=PROMPT_TEXT,
                               images=f"{self.paths['grid']},{self.paths['wide']}", bos="chat_template")
        answer = json.loads(stdout.strip().splitlines()[-1])
        self.assertEqual(answer["text"], self.prompt)
        self.assertFalse(answer["add_special_tokens"], "the template writes BOS itself")
        self.assertEqual(answer["ids"], ids)
        self.assertEqual(ids.count(IMAGE_TOKEN_ID), 1)
        self.assertGreaterEqual(self.image_pos, 1)
        self.assertLess(self.image_pos, len(ids) - 1, "text must follow the image token too")
        want = self.inputs["cross_attention_mask"]
        self.assertEqual(tuple(got["cross_attention_mask"].shape), tuple(want.shape))
        self.assertTrue(torch.equal(got["cross_attention_mask"], want))
        # Rows before <|image|> see nothing; the 1x3 image's padding tile is never seen.
        self.assertEqual(int(want[:, :self.image_pos].sum()), 0)
        self.assertEqual(want[1, -1, 0].tolist(), [1, 1, 1, 0])
        print(f"prompt: {len(ids)} ids identical; cross_attention_mask {tuple(want.shape)} identical")
        # Text only: the template's system block with the fixed date.
        answer = self.cli_json(mode="prompt", model_dir=self.model_dir, question=PROMPT_TEXT, text_only=True,
                               bos="chat_template")
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
        want_text = self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                       strftime_now=fixed_strftime_now)
        self.assertIn("Today Date: 26 Jul 2024", want_text)
        self.assertEqual(answer["text"], want_text)
        want_ids = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                      return_dict=True, strftime_now=fixed_strftime_now)["input_ids"]
        self.assertEqual(answer["ids"], [int(i) for i in np.asarray(want_ids).reshape(-1)])

    # -- hidden states -----------------------------------------------------

    def check_dtype(self, dtype_name, **kw):
        ref_all = self.hf_hidden(dtype_name)
        self.assertEqual(ref_all.shape[0], NUM_TEXT_LAYERS + 1, "with an image every layer is a hidden state")
        got, result = super().check_dtype(dtype_name, **kw)
        self.assertTrue(torch.equal(got["cross_attention_mask"], self.inputs["cross_attention_mask"]))
        # The image matters at and after the image token and (through the
        # uniform cross-attention of masked rows) before it.
        ours = got["hidden_states"]
        no_gate = (ours[CROSS_LAYERS[0] + 1].float() - ours[CROSS_LAYERS[0]].float()).abs().max()
        self.assertGreater(float(no_gate), 0.0)
        return got, result

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
        self.check_image_features()

    def check_text_only_numberings(self, dtype_name):
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
        text_ids = torch.tensor([self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True,
            strftime_now=fixed_strftime_now)["input_ids"]]).reshape(1, -1)
        ref = self.hf_hidden(dtype_name, text_ids=text_ids)
        # transformers 5.3 skips the cross-attention layers without an image
        # and numbers only the layers that ran.
        self.assertEqual(ref.shape[0], NUM_TEXT_LAYERS - len(CROSS_LAYERS) + 1)
        n = text_ids.shape[1]
        positions = [0, n // 3, n // 2, n - 1]
        self.check_text_only(text_ids, positions, dtype_name=dtype_name, ref=ref,
                             label=f"text-only {dtype_name} ({ref.shape[0]} states)")
        # One index past the text-only range is refused.
        req = self.request("text_bad", text_ids, positions, [ref.shape[0]])
        self.cli_error("text_bad", f"outside 0..{ref.shape[0] - 1}", model_dir=self.model_dir, request=req,
                       dtype=dtype_name, text_only=True)
        # transformers <= 4.54 numbered every layer, a skipped cross-attention
        # layer repeating its input (its loop appended the state before the
        # skip): state i is the output of the self-attention layers among 0..i-1.
        expect = []
        for i in range(NUM_TEXT_LAYERS + 1):
            ran = len([j for j in range(i) if j not in CROSS_LAYERS])
            self.assertTrue(i == NUM_TEXT_LAYERS or ran < ref.shape[0] - 1, "final-norm state only at the end")
            expect.append(ref[ran])
        expect = torch.stack(expect)
        self.check_text_only(text_ids, positions, dtype_name=dtype_name, ref=expect,
                             label=f"text-only {dtype_name}, transformers <= 4.54 numbering "
                                   f"({NUM_TEXT_LAYERS + 1} states)", text_only_numbering="repeated")

    def test_text_only_fp32(self):
        self.check_text_only_numberings("float32")

    def test_text_only_bf16(self):
        self.check_text_only_numberings("bfloat16")

    def test_two_images_in_one_prompt(self):
        """Cross-attention ranges for two images as MllamaProcessor builds them: text between the
        image tokens (each image sees up to the next one), and two adjacent tokens (both see to the end)."""
        texts = {"apart": "<|begin_of_text|>Left: <|image|>right: <|image|>Which one shows a frog?",
                 "adjacent": "<|begin_of_text|>Look: <|image|><|image|>Which one shows a frog?"}
        images = [[self.rgb["small"], self.rgb["long"]]]
        for name, text in texts.items():
            inputs = self.processor(images=images, text=[text], add_special_tokens=False, return_tensors="pt")
            path = self.save_pixels(f"two_px_{name}", inputs)
            ids = inputs["input_ids"]
            req = self.request(f"two_{name}", ids, range(ids.shape[1]), range(NUM_TEXT_LAYERS + 1))
            got, _ = self.cli(f"two_{name}", model_dir=self.model_dir, request=req, dtype="float32", pixels=path)
            self.assertTrue(torch.equal(got["cross_attention_mask"], inputs["cross_attention_mask"]), name)
            with torch.no_grad():  # both images in one sequence: one call, as the processor batched them
                out = self.hf_model("float32")(**family_oracle.to_device(inputs), output_hidden_states=True)
            ref = torch.stack(out.hidden_states).cpu()
            self.compare(got["hidden_states"], ref, f"two images ({name}) fp32", REL_BOUND["float32"])
        last = inputs["cross_attention_mask"][0, -1, :, 0].tolist()
        self.assertEqual(last, [1, 1], "adjacent image tokens both reach the end of the text")

    def early_stop_cases(self):
        frog = self.targets["frog"]
        # [0, 1]: no cross-attention layer runs (the vision tower is skipped).
        return [([frog], [0, 1]), ([self.image_pos - 1], [CROSS_LAYERS[0] + 1]),
                ([frog, self.image_pos], [3]), ([self.positions[1]], [NUM_TEXT_LAYERS])]

    def cpp_pixels_layers(self):
        return [0, 2, NUM_TEXT_LAYERS]

    # -- checkpoints and configs --------------------------------------------

    def test_checkpoint_naming_schemes(self):
        weights = self.check_naming_schemes(
            renames={
                "module": [("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
                           ("vision_model.", "model.vision_model."),
                           ("multi_modal_projector.", "model.multi_modal_projector.")],
                "bare": [("language_model.model.", "language_model."), ("language_model.lm_head.", None)],
            },
            missing=["language_model.model.layers.4.cross_attn_mlp_gate",
                     "vision_model.global_transformer.layers.1.gate_ffn"],
            needles=["2 missing (", "language_model.model.layers.4.cross_attn_mlp_gate",
                     "vision_model.global_transformer.layers.1.gate_ffn"],
            keep_folders=False)
        self.assertIn("language_model.model.embed_tokens.weight", weights, "save_pretrained naming changed")
        self.assertEqual(tuple(weights["language_model.model.embed_tokens.weight"].shape), (128256 + 8, 64))

    def test_real_llama_11b_config(self):
        """config.json as the Llama-3.2-11B-Vision-Instruct download spells it (docs/model_facts.md 3.4)."""
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
        folder = self.write_config("real_config", cfg)
        ours = self.cli_json(mode="config", model_dir=folder)
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
        self.cli_error("bad", "sequence 1 holds 0 image tokens but its image gives 1 features",
                       model_dir=self.model_dir, request=req, pixels=self.px_file)
        # Image tokens in a text-only forward.
        req = self.request("bad_text", self.input_ids[:1], [0], [0])
        self.cli_error("bad_text", "text-only forward takes no image tokens", model_dir=self.model_dir, request=req,
                       text_only=True)
        # A position past the end.
        req = self.request("bad2", self.input_ids, [self.input_ids.shape[1]], [0])
        self.cli_error("bad2", "outside the sequence", model_dir=self.model_dir, request=req, pixels=self.px_file)
        # Pixels of the wrong batch size.
        req = self.request("bad3", self.input_ids, [0], [0])
        self.cli_error("bad3", ["the ids hold 2 image tokens (id", "but 1 image(s) give 1 features"],
                       model_dir=self.model_dir, request=req, pixels=self.px1_file)
        # A checkpoint of another family.
        self.check_other_family_refused("llava", 'model_type: expected "mllama", got "llava"', request=req,
                                        pixels=self.px_file)


if __name__ == "__main__":
    unittest.main()
