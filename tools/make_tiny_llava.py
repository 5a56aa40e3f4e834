"""Writes a small random-weight LLaVA-1.5 checkpoint folder with transformers.

The folder has exactly the files a real `llava-hf/llava-1.5-7b-hf` download
has (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
preprocessor_config.json, processor_config.json, chat_template.jinja), the
real Llama-2 tokenizer and the real CLIP processor settings, but scaled-down
random weights (fixed seed). It is spatialid's built-in default model: the
pipeline runs end to end on a CPU in minutes, and the numbers mean nothing.

Usage: make_tiny_llava.py OUT_DIR [--tokenizer_dir DIR] [--seed N] [--size default|test|bench]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

LLAVA_CHAT_TEMPLATE = (
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

# Shapes: the real llava-1.5-7b has vision 1024x24 layers at 336 px and text
# 4096x32 layers. "default" keeps the real image geometry (336 px, patch 14,
# 576 image tokens) with narrow, shallow layers; "test" is smaller still;
# "bench" (benchmarks/side_by_side.py) keeps the real proportions that set
# where time goes: head sizes 64 (vision) and 128 (text), MLP widths 4x and
# 2.6875x, text twice as wide as vision, more vision layers.
SIZES = {
    "default": dict(v_hidden=128, v_inter=512, v_layers=4, v_heads=4,
                    t_hidden=256, t_inter=688, t_layers=6, t_heads=8),
    "test": dict(v_hidden=64, v_inter=128, v_layers=3, v_heads=4,
                 t_hidden=64, t_inter=172, t_layers=3, t_heads=4),
    "bench": dict(v_hidden=256, v_inter=1024, v_layers=6, v_heads=4,
                  t_hidden=512, t_inter=1376, t_layers=8, t_heads=4),
}


def make_processor(tok_dir):
    """The llava-1.5 processor: the Llama-2 tokenizer file with `<image>` (32000)
    and `<pad>` added, CLIP's 336 px settings and the chat template, as the
    llava-hf downloads have them. Returns (processor, image_processor)."""
    from transformers import AutoTokenizer, CLIPImageProcessor, LlavaProcessor
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    assert image_token_id == 32000, image_token_id
    image_processor = CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": 336}, resample=3, do_center_crop=True,
        crop_size={"height": 336, "width": 336}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=14, vision_feature_select_strategy="default",
                               chat_template=LLAVA_CHAT_TEMPLATE, num_additional_image_tokens=1,
                               image_token="<image>")
    return processor, image_processor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer_dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--dtype", default="float16")
    args = ap.parse_args()

    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tok_dir = args.tokenizer_dir or os.path.join(
        os.environ.get("SPATIALID_ASSETS", os.path.expanduser("~/.cache/spatialid/assets")),
        "tokenizers", "llama2")
    s = SIZES[args.size]
    torch.manual_seed(args.seed)

    processor, image_processor = make_processor(tok_dir)
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<image>")

    vision = CLIPVisionConfig(hidden_size=s["v_hidden"], intermediate_size=s["v_inter"],
                              num_hidden_layers=s["v_layers"], num_attention_heads=s["v_heads"],
                              image_size=336, patch_size=14, projection_dim=s["v_hidden"],
                              hidden_act="quick_gelu", layer_norm_eps=1e-5)
    text = LlamaConfig(hidden_size=s["t_hidden"], intermediate_size=s["t_inter"],
                       num_hidden_layers=s["t_layers"], num_attention_heads=s["t_heads"],
                       num_key_value_heads=s["t_heads"], vocab_size=32064,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                       pad_token_id=32001)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id,
                         projector_hidden_act="gelu", vision_feature_layer=-2,
                         vision_feature_select_strategy="default", image_seq_length=576,
                         pad_token_id=32001)
    config.dtype = args.dtype
    model = LlavaForConditionalGeneration(config).eval()
    # Random init gives near-zero attention logits; scale weights up a little so
    # hidden states carry position-dependent signal like a trained model would.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.mul_(2.0)
    model = model.to(getattr(torch, args.dtype))

    parent = os.path.dirname(os.path.abspath(args.out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tiny-llava-", dir=parent)
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        # Real v4-era downloads carry preprocessor_config.json beside the
        # processor; write it too so the default looks like one.
        image_processor.save_pretrained(tmp)
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        os.rename(tmp, args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
