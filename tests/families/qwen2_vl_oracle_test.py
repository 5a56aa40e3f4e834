"""spatialid's Qwen2-VL and Qwen2.5-VL families against transformers 5.3.0.

Two tiny random-weight checkpoints (fixed seed) are made by transformers with
every switch of the released models on: Qwen2-VL's ViT (LayerNorm,
QuickGELU MLP, full attention per image) and Qwen2.5-VL's (RMSNorm, biased
SwiGLU MLP, 56 px windows = 2 x 2 merge blocks with a full-attention block
among the windowed ones), 2D vision rotary, the 2 x 2 patch merger, a Qwen2
decoder with q/k/v biases, grouped kv heads and multimodal RoPE
(mrope_section [2, 3, 3] of 8 frequency pairs). The tokenizer is the real
Qwen tokenizer (it already holds <|vision_start|> 151652, <|image_pad|>
151655, <|vision_end|> 151653) and the chat template is Qwen2-VL's, with its
default system turn. Images are non-square (h != w), need resizing, and make
several windows, some cut short by the grid.

Checks (the shared ones of tests/python/family_oracle.py with Qwen's
parameters, for both versions where it matters): pixels and image_grid_thw
against both image processors (several min/max pixel settings); the 896 x
896 image-token count (1024); prompt ids against the processor; 3D position
ids against get_rope_index; the merged image features; every hidden state at
several positions in fp32, bf16 and fp16 (against transformers run in that
dtype), with batch 2, with two images in one sequence, text only, from C++
pixels; early stopping; checkpoint naming schemes; the released config.json
files; bad inputs; the planned forward (M-RoPE positions after a prefix
cache); the whole extractor against the reference recipe. Worst figures are
printed and asserted.

transformers 5.3.0 gives Qwen2.5-VL image tokens the temporal position id
start * tokens_per_second (huggingface/transformers#45325, fixed later);
spatialid's default keeps the start, as Qwen's code and transformers 4.x do.
The hidden states are checked both ways: spatialid's 5.3 mode against
transformers' own positions, the default against transformers given the
corrected positions (and so is the extractor, which runs the default).
"""
import json
import os
import shutil
import sys
import unittest

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import family_oracle  # noqa: E402
import oracle_lib  # noqa: E402
from family_oracle import DTYPES, PROMPT_TEXT, REL_BOUND, draw_object, scale_of  # noqa: E402

TEMPLATE_FILE = oracle_lib.runfile("spatialid/text/testdata/templates/qwen2_vl.jinja")
IMAGE_TOKEN_ID, VISION_START_ID, VISION_END_ID = 151655, 151652, 151653
NUM_TEXT_LAYERS = 3
TEXT = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=NUM_TEXT_LAYERS, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, rms_norm_eps=1e-6,
            rope_theta=1e6, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
VISION = {
    "qwen2_vl": dict(depth=3, embed_dim=32, num_heads=2, mlp_ratio=2.5, hidden_act="quick_gelu", hidden_size=64,
                     patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
    "qwen2_5_vl": dict(depth=4, hidden_size=32, num_heads=2, intermediate_size=48, hidden_act="silu",
                       out_hidden_size=64, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                       window_size=56, fullatt_block_indexes=[2], tokens_per_second=2),
}


def classes(version):
    import transformers as tf
    if version == "qwen2_vl":
        return tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration, tf.Qwen2VLProcessor
    return tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration, tf.Qwen2_5_VLProcessor


def make_images(folder):
    """Grid-style RGBA PNGs (300x220: resized to 308x224, 8x11 merge blocks),
    a noise PNG (333x517 -> 336x504), an 896x896 one and a tiny one."""
    paths = {}
    camel = draw_object(90, "camel", (201, 150, 80, 255))
    frog = draw_object(70, "frog", (60, 170, 70, 255))
    for i, (cx, fx) in enumerate([(10, 200), (190, 20)]):
        canvas = Image.new("RGBA", (300, 220), (0, 0, 0, 0))
        canvas.paste(camel, (cx, 110), mask=camel)
        canvas.paste(frog, (fx, 20 + 40 * i), mask=frog)
        paths[f"grid{i}"] = os.path.join(folder, f"grid_{i}.png")
        canvas.save(paths[f"grid{i}"])
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(517, 333, 3), dtype=np.uint8)
    noise[100:300, 50:250] = [250, 20, 20]
    paths["noise"] = os.path.join(folder, "noise.png")
    Image.fromarray(noise).save(paths["noise"])
    big = Image.new("RGBA", (896, 896), (0, 0, 0, 0))
    big.paste(camel, (100, 500), mask=camel)
    big.paste(frog, (600, 100), mask=frog)
    paths["big"] = os.path.join(folder, "big.png")
    big.save(paths["big"])
    tiny = rng.integers(0, 256, size=(30, 20, 3), dtype=np.uint8)
    paths["tiny"] = os.path.join(folder, "tiny.png")
    Image.fromarray(tiny).save(paths["tiny"])
    return paths


def build_checkpoint(version, model_dir, template):
    from transformers import AutoTokenizer, Qwen2VLImageProcessorFast, Qwen2VLVideoProcessor
    config_cls, model_cls, processor_cls = classes(version)
    torch.manual_seed(1234 if version == "qwen2_vl" else 4321)
    tokenizer = AutoTokenizer.from_pretrained(oracle_lib.tokenizer_dir("qwen3"))
    for token, want in (("<|image_pad|>", IMAGE_TOKEN_ID), ("<|vision_start|>", VISION_START_ID),
                        ("<|vision_end|>", VISION_END_ID)):
        got = tokenizer.convert_tokens_to_ids(token)
        assert got == want, (token, got)
    config = config_cls(vision_config=VISION[version], text_config=dict(TEXT), image_token_id=IMAGE_TOKEN_ID,
                        video_token_id=151656, vision_start_token_id=VISION_START_ID,
                        vision_end_token_id=VISION_END_ID)
    model = model_cls(config).eval()
    # Default init leaves attention nearly uniform; larger weights make every
    # hidden state depend on position and image, as in a trained model.
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() >= 2:
                p.mul_(2.0)
    model.save_pretrained(model_dir)
    processor = processor_cls(image_processor=Qwen2VLImageProcessorFast(), tokenizer=tokenizer,
                              video_processor=Qwen2VLVideoProcessor(), chat_template=template)
    processor.save_pretrained(model_dir)
    processor.image_processor.save_pretrained(model_dir)  # preprocessor_config.json, as hub downloads have
    return model


class QwenVLOracleTest(family_oracle.FamilyOracle, unittest.TestCase):
    FAMILY = "qwen2_vl"
    NUM_TEXT_LAYERS = NUM_TEXT_LAYERS
    HIDDEN = 64
    BATCH1 = None  # batch 2 only: the reference's batch-1 rows are the same kernels
    # Named per version below: test_hidden_states_fp32_<version>, _half_precision, test_image_features_match.
    test_hidden_states_fp32 = None
    test_hidden_states_bf16 = None
    test_image_features_fp32 = None

    @classmethod
    def prepare(cls):
        with open(TEMPLATE_FILE) as f:
            cls.template = f.read()
        cls.images = make_images(cls.dir)
        cls.batch_images = [cls.images["grid0"], cls.images["grid1"]]
        cls.rgb = {k: Image.open(p).convert("RGB") for k, p in cls.images.items()}
        cls.model_dirs = {}
        for version in VISION:
            cls.model_dirs[version] = os.path.join(cls.dir, f"tiny-{version}")
            build_checkpoint(version, cls.model_dirs[version], cls.template)
        cls.model_dir = cls.model_dirs["qwen2_vl"]
        from transformers import Qwen2VLImageProcessorFast
        cls.processor = cls.load_processor(cls.model_dirs["qwen2_vl"], Qwen2VLImageProcessorFast)
        cls.prompt = cls.user_prompt(cls.processor)
        assert cls.prompt == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                              "<|vision_start|><|image_pad|><|vision_end|>" + PROMPT_TEXT +
                              "<|im_end|>\n<|im_start|>assistant\n"), cls.prompt
        # Batch of two grid images with the same prompt (one token layout).
        cls.inputs = cls.processor(images=[cls.rgb["grid0"], cls.rgb["grid1"]], text=[cls.prompt, cls.prompt],
                                   return_tensors="pt")
        cls.input_ids = cls.inputs["input_ids"]
        ids = cls.inputs["input_ids"][0].tolist()
        tok = cls.processor.tokenizer
        cls.targets = {}
        for word in ("frog", "left", "right"):
            last = tok(" " + word, add_special_tokens=False)["input_ids"][-1]
            cls.targets[word] = ids.index(last)
        image_positions = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_ID]
        assert len(image_positions) == 88, len(image_positions)  # 224/14/2 x 308/14/2 = 8 x 11
        cls.positions = sorted({0, image_positions[0], image_positions[40], image_positions[-1],
                                image_positions[-1] + 1, *cls.targets.values(), len(ids) - 1})
        cls.px_file = cls.save_pixels("pixels", cls.inputs)
        # Two images of different sizes in one sequence.
        two = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"},
                                            {"type": "text", "text": PROMPT_TEXT}]}]
        cls.two_prompt = cls.processor.apply_chat_template(two, add_generation_prompt=True)
        cls.two_inputs = cls.processor(images=[cls.rgb["grid0"], cls.rgb["noise"]], text=[cls.two_prompt],
                                       return_tensors="pt")
        cls.two_px_file = cls.save_pixels("pixels_two", cls.two_inputs)
        cls.fixed_cache = {}
        print(f"\nprompt tokens: {len(ids)}; targets {cls.targets}; positions {cls.positions}; "
              f"two-image prompt tokens: {cls.two_inputs['input_ids'].shape[1]}")

    @classmethod
    def pixel_tensors(cls, inputs, rows=None):
        # spatialid's safetensors reader takes float tensors; the grid is small integers.
        return {"pixel_values": inputs["pixel_values"], "image_grid_thw": inputs["image_grid_thw"]}

    def image_token_id(self):
        return IMAGE_TOKEN_ID

    # -- helpers -----------------------------------------------------------

    def forward(self, version, dtype_name, name, positions=None, layers=None, inputs=None, px_file=None, **extra):
        return self.run_forward(dtype_name, self.positions if positions is None else positions,
                                self.all_layers() if layers is None else layers, name,
                                model_dir=self.model_dirs[version], inputs=inputs, px_file=px_file, **extra)

    def before_hf_call(self, model):
        model.model.rope_deltas = None  # positions come from this call's ids and grids

    def fixed_positions(self, version, inputs):
        """get_rope_index with Qwen2.5-VL images at their start (transformers 4.x / the fix)."""
        key = (version, id(inputs))
        if key not in self.fixed_cache:
            model = self.hf_model("float32", self.model_dirs[version])
            vision = model.config.vision_config
            saved = getattr(vision, "tokens_per_second", None)
            vision.tokens_per_second = 1
            try:
                pos, _ = model.model.get_rope_index(inputs["input_ids"].to(family_oracle.DEVICE),
                                                    inputs["mm_token_type_ids"].to(family_oracle.DEVICE),
                                                    image_grid_thw=inputs["image_grid_thw"].to(family_oracle.DEVICE))
            finally:
                vision.tokens_per_second = saved
            self.fixed_cache[key] = pos.cpu()
        return self.fixed_cache[key]

    def hf_row_kwargs(self, inputs, b, dtype_name, version="qwen2_vl", fixed=False):
        """Row b as the reference runs it, one image per row; `fixed`: the corrected positions."""
        patches = [int(g.prod()) for g in inputs["image_grid_thw"]]
        starts = np.cumsum([0] + patches)
        images_per_row = len(patches) // inputs["input_ids"].shape[0]
        lo, hi = b * images_per_row, (b + 1) * images_per_row
        kw = {"input_ids": inputs["input_ids"][b:b + 1], "attention_mask": inputs["attention_mask"][b:b + 1],
              "mm_token_type_ids": inputs["mm_token_type_ids"][b:b + 1],
              "pixel_values": inputs["pixel_values"][starts[lo]:starts[hi]].to(DTYPES[dtype_name]),
              "image_grid_thw": inputs["image_grid_thw"][lo:hi]}
        if fixed:
            kw["position_ids"] = self.fixed_positions(version, inputs)[:, b:b + 1]
        return kw

    def qwen_hidden(self, version, dtype_name, inputs=None, fixed=False):
        return self.hf_hidden(dtype_name, inputs, self.model_dirs[version], version=version, fixed=fixed)

    def hf_temporal(self, version):
        """The tool flag that matches transformers 5.3.0's own positions."""
        return "transformers5_3" if version == "qwen2_5_vl" else "image_start"

    def extract_model_dirs(self):
        return [self.model_dirs[v] for v in VISION]

    def recipe_model(self, model_dir):
        # The extractor gives Qwen2.5-VL image tokens their start as temporal
        # position (Qwen's code, transformers 4.x); transformers 5.3.0's
        # forward multiplies it by tokens_per_second (see the file comment),
        # so the recipe runs with tokens_per_second 1, the corrected positions.
        if model_dir != self.model_dirs["qwen2_5_vl"]:
            return super().recipe_model(model_dir)
        key = ("recipe_model", model_dir)
        if key not in self.recipe_cache:
            from transformers import AutoConfig
            config = AutoConfig.from_pretrained(model_dir)
            config.vision_config.tokens_per_second = 1
            self.recipe_cache[key] = self.hf_model("float32", model_dir, config=config)
        return self.recipe_cache[key]

    # -- pixels ------------------------------------------------------------

    # Processor settings as fresh size dicts: passing min_pixels/max_pixels to
    # the transformers classes writes them into the class-level default dict.
    PIXEL_CASES = {"default": (56 * 56, 28 * 28 * 1280), "bounded": (20000, 50000)}

    def processor_dir(self, name, case):
        """A folder holding only preprocessor_config.json, spelled as the Qwen hub files are."""
        lo, hi = self.PIXEL_CASES[case]
        folder = os.path.join(self.dir, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
            json.dump({"min_pixels": lo, "max_pixels": hi, "patch_size": 14, "temporal_patch_size": 2,
                       "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                       "image_std": [0.26862954, 0.26130258, 0.27577711],
                       "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor"}, f)
        return folder

    def size_of(self, case):
        lo, hi = self.PIXEL_CASES[case]
        return {"shortest_edge": lo, "longest_edge": hi}

    def test_pixels_match_transformers5_default_processor(self):
        from transformers import Qwen2VLImageProcessorFast
        names = ["grid0", "noise", "big", "tiny"]
        for case in self.PIXEL_CASES:
            folder = self.processor_dir(f"proc_{case}", case)
            fast = Qwen2VLImageProcessorFast(size=self.size_of(case))
            ref = fast([self.rgb[n] for n in names], return_tensors="pt")
            got, _ = self.cli(f"px_{case}", mode="preprocess", model_dir=folder,
                              images=",".join(self.images[n] for n in names))
            self.assertEqual(got["image_grid_thw"].tolist(), ref["image_grid_thw"].tolist(), case)
            if case == "default":  # resized up and down, kept (896), raised to min_pixels (20x30)
                self.assertEqual(ref["image_grid_thw"].tolist(), [[1, 16, 22], [1, 36, 24], [1, 64, 64], [1, 6, 4]])
            self.assertEqual(got["pixel_values"].shape, ref["pixel_values"].shape, case)
            diff = float((got["pixel_values"] - ref["pixel_values"]).abs().max())
            print(f"pixels ({case}) vs Qwen2VLImageProcessorFast: grids {ref['image_grid_thw'].tolist()}, "
                  f"max abs diff {diff:.3e} over {ref['pixel_values'].numel()} values")
            self.assertEqual(diff, 0.0, case)
        # The model folder (preprocessor_config.json) gives the same settings.
        got, _ = self.cli("px_model", mode="preprocess", model_dir=self.model_dirs["qwen2_5_vl"],
                          images=self.images["grid0"])
        self.assertTrue(torch.equal(got["pixel_values"], self.inputs["pixel_values"][:88 * 4]))

    def test_pixels_match_slow_pillow_processor(self):
        """The Pillow engine against Qwen2VLImageProcessor (the slow one), image by image.

        Pillow 13.0.0 (the pinned oracle) runs some resizes vertical pass first
        where Pillow <= 12 (src/libImaging/Resample.c) always runs the horizontal
        pass first; io::PillowResize does the latter. For those images the
        expected pixels are the slow processor's on the image resized in
        Pillow 12's order (horizontal, then vertical), and the gap is reported.
        """
        from transformers import Qwen2VLImageProcessor
        names = ["grid0", "noise", "tiny", "big"]
        for case in self.PIXEL_CASES:
            folder = self.processor_dir(f"proc_slow_{case}", case)
            slow = Qwen2VLImageProcessor(size=self.size_of(case))
            for name in names:
                img = self.rgb[name]
                ref = slow([img], return_tensors="pt")
                got, _ = self.cli(f"px_slow_{case}_{name}", mode="preprocess", model_dir=folder, resize="pillow",
                                  images=self.images[name])
                self.assertEqual(got["image_grid_thw"].tolist(), ref["image_grid_thw"].tolist(), (case, name))
                _, h, w = ref["image_grid_thw"][0].tolist()
                size = (w * 14, h * 14)
                resized = img.resize(size, Image.BICUBIC)
                h_first = img.resize((size[0], img.height), Image.BICUBIC).resize(size, Image.BICUBIC)
                expect = ref["pixel_values"]
                note = ""
                if not np.array_equal(np.array(resized), np.array(h_first)):
                    # Pillow 13 took the vertical pass first here.
                    expect = slow([h_first], return_tensors="pt")["pixel_values"]
                    gap = float((expect - ref["pixel_values"]).abs().max())
                    note = f" (Pillow 13 resizes vertical-first here: {gap:.3e} from Pillow 12's order)"
                diff = float((got["pixel_values"] - expect).abs().max())
                print(f"pixels ({case}, {name} {img.size} -> {size}) vs Qwen2VLImageProcessor: "
                      f"max abs diff {diff:.3e}{note}")
                self.assertEqual(diff, 0.0, (case, name))

    def test_896_image_gives_1024_tokens(self):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT_TEXT}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        ref = self.processor(images=[self.rgb["big"]], text=[prompt], return_tensors="pt")
        hf_count = int((ref["input_ids"] == IMAGE_TOKEN_ID).sum())
        ours = self.cli_json(mode="prompt", model_dir=self.model_dirs["qwen2_vl"], question=PROMPT_TEXT,
                             images=self.images["big"])
        print(f"896x896: transformers {hf_count} image tokens, grid {ref['image_grid_thw'].tolist()}; "
              f"spatialid {ours['tokens_per_image']}")
        self.assertEqual(hf_count, 1024)
        self.assertEqual(ours["tokens_per_image"], 1024)
        self.assertEqual(ours["ids"], ref["input_ids"][0].tolist())

    # -- prompt and positions -----------------------------------------------

    def test_prompt_ids_match_processor(self):
        for version in VISION:
            got = self.cli_json(mode="prompt", model_dir=self.model_dirs[version], question=PROMPT_TEXT,
                                images=self.images["grid0"])
            self.assertEqual(got["text"], self.prompt, version)
            self.assertEqual(got["ids"], self.inputs["input_ids"][0].tolist(), version)
            self.assertEqual(got["tokens_per_image"], 88, version)
            text_msgs = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
            text_prompt = self.processor.apply_chat_template(text_msgs, add_generation_prompt=True)
            got = self.cli_json(mode="prompt", model_dir=self.model_dirs[version], question=PROMPT_TEXT)
            self.assertEqual(got["ids"], self.processor.tokenizer(text_prompt)["input_ids"], version)
        print(f"prompt ids: {len(self.inputs['input_ids'][0])} ids identical to the processor's (both versions)")

    def test_position_ids_match_get_rope_index(self):
        for version in VISION:
            model = self.hf_model("float32", self.model_dirs[version])
            for label, inputs, px in (("batch", self.inputs, self.px_file), ("two images", self.two_inputs,
                                                                            self.two_px_file)):
                d = family_oracle.DEVICE
                ref, _ = model.model.get_rope_index(inputs["input_ids"].to(d), inputs["mm_token_type_ids"].to(d),
                                                    image_grid_thw=inputs["image_grid_thw"].to(d))
                ref = ref.cpu()
                req = self.request("pos", inputs["input_ids"], [0], [0])
                got, _ = self.cli(f"pos_{version}", mode="positions", model_dir=self.model_dirs[version],
                                  request=req, pixels=px, image_temporal="transformers5_3")
                self.assertTrue(torch.equal(got["position_ids"], ref), f"{version} {label} (5.3 mode)")
                fixed = self.fixed_positions(version, inputs)
                got, _ = self.cli(f"pos_{version}_default", mode="positions", model_dir=self.model_dirs[version],
                                  request=req, pixels=px)
                self.assertTrue(torch.equal(got["position_ids"], fixed), f"{version} {label} (default)")
                ids = inputs["input_ids"][0]
                image = (ids == IMAGE_TOKEN_ID).nonzero().flatten()
                start = int(image[0])
                # Image tokens: temporal = start, (h, w) = start + (row, col); text resumes at max + 1.
                self.assertTrue(bool((fixed[0, 0, image[:10]] == start).all()))
                self.assertEqual(int(fixed[:, 0, int(image[-1]) + 1].max()), int(fixed[:, 0, :int(image[-1]) + 1].max()) + 1)
                if version == "qwen2_5_vl":
                    self.assertFalse(torch.equal(ref, fixed), "transformers 5.3.0's temporal ids should differ")
            print(f"{version}: position ids identical to get_rope_index (5.3 mode) and to the corrected "
                  f"formula (default); image tokens start at {start}")

    # -- image features and hidden states --------------------------------------

    def test_image_features_match(self):
        for version in VISION:
            model = self.hf_model("float32", self.model_dirs[version])
            with torch.no_grad():
                ref = torch.cat(model.model.get_image_features(
                    self.two_inputs["pixel_values"].to(family_oracle.DEVICE),
                    self.two_inputs["image_grid_thw"].to(family_oracle.DEVICE)).pooler_output).cpu()
            got, _ = self.forward(version, "float32", f"feat_{version}", positions=[0], layers=[0],
                                  inputs=self.two_inputs, px_file=self.two_px_file, image_features=True)
            diff = float((got["image_features"] - ref).abs().max())
            print(f"{version} image features ({ref.shape[0]} tokens, two sizes): max abs diff {diff:.3e} "
                  f"({diff / scale_of(ref):.2e} of the scale {scale_of(ref):.3e})")
            self.assertEqual(tuple(got["image_features"].shape), tuple(ref.shape))
            self.assertLessEqual(diff / scale_of(ref), REL_BOUND["float32"])

    def check_hidden(self, version, dtype_name):
        got, _ = self.forward(version, dtype_name, f"h_{version}_{dtype_name}",
                              image_temporal=self.hf_temporal(version))
        ref = self.qwen_hidden(version, dtype_name)[:, :, self.positions]
        return self.compare(got["hidden_states"], ref, f"{version} {dtype_name} (batch 2)", REL_BOUND[dtype_name])

    def test_hidden_states_fp32_qwen2_vl(self):
        self.check_hidden("qwen2_vl", "float32")

    def test_hidden_states_fp32_qwen2_5_vl(self):
        self.check_hidden("qwen2_5_vl", "float32")
        # The default positions against transformers given the corrected ones.
        got, _ = self.forward("qwen2_5_vl", "float32", "h_fixed")
        ref = self.qwen_hidden("qwen2_5_vl", "float32", fixed=True)[:, :, self.positions]
        self.compare(got["hidden_states"], ref, "qwen2_5_vl float32, image-start positions", REL_BOUND["float32"])
        quirk = self.qwen_hidden("qwen2_5_vl", "float32")[:, :, self.positions]
        gap = float((quirk[-1] - ref[-1]).abs().max())
        print(f"qwen2_5_vl: transformers 5.3.0 vs corrected positions change the last hidden state by {gap:.3e}")
        self.assertGreater(gap, 1e-3)

    def test_hidden_states_half_precision(self):
        for version in VISION:
            for dtype_name in ("bfloat16", "float16"):
                self.check_hidden(version, dtype_name)

    def test_two_images_in_one_sequence(self):
        ids = self.two_inputs["input_ids"][0].tolist()
        image = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_ID]
        positions = [0, image[0], image[87], image[88], image[-1], len(ids) - 1]
        for version in VISION:
            got, _ = self.forward(version, "float32", f"two_{version}", positions=positions, inputs=self.two_inputs,
                                  px_file=self.two_px_file, image_temporal=self.hf_temporal(version))
            ref = self.qwen_hidden(version, "float32", inputs=self.two_inputs)[:, :, positions]
            self.compare(got["hidden_states"], ref, f"{version} fp32, two images of two sizes", REL_BOUND["float32"])

    def test_text_only_forward(self):
        text_ids = self.text_prompt_ids()
        n = text_ids.shape[1]
        for version in VISION:
            self.check_text_only(text_ids, [0, n // 2, n - 1], model_dir=self.model_dirs[version],
                                 label=f"{version} text-only fp32")

    def test_stopping_early_changes_nothing(self):
        self.check_early_stop(self.early_stop_cases(), model_dir=self.model_dirs["qwen2_5_vl"])

    def test_cpp_pixels_end_to_end(self):
        """Images -> C++ processor -> forward equals transformers' processor -> model."""
        version = "qwen2_5_vl"
        got = self.check_cpp_pixels(model_dir=self.model_dirs[version], image_temporal="transformers5_3")
        self.assertTrue(torch.equal(got["pixel_values"], self.inputs["pixel_values"]))
        self.assertEqual(got["image_grid_thw"].tolist(), self.inputs["image_grid_thw"].tolist())

    def hf_hidden(self, dtype_name, inputs=None, model_dir=None, text_ids=None, model=None, **row_options):
        if text_ids is None and model_dir is not None and "version" not in row_options:
            row_options["version"] = next(v for v, d in self.model_dirs.items() if d == model_dir)
        return super().hf_hidden(dtype_name, inputs, model_dir, text_ids, model, **row_options)

    def test_planned_forward_matches_plain_and_transformers(self):
        # M-RoPE positions after a prefix cache; Qwen2.5-VL in transformers 5.3's numbering.
        for version in VISION:
            self.check_planned(model_dir=self.model_dirs[version], label=f" {version}",
                               image_temporal=self.hf_temporal(version))

    # -- checkpoints and configs ---------------------------------------------

    def test_checkpoint_naming_schemes(self):
        weights = self.check_naming_schemes(
            renames={
                "module": [("model.", "model.language_model."), ("visual.", "model.visual.")],
                "bare": [("model.", "language_model."), ("lm_head.", None)],
            },
            missing=["visual.blocks.1.attn.qkv.bias"],
            needles="missing (visual.blocks.1.attn.qkv.bias)")
        self.assertIn("model.embed_tokens.weight", weights, "save_pretrained naming changed")
        self.assertIn("visual.merger.mlp.0.weight", weights)

    def test_released_configs_resolve_like_transformers(self):
        """config.json as the Qwen hub repos spell it (text keys at the top level, rope_scaling mrope)."""
        from transformers import Qwen2_5_VLConfig, Qwen2VLConfig
        common = {"attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
                  "vision_start_token_id": 151652, "vision_end_token_id": 151653, "vision_token_id": 151654,
                  "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu",
                  "initializer_range": 0.02, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
                  "sliding_window": 32768, "torch_dtype": "bfloat16", "transformers_version": "4.41.2",
                  "use_cache": True, "use_sliding_window": False,
                  "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}}
        qwen25_vision = {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
                         "num_heads": 16, "in_chans": 3, "patch_size": 14, "spatial_merge_size": 2,
                         "spatial_patch_size": 14, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
                         "tokens_per_second": 2, "temporal_patch_size": 2}
        configs = {
            "qwen2-2b": (Qwen2VLConfig, dict(common, architectures=["Qwen2VLForConditionalGeneration"],
                                             model_type="qwen2_vl", hidden_size=1536, intermediate_size=8960,
                                             max_position_embeddings=32768, max_window_layers=28,
                                             num_attention_heads=12, num_hidden_layers=28, num_key_value_heads=2,
                                             tie_word_embeddings=True, vocab_size=151936,
                                             vision_config={"hidden_size": 1536, "in_chans": 3,
                                                            "spatial_patch_size": 14})),
            "qwen-7b": (Qwen2_5_VLConfig, dict(common, architectures=["Qwen2_5_VLForConditionalGeneration"],
                                               model_type="qwen2_5_vl", hidden_size=3584, intermediate_size=18944,
                                               max_position_embeddings=128000, max_window_layers=28,
                                               num_attention_heads=28, num_hidden_layers=28, num_key_value_heads=4,
                                               tie_word_embeddings=False, vocab_size=152064,
                                               vision_config=dict(qwen25_vision, out_hidden_size=3584))),
            "qwen-3b": (Qwen2_5_VLConfig, dict(common, architectures=["Qwen2_5_VLForConditionalGeneration"],
                                               model_type="qwen2_5_vl", hidden_size=2048, intermediate_size=11008,
                                               max_position_embeddings=128000, max_window_layers=70,
                                               num_attention_heads=16, num_hidden_layers=36, num_key_value_heads=2,
                                               tie_word_embeddings=True, vocab_size=151936,
                                               vision_config=dict(qwen25_vision, out_hidden_size=2048))),
        }
        for name, (config_cls, cfg) in configs.items():
            folder = self.write_config(f"real_config_{name}", cfg)
            ours = self.cli_json(mode="config", model_dir=folder)
            hf = config_cls.from_pretrained(folder)
            t, v = hf.text_config, hf.vision_config
            qwen25 = name != "qwen2-2b"
            expect = {"num_layers": t.num_hidden_layers, "hidden_size": t.hidden_size,
                      "intermediate_size": t.intermediate_size, "num_heads": t.num_attention_heads,
                      "num_kv_heads": t.num_key_value_heads, "head_dim": t.hidden_size // t.num_attention_heads,
                      "vocab_size": t.vocab_size, "rms_norm_eps": t.rms_norm_eps,
                      "rope_theta": t.rope_parameters["rope_theta"],
                      "mrope_section": t.rope_parameters["mrope_section"], "vision_depth": v.depth,
                      "vision_width": v.hidden_size if qwen25 else v.embed_dim, "vision_heads": v.num_heads,
                      "vision_mlp": v.intermediate_size if qwen25 else int(v.embed_dim * v.mlp_ratio),
                      "vision_act": v.hidden_act, "vision_out": v.out_hidden_size if qwen25 else v.hidden_size,
                      "window_blocks": v.window_size // v.spatial_merge_size // v.patch_size if qwen25 else 0,
                      "full_attention_blocks": v.fullatt_block_indexes if qwen25 else [],
                      "image_token_id": hf.image_token_id, "dtype": "BFloat16",
                      "family": "Qwen2.5-VL" if qwen25 else "Qwen2-VL"}
            self.assertEqual(ours, expect, name)
            print(f"{name} config: {t.num_hidden_layers} layers x {t.hidden_size}, vision {v.depth} x "
                  f"{expect['vision_width']}, mrope {expect['mrope_section']}, {ours['dtype']}")

    def test_bad_inputs_are_errors(self):
        version = "qwen2_vl"
        ids = self.inputs["input_ids"].clone()
        ids[:, self.positions[1]] = 30  # one image token fewer
        req = self.request("bad", ids, [0], [0])
        self.cli_error("bad", "the ids hold 174 image tokens", model_dir=self.model_dirs[version], request=req,
                       pixels=self.px_file)
        req = self.request("bad2", self.inputs["input_ids"], [self.inputs["input_ids"].shape[1]], [0])
        self.cli_error("bad2", "outside the sequence", model_dir=self.model_dirs[version], request=req,
                       pixels=self.px_file)
        # A Qwen2.5-VL folder labelled Qwen2-VL: its vision config gives it away.
        self.check_other_family_refused("qwen2_vl", "vision_config.model_type", model_dir=self.model_dirs["qwen2_5_vl"],
                                        request=req, pixels=self.px_file)

    # -- speed (reported, not asserted) -------------------------------------

    def test_zz_throughput_report(self):
        """Rough CPU throughput, batch 1: transformers' full forward vs spatialid's."""
        version = "qwen2_5_vl"
        one = {k: v[:1] for k, v in self.inputs.items() if k != "pixel_values"}
        one["pixel_values"] = self.inputs["pixel_values"][:88 * 4]
        one["image_grid_thw"] = self.inputs["image_grid_thw"][:1]
        self.check_throughput(one, one["input_ids"], self.save_pixels("pixels1", one),
                              model_dir=self.model_dirs[version], label="tiny Qwen2.5-VL")


if __name__ == "__main__":
    unittest.main()
