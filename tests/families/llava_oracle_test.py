"""spatialid's LLaVA-1.5 family against transformers 5.3.0 (the oracle).

A tiny random-weight LlavaForConditionalGeneration (fixed seed; real
geometry: 336 px images, patch 14, 576 image tokens, vision feature layer
-2, "default" strategy; a Llama decoder with the real Llama-2 tokenizer plus
<image>) is saved with save_pretrained. Images are made here: two objects on
a transparent canvas (the data engine's kind of PNG, opened with
.convert("RGB") so the background is black) and a noise image whose odd size
exercises resizing and cropping. The prompt is the reference's:
"USER: <image>\\nIs the frog to the left or right of the camel? ASSISTANT:".

The shared checks (tests/python/family_oracle.py) run with LLaVA's
parameters: every hidden state in fp32 / bf16 / fp16 against transformers in
that dtype (batch 1 bit for bit), early stopping, the text-only forward, the
image features, C++ pixels end to end, naming schemes, the planned forward,
the whole extractor against the reference recipe. LLaVA's own: pixels
against both transformers processors, the llava-hf config spellings, RoPE
variants (the shared block), error reporting.
"""
import json
import os
import shutil
import sys
import unittest

import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import family_oracle  # noqa: E402
import oracle_lib  # noqa: E402
from family_oracle import PROMPT_TEXT, draw_object, noise_png  # noqa: E402

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
CLIP_SETTINGS = dict(
    do_resize=True, size={"shortest_edge": 336}, resample=3, do_center_crop=True,
    crop_size={"height": 336, "width": 336}, do_rescale=True, rescale_factor=1 / 255,
    do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
    image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
NUM_TEXT_LAYERS = 4
IMAGE_TOKEN_ID = 32000


def make_images(folder):
    """Two grid-style PNGs (objects on a transparent canvas) and one noise PNG."""
    paths = []
    camel = draw_object(180, "camel", (201, 150, 80, 255), legs=2)
    frog = draw_object(150, "frog", (60, 170, 70, 255), legs=2)
    for i, (cx, fx) in enumerate([(40, 500), (480, 60)]):
        canvas = Image.new("RGBA", (720, 600), (0, 0, 0, 0))
        canvas.paste(camel, (cx, 300), mask=camel)
        canvas.paste(frog, (fx, 120 + 60 * i), mask=frog)
        paths.append(os.path.join(folder, f"grid_{i}.png"))
        canvas.save(paths[-1])
    # A sharp edge inside the crop.
    paths.append(noise_png(os.path.join(folder, "noise.png"), 517, 333, 7, edge=((100, 300), (50, 250))))
    return paths


def build_checkpoint(model_dir):
    """The tiny model, its processor and the transformers 5 files in model_dir."""
    from transformers import (AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, LlamaConfig,
                              LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor)
    torch.manual_seed(1234)
    tokenizer = AutoTokenizer.from_pretrained(oracle_lib.tokenizer_dir("llama2"))
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    assert image_token_id == IMAGE_TOKEN_ID, image_token_id
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                              num_attention_heads=4, image_size=336, patch_size=14,
                              projection_dim=64, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    text = LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=NUM_TEXT_LAYERS,
                       num_attention_heads=4, num_key_value_heads=4, vocab_size=32064,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                       pad_token_id=32001)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id,
                         projector_hidden_act="gelu", vision_feature_layer=-2,
                         vision_feature_select_strategy="default", image_seq_length=576,
                         pad_token_id=32001)
    model = LlavaForConditionalGeneration(config).eval()
    # Default init leaves attention nearly uniform; larger weights make every
    # hidden state depend on position and image, as in a trained model.
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() >= 2:
                p.mul_(3.0)
    model.save_pretrained(model_dir)
    image_processor = CLIPImageProcessor(**CLIP_SETTINGS)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default",
                               chat_template=CHAT_TEMPLATE, num_additional_image_tokens=1,
                               image_token="<image>")
    processor.save_pretrained(model_dir)
    image_processor.save_pretrained(model_dir)  # preprocessor_config.json, as real downloads have
    return model, processor


class LlavaOracleTest(family_oracle.FamilyOracle, unittest.TestCase):
    FAMILY = "llava"
    NUM_TEXT_LAYERS = NUM_TEXT_LAYERS
    HIDDEN = 64
    FEATURE_SHAPE = (2, 576, 64)

    @classmethod
    def prepare(cls):
        cls.model_dir = os.path.join(cls.dir, "tiny-llava")
        build_checkpoint(cls.model_dir)
        # The torchvision-based image processor, as the reference run under transformers 5 would.
        from transformers import CLIPImageProcessorFast
        cls.processor = cls.load_processor(cls.model_dir, CLIPImageProcessorFast)
        cls.images = make_images(cls.dir)
        cls.batch_images = cls.images[:2]
        cls.rgb = [Image.open(p).convert("RGB") for p in cls.images]
        cls.prompt = cls.user_prompt(cls.processor)
        assert cls.prompt == "USER: <image>\n" + PROMPT_TEXT + " ASSISTANT:", cls.prompt
        # Batch of two grid images with the same prompt (one token layout).
        cls.inputs = cls.processor(images=cls.rgb[:2], text=[cls.prompt, cls.prompt], return_tensors="pt")
        cls.input_ids = cls.inputs["input_ids"]
        ids = cls.input_ids[0].tolist()
        tok = cls.processor.tokenizer
        cls.targets = {}
        for word in ("frog", "left", "right"):
            last = tok.convert_ids_to_tokens(tok(" " + word, add_special_tokens=False)["input_ids"])[-1]
            cls.targets[word] = tok.convert_ids_to_tokens(ids).index(last)
        image_positions = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_ID]
        assert len(image_positions) == 576, len(image_positions)
        cls.positions = sorted({0, image_positions[0], image_positions[100], image_positions[-1],
                                *cls.targets.values(), len(ids) - 1})
        cls.px_file = cls.save_pixels("pixels", cls.inputs)
        cls.px1_file = cls.save_pixels("pixels1", cls.inputs, slice(0, 1))
        print(f"\nprompt tokens: {len(ids)}; targets {cls.targets}; positions {cls.positions}")

    def image_token_id(self):
        return IMAGE_TOKEN_ID

    # -- pixels --------------------------------------------------------------

    def test_pixels_match_transformers5_default_processor(self):
        from transformers import AutoImageProcessor, CLIPImageProcessorFast
        auto = AutoImageProcessor.from_pretrained(self.model_dir)
        self.assertIsInstance(auto, CLIPImageProcessorFast, "transformers 5 should load the fast one")
        ref = auto(self.rgb, return_tensors="pt")["pixel_values"]
        got, _ = self.cli("px_fast", mode="preprocess", model_dir=self.model_dir, images=",".join(self.images))
        diff = float((got["pixel_values"] - ref).abs().max())
        print(f"pixels vs CLIPImageProcessorFast: max abs diff {diff:.3e} over {ref.numel()} values")
        self.assertEqual(got["pixel_values"].shape, ref.shape)
        self.assertEqual(diff, 0.0)
        # processor_config.json alone (transformers 5's layout) gives the same settings.
        alt = os.path.join(self.dir, "processor_only")
        shutil.rmtree(alt, ignore_errors=True)
        os.makedirs(alt)
        shutil.copy(os.path.join(self.model_dir, "processor_config.json"), alt)
        got2, _ = self.cli("px_fast2", mode="preprocess", model_dir=alt, images=",".join(self.images))
        self.assertTrue(torch.equal(got2["pixel_values"], got["pixel_values"]))

    def test_pixels_match_slow_pillow_processor(self):
        from transformers import CLIPImageProcessor, CLIPImageProcessorFast
        ref = CLIPImageProcessor(**CLIP_SETTINGS)(self.rgb, return_tensors="pt")["pixel_values"]
        fast = CLIPImageProcessorFast(**CLIP_SETTINGS)(self.rgb, return_tensors="pt")["pixel_values"]
        got, _ = self.cli("px_slow", mode="preprocess", model_dir=self.model_dir,
                          images=",".join(self.images), resize="pillow")
        diff = float((got["pixel_values"] - ref).abs().max())
        gap = float((fast - ref).abs().max())
        print(f"pixels vs CLIPImageProcessor (Pillow): max abs diff {diff:.3e}; "
              f"fast vs slow processors differ by up to {gap:.3e}")
        self.assertLessEqual(diff, 1e-6)
        self.assertGreater(gap, 1e-3, "the two processors should differ; the test would not tell them apart")

    # -- hidden states (the shared bodies, plus fp16) -----------------------------

    def test_hidden_states_fp16(self):
        self.check_dtype("float16")

    # -- checkpoints -------------------------------------------------------

    def test_checkpoint_naming_schemes(self):
        """Legacy (llava-hf, save_pretrained), module (>= 4.52) and bare LlavaModel names load alike."""
        weights = self.check_naming_schemes(
            renames={
                "module": [("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
                           ("vision_tower.", "model.vision_tower."),
                           ("multi_modal_projector.", "model.multi_modal_projector.")],
                "bare": [("language_model.model.", "language_model."), ("language_model.lm_head.", None)],
            },
            sharded=True,
            missing=["language_model.model.layers.2.mlp.up_proj.weight"],
            needles="missing (language_model.model.layers.2.mlp.up_proj.weight)")
        self.assertIn("language_model.model.embed_tokens.weight", weights, "save_pretrained naming changed")

    def test_real_llava_configs_resolve_like_transformers(self):
        """config.json as the llava-hf 7b/13b downloads spell it (most text keys omitted)."""
        from transformers import LlavaConfig
        text_7b = {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                   "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                   "torch_dtype": "float16", "vocab_size": 32064}
        text_13b = dict(text_7b, hidden_size=5120, intermediate_size=13824, num_attention_heads=40,
                        num_hidden_layers=40, num_key_value_heads=40)
        for name, text in (("7b", text_7b), ("13b", text_13b)):
            cfg = {"architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100,
                   "image_token_index": 32000, "model_type": "llava", "pad_token_id": 32001,
                   "projector_hidden_act": "gelu", "text_config": text, "tie_word_embeddings": False,
                   "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
                   "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                                     "model_type": "clip_vision_model", "num_attention_heads": 16,
                                     "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768,
                                     "vocab_size": 32000},
                   "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
                   "vocab_size": 32064}
            folder = self.write_config(f"real_config_{name}", cfg)
            ours = self.cli_json(mode="config", model_dir=folder)
            hf = LlavaConfig.from_pretrained(folder)
            t, v = hf.text_config, hf.vision_config
            expect = {"num_layers": t.num_hidden_layers, "hidden_size": t.hidden_size,
                      "intermediate_size": t.intermediate_size, "num_heads": t.num_attention_heads,
                      "num_kv_heads": t.num_key_value_heads, "head_dim": t.head_dim,
                      "vocab_size": t.vocab_size, "rms_norm_eps": t.rms_norm_eps,
                      "rope_theta": t.rope_parameters["rope_theta"], "vision_layers": v.num_hidden_layers,
                      "vision_hidden_size": v.hidden_size, "image_size": v.image_size,
                      "patch_size": v.patch_size, "image_token_index": hf.image_token_index,
                      "vision_feature_layer": [hf.vision_feature_layer],
                      # LlavaProcessor: (336 // 14)**2 + 1 additional token - 1 for "default".
                      "image_tokens": (336 // 14) ** 2, "dtype": "Half"}
            self.assertEqual(ours, expect, name)
            print(f"llava-{name} config: {t.num_hidden_layers} layers x {t.hidden_size}, "
                  f"{ours['image_tokens']} image tokens, {ours['dtype']}")

    def test_bad_inputs_are_errors(self):
        # Image-token count that does not match the images.
        ids = self.input_ids[:, :-1].clone()
        ids[:, self.positions[1]] = 1
        req = self.request("bad", ids, [0], [0])
        self.cli_error("bad", "1150 image tokens", model_dir=self.model_dir, request=req, pixels=self.px_file)
        # A position past the end.
        req = self.request("bad2", self.input_ids, [self.input_ids.shape[1]], [0])
        self.cli_error("bad2", "outside the sequence", model_dir=self.model_dir, request=req, pixels=self.px_file)
        # A checkpoint of another family.
        self.check_other_family_refused("qwen2_vl", 'model_type: expected "llava", got "qwen2_vl"', request=req,
                                        pixels=self.px_file)

    # -- shared blocks -----------------------------------------------------

    def test_rope_variants_match_transformers(self):
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
        cases = {
            "default": ({"rope_type": "default", "rope_theta": 10000.0}, 512),
            "linear": ({"rope_type": "linear", "rope_theta": 1e6, "factor": 8.0}, 512),
            "llama3": ({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 64}, 512),
            "dynamic_short": ({"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}, 512),
            "dynamic_long": ({"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}, 1500),
        }
        max_pos, head_dim = 1024, 64
        for name, (params, seq_len) in cases.items():
            cfg = LlamaConfig(hidden_size=256, num_attention_heads=4, max_position_embeddings=max_pos,
                              rope_parameters=dict(params))
            rope = LlamaRotaryEmbedding(cfg)
            pos = torch.arange(seq_len)[None]
            cos, sin = rope(torch.zeros(1, dtype=torch.float32), pos)
            path = os.path.join(self.dir, f"rope_{name}.json")
            with open(path, "w") as f:
                json.dump({**params, "head_dim": head_dim, "max_position_embeddings": max_pos,
                           "context_length": seq_len, "seq_len": seq_len}, f)
            got, _ = self.cli(f"rope_{name}", mode="rope", rope=path)
            d = max(float((got["inv_freq"] - rope.inv_freq).abs().max()),
                    float((got["cos"] - cos).abs().max()), float((got["sin"] - sin).abs().max()))
            print(f"rope {name}: max abs diff {d:.3e}")
            self.assertEqual(d, 0.0, name)


if __name__ == "__main__":
    unittest.main()
