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

The shared checks (tests/python/family_oracle.py) run with Gemma 3's
parameters: every hidden state in fp32 and bf16 (transformers in the same
dtype, with the processor's token_type_ids as the reference passes them;
batch 1 bit for bit), the image features, the text-only forward, C++ pixels
end to end, naming schemes, the planned forward (explicit masks with a
prefix cache), the whole extractor against the reference recipe (the
template writes <bos>, so the two BOS rules differ). Gemma 3's own: pixels
against both transformers processors; prompt ids against the processor; that
both masks matter; a truncated layer request (as gemma-4b keeps 0..29 of 34)
and positions inside the image block; real gemma-3-4b/12b config.json files
and the 896 px token count; error reporting. Figures are printed.
"""
import json
import os
import shutil
import sys
import unittest

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import family_oracle  # noqa: E402
import oracle_lib  # noqa: E402
from family_oracle import PROMPT_TEXT, scale_of  # noqa: E402

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


class Gemma3OracleTest(family_oracle.FamilyOracle, unittest.TestCase):
    FAMILY = "gemma3"
    NUM_TEXT_LAYERS = NUM_TEXT_LAYERS
    HIDDEN = TEXT_HIDDEN
    REL_BOUND = {k: family_oracle.REL_BOUND[k] for k in ("float32", "bfloat16")}
    FEATURE_SHAPE = (2, IMAGE_TOKENS, TEXT_HIDDEN)
    TEMPLATE_WRITES_BOS = True
    test_stopping_early_changes_nothing = None  # test_truncated_layers_and_image_positions stops early

    @classmethod
    def prepare(cls):
        cls.model_dir = os.path.join(cls.dir, "tiny-gemma3")
        build_checkpoint(cls.model_dir)
        from transformers import Gemma3ImageProcessorFast
        cls.processor = cls.load_processor(cls.model_dir, Gemma3ImageProcessorFast)
        cls.images = make_images(cls.dir)
        cls.batch_images = cls.images[:2]
        cls.rgb = [Image.open(p).convert("RGB") for p in cls.images]
        cls.prompt = cls.user_prompt(cls.processor)
        assert cls.prompt == ("<bos><start_of_turn>user\n<start_of_image>" + PROMPT_TEXT +
                              "<end_of_turn>\n<start_of_turn>model\n"), cls.prompt
        # Batch of two grid images with the same prompt. The template writes
        # <bos> itself, so no second one (apply_chat_template's rule).
        cls.inputs = cls.processor(images=[[cls.rgb[0]], [cls.rgb[1]]], text=[cls.prompt, cls.prompt],
                                   add_special_tokens=False, return_tensors="pt")
        cls.input_ids = cls.inputs["input_ids"]
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
        cls.px_file = cls.save_pixels("pixels", cls.inputs)
        cls.px1_file = cls.save_pixels("pixels1", cls.inputs, slice(0, 1))
        print(f"\nprompt tokens: {len(ids)}; image tokens {ip[0]}..{ip[-1]}; targets {cls.targets}; "
              f"positions {cls.positions}")

    def image_token_id(self):
        return IMAGE_TOKEN_ID

    def hf_model(self, dtype_name, model_dir=None, config=None, **text_overrides):
        if text_overrides:
            from transformers import Gemma3Config
            config = Gemma3Config.from_pretrained(model_dir or self.model_dir)
            for k, v in text_overrides.items():
                setattr(config.text_config, k, v)
        return super().hf_model(dtype_name, model_dir, config)

    def hf_row_kwargs(self, inputs, b, dtype_name, token_types=True):
        # With the processor's token_type_ids, as the reference passes them
        # (they make the image block attend both ways).
        kw = {"input_ids": inputs["input_ids"][b:b + 1], "pixel_values": inputs["pixel_values"][b:b + 1]}
        if token_types:
            kw["token_type_ids"] = inputs["token_type_ids"][b:b + 1]
        return kw

    def hf_text_kwargs(self, text_ids):
        return {"input_ids": text_ids, "token_type_ids": torch.zeros_like(text_ids)}

    # -- pixels ------------------------------------------------------------

    def test_pixels_match_transformers5_default_processor(self):
        from transformers import AutoImageProcessor, Gemma3ImageProcessorFast
        auto = AutoImageProcessor.from_pretrained(self.model_dir)
        self.assertIsInstance(auto, Gemma3ImageProcessorFast, "transformers 5 should load the fast one")
        ref = self.processor(images=[[im] for im in self.rgb], text=["<start_of_image>"] * 3,
                             return_tensors="pt")["pixel_values"]
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
            flags = dict(mode="prompt", model_dir=self.model_dir, question=PROMPT_TEXT, bos="chat_template")
            if with_image:
                flags["images"] = self.images[0]
            ours = self.cli_json(**flags)
            content = ([{"type": "image", "image": self.rgb[0]}] if with_image else []) + \
                [{"type": "text", "text": PROMPT_TEXT}]
            out = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                     add_generation_prompt=True, tokenize=True, return_dict=True)
            want = [int(i) for i in np.asarray(out["input_ids"]).reshape(-1)]
            self.assertFalse(ours["add_special_tokens"])
            self.assertEqual(ours["ids"], want, f"with_image={with_image}")
            if with_image:
                self.assertEqual(want, self.input_ids[0].tolist())
                self.assertEqual(sum(1 for i in want if i == IMAGE_TOKEN_ID), IMAGE_TOKENS)
            # What a bare processor(text=rendered) call does: the tokenizer
            # adds <bos> again (GemmaTokenizer add_bos_token=True).
            images = [self.rgb[0]] if with_image else None
            double = self.processor(text=ours["text"], images=images)["input_ids"][0]
            self.assertEqual(double[:2], [tok.bos_token_id, tok.bos_token_id])
            self.assertEqual(double[1:], want)
            # --bos=processor (the reference's call) gives exactly those ids.
            self.assertEqual(self.cli_json(**dict(flags, bos="processor"))["ids"], double)
            print(f"prompt with_image={with_image}: {len(want)} ids identical to apply_chat_template"
                  f"(tokenize=True); processor(text=rendered) gives {len(double)} ids starting <bos><bos>")

    # -- hidden states -----------------------------------------------------

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
                     family_oracle.REL_BOUND["float32"])
        ip = self.image_positions
        cases = (([ip[5]], [2, 3]), ([ip[0], ip[40]], [NUM_TEXT_LAYERS]), ([ip[-1] + 1], [1]))
        parts = self.check_early_stop(cases, label="early stop inside the image block")
        for (positions, layers), part in zip(cases, parts):
            self.compare(part, ref[layers][:, :, positions], f"positions {positions} fp32",
                         family_oracle.REL_BOUND["float32"])

    def test_text_only_forward(self):
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
        text_ids = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                      return_dict=True, return_tensors="pt")["input_ids"]
        n = text_ids.shape[1]
        self.assertGreater(n, SLIDING_WINDOW)
        self.check_text_only(text_ids, [0, n // 2, n - 1])

    def cpp_pixels_layers(self):
        return [0, 3, NUM_TEXT_LAYERS]

    # -- checkpoints and configs -------------------------------------------

    def test_checkpoint_naming_schemes(self):
        """Hub/save_pretrained, module (>= 4.52) and bare Gemma3Model names load alike."""
        weights = self.check_naming_schemes(
            renames={
                "module": [("language_model.model.", "model.language_model."), ("vision_tower.", "model.vision_tower."),
                           ("multi_modal_projector.", "model.multi_modal_projector.")],
                "bare": [("language_model.model.", "language_model.")],
            },
            untied_head=("module", "language_model.model.embed_tokens.weight"),
            missing=["language_model.model.layers.2.post_feedforward_layernorm.weight"],
            needles="missing (language_model.model.layers.2.post_feedforward_layernorm.weight)")
        self.assertIn("language_model.model.embed_tokens.weight", weights, "save_pretrained naming changed")

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
            folder = self.write_config(f"real_config_{name}", cfg)
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
        # The prompt mode also writes the C++ processor's pixels for the image.
        got, stdout = self.cli("px_896", mode="prompt", model_dir=real, question=PROMPT_TEXT,
                               images=self.images[0], bos="chat_template")
        ours = json.loads(stdout.strip().splitlines()[-1])
        self.assertEqual(ours["ids"], want)
        n_image = want.count(IMAGE_TOKEN_ID)
        self.assertEqual(n_image, 256)
        self.assertEqual(ours["tokens_per_image"], 256)
        self.assertTrue(torch.equal(got["pixel_values"], out["pixel_values"]))
        self.assertEqual(tuple(got["pixel_values"].shape), (1, 3, 896, 896))
        print(f"896x896 image: {n_image} <image_soft_token> of {len(want)} prompt ids, identical to "
              f"Gemma3Processor; pixels identical")

    def test_bad_inputs_are_errors(self):
        ids = self.input_ids.clone()
        ids[:, self.image_positions[3]] = 108
        req = self.request("bad", ids, [0], [0])
        self.cli_error("bad", f"{2 * IMAGE_TOKENS - 2} image tokens", model_dir=self.model_dir, request=req,
                       pixels=self.px_file)
        req = self.request("bad2", self.input_ids, [self.input_ids.shape[1]], [0])
        self.cli_error("bad2", "outside the sequence", model_dir=self.model_dir, request=req, pixels=self.px_file)
        req = self.request("bad3", self.input_ids, [0], [NUM_TEXT_LAYERS + 1])
        self.cli_error("bad3", "outside 0..6", model_dir=self.model_dir, request=req, pixels=self.px_file)
        req = self.request("other", self.input_ids, [0], [0])
        self.check_other_family_refused("llava", 'model_type: expected "gemma3", got "llava"', request=req,
                                        pixels=self.px_file)

    # -- speed (reported, not asserted) -------------------------------------

    def test_zz_throughput_report(self):
        """Rough CPU throughput, batch 1, reference recipe vs spatialid's forward."""
        self.check_throughput(self.hf_row_kwargs(self.inputs, 0, "float32"), self.input_ids[:1], self.px1_file,
                              reps=3, layers=list(range(NUM_TEXT_LAYERS)))


if __name__ == "__main__":
    unittest.main()
