"""Full size on the CPU: a random-weight llava-7b through spatialid, measured.

The checks that tiny models cannot make: load time, peak memory against the
weights' bytes, seconds per image in bf16 at the real width and depth, the
one-line memory-fit refusal of the default --dtype=auto (float32 on the CPU,
26 GiB of weights) on a 24 GiB machine, and one image's kept hidden states
against transformers at full size. Not a CI test (up to 18 GiB and 15 to
20 minutes of these two cores); README.md records what it measured.

Steps, each in its own process (peak RSS from wait4), the models never in
memory together:
  make       llava-1.5-7b from its real config.json (tools/real_models/llava-7b):
             transformers builds the model on the meta device for the tensor
             names and shapes; values are drawn per tensor (2-D weights N(0,
             0.02) like transformers' init, norms 1, biases 0) and written in
             float16 as the Hub stores llava-hf/llava-1.5-7b-hf: Hub tensor names,
             ~5 GB shards model-0000K-of-0000N.safetensors with
             model.safetensors.index.json, plus the processor files
             transformers saves (real Llama-2 tokenizer, CLIP settings, chat
             template). Only one shard is in memory at a time.
  fit        small_id_grid with the default --dtype=auto: must stop with the
             one-line memory-fit error before loading (when float32 cannot fit).
  extract    batch_extraction --dtype=bfloat16 on --layouts layouts drawn in
             memory (--objects_dir, one shard of camel_frog): load seconds,
             seconds per image, peak RSS.
  forward    llava_forward_cli (spatialid's LLaVA forward) on one image in bf16:
             the hidden states of --layers at the target word's row.
  reference  transformers (LlavaForConditionalGeneration, bf16) on the same
             input ids and pixels; then the per-layer differences.

Takes /tmp/bigmem.lock (the shared machine's rule for steps over 6 GiB) and
waits for it; refuses to start a step with less than --min_free_gib available.

Usage:
  $SPATIALID_PYTHON tools/full_size_cpu_check.py [--work_dir DIR] [--layouts 8]
      [--batch_extraction PATH] [--small_id_grid PATH] [--forward_cli PATH]
"""
import argparse
import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REAL_CONFIG = os.path.join(HERE, "real_models", "llava-7b", "config.json")
LOCK = "/tmp/bigmem.lock"
SHARD_BYTES = 5 * 10**9  # transformers' max_shard_size="5GB", as the Hub's llava files
CODEPOINTS = {"camel": "1F42B", "frog": "1F438"}


def log(msg):
    print(f"[full_size] {msg}", file=sys.stderr, flush=True)


def measured(cmd, env=None):
    """(returncode, stdout, stderr, wall seconds, peak RSS GiB) of cmd."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    chunks = {"out": [], "err": []}

    def pump(stream, key):
        for line in stream:
            chunks[key].append(line)

    threads = [threading.Thread(target=pump, args=(proc.stdout, "out")),
               threading.Thread(target=pump, args=(proc.stderr, "err"))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for t in threads:
        t.join()
    return (os.waitstatus_to_exitcode(status), "".join(chunks["out"]), "".join(chunks["err"]),
            time.perf_counter() - start, usage.ru_maxrss / 2**20)


def available_gib():
    with open("/proc/meminfo") as f:
        return int(re.search(r"MemAvailable:\s+(\d+)", f.read()).group(1)) / 2**20


# --- the lock ------------------------------------------------------------------------------


def take_lock(min_free):
    while True:
        try:
            os.mkdir(LOCK)
            break
        except FileExistsError:
            log(f"{LOCK} is held by someone else; waiting")
            time.sleep(30)
    atexit.register(lambda: os.path.isdir(LOCK) and os.rmdir(LOCK))
    while available_gib() < min_free:
        log(f"{available_gib():.1f} GiB available, waiting for {min_free}")
        time.sleep(30)


# --- make: the checkpoint --------------------------------------------------------------------


def hub_name(name):
    """transformers 5's module names -> the names llava-hf's files use."""
    for new, old in (("model.language_model.", "language_model.model."), ("lm_head.", "language_model.lm_head."),
                     ("model.vision_tower.", "vision_tower."),
                     ("model.multi_modal_projector.", "multi_modal_projector.")):
        if name.startswith(new):
            return old + name[len(new):]
    raise ValueError(f"no Hub name for {name}")


def check_hub_names(config_dict):
    """The renaming above is what transformers' own save_pretrained writes
    (checked on a 1-layer model of the same classes)."""
    import tempfile

    import torch
    from safetensors import safe_open
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    small = json.loads(json.dumps(config_dict))
    small["text_config"].update(hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2)
    small["vision_config"].update(hidden_size=32, intermediate_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, image_size=28)
    with tempfile.TemporaryDirectory() as d:
        model = LlavaForConditionalGeneration(LlavaConfig.from_dict(small)).to(torch.float16)
        model.save_pretrained(d)
        with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
            saved = set(f.keys())
        ours = {hub_name(n) for n in model.state_dict()}
    if saved != ours:
        raise SystemExit(f"Hub names differ from transformers' save: {sorted(saved ^ ours)[:6]}")


def worker_make(out):
    import torch
    from safetensors.torch import save_file
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    sys.path.insert(0, HERE)
    import make_tiny_llava

    with open(REAL_CONFIG) as f:
        config_dict = json.load(f)
    check_hub_names(config_dict)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(LlavaConfig.from_dict(config_dict))
    specs = [(hub_name(n), tuple(t.shape)) for n, t in model.state_dict().items()]
    del model
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    gen = torch.Generator().manual_seed(0)
    shards, current, size, total = [], {}, 0, 0

    def flush():
        nonlocal current, size
        if current:
            name = f"shard-{len(shards)}.safetensors"
            save_file(current, os.path.join(tmp, name), metadata={"format": "pt"})
            shards.append((name, list(current)))
            log(f"wrote shard {len(shards)} ({size / 1e9:.2f} GB)")
        current, size = {}, 0

    for name, shape in specs:
        nbytes = 2
        for d in shape:
            nbytes *= d
        if current and size + nbytes > SHARD_BYTES:
            flush()
        if len(shape) >= 2:
            t = torch.empty(shape, dtype=torch.float32).normal_(0.0, 0.02, generator=gen).to(torch.float16)
        elif name.endswith("bias"):
            t = torch.zeros(shape, dtype=torch.float16)
        elif "norm" in name or "layrnorm" in name:
            t = torch.ones(shape, dtype=torch.float16)
        else:  # CLIP's class embedding
            t = torch.empty(shape, dtype=torch.float32).normal_(0.0, shape[0] ** -0.5, generator=gen).half()
        current[name] = t
        size += nbytes
        total += nbytes
    flush()
    weight_map = {}
    for k, (name, names) in enumerate(shards):
        final = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        os.rename(os.path.join(tmp, name), os.path.join(tmp, final))
        weight_map.update({n: final for n in names})
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    tok_dir = os.path.join(os.environ.get("SPATIALID_ASSETS", os.path.expanduser("~/.cache/spatialid/assets")),
                           "tokenizers", "llama2")
    processor, image_processor = make_tiny_llava.make_processor(tok_dir)
    processor.save_pretrained(tmp)
    image_processor.save_pretrained(tmp)
    shutil.copy(REAL_CONFIG, os.path.join(tmp, "config.json"))
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print(json.dumps({"bytes": total, "shards": len(shards), "tensors": len(specs)}))


# --- one image: inputs, transformers ------------------------------------------------------------


def worker_inputs(model_dir, image, out_dir, layers):
    """Input ids, target position and pixels of one image, as the reference makes them."""
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import AutoProcessor
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import spatial_id_reference as ref
    processor = AutoProcessor.from_pretrained(model_dir)
    prompt, words = ref.batch_prompt("camel", "frog")
    inputs = ref.image_inputs(processor, prompt, Image.open(image).convert("RGB"))
    ids = inputs["input_ids"][0].tolist()
    positions = ref.target_positions(processor.tokenizer, ids, words)
    save_file({"pixel_values": inputs["pixel_values"].float().contiguous()}, os.path.join(out_dir, "pixels.safetensors"))
    with open(os.path.join(out_dir, "request.json"), "w") as f:
        json.dump({"input_ids": [ids], "positions": [positions[w][0] for w in words], "layers": layers}, f)
    print(json.dumps({"sequence": len(ids), "positions": positions}))


def worker_reference(model_dir, out_dir):
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import LlavaForConditionalGeneration
    torch.set_num_threads(os.cpu_count())
    with open(os.path.join(out_dir, "request.json")) as f:
        req = json.load(f)
    pixels = load_file(os.path.join(out_dir, "pixels.safetensors"))["pixel_values"]
    start = time.perf_counter()
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    load = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        out = model(input_ids=torch.tensor(req["input_ids"]), pixel_values=pixels.to(torch.bfloat16),
                    output_hidden_states=True)
    forward = time.perf_counter() - start
    rows = torch.stack([out.hidden_states[layer][:, req["positions"]] for layer in req["layers"]])
    save_file({"hidden_states": rows.contiguous()}, os.path.join(out_dir, "transformers.safetensors"))
    print(json.dumps({"load_seconds": load, "forward_seconds": forward}))


def compare(out_dir):
    import torch
    from safetensors.torch import load_file
    with open(os.path.join(out_dir, "request.json")) as f:
        layers = json.load(f)["layers"]
    ours = load_file(os.path.join(out_dir, "spatialid.safetensors"))["hidden_states"].float()
    ref = load_file(os.path.join(out_dir, "transformers.safetensors"))["hidden_states"].float()
    rows = []
    for i, layer in enumerate(layers):
        a, b = ours[i].reshape(-1, ours.shape[-1]), ref[i].reshape(-1, ref.shape[-1])
        diff = (a - b).abs().max().item()
        scale = b.abs().max().item()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item()
        rows.append({"layer": layer, "max_abs_diff": diff, "scale": scale, "relative": diff / max(scale, 1e-30),
                     "min_cosine": cos})
    return rows


# --- the run ----------------------------------------------------------------------------------


def render_objects(work):
    objects = os.path.join(work, "objects")
    if not os.path.isdir(objects):
        os.makedirs(objects)
        assets = os.environ.get("SPATIALID_ASSETS", os.path.expanduser("~/.cache/spatialid/assets"))
        for name, cp in CODEPOINTS.items():
            subprocess.run(["rsvg-convert", "-w", "512", "-h", "512", "-f", "png", "-o",
                            os.path.join(objects, name + ".png"), os.path.join(assets, "openmoji", cp + ".svg")],
                           check=True)
    return objects


def run_self(args, *extra):
    return measured([sys.executable, os.path.abspath(__file__), *extra])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work_dir", default=os.path.expanduser("~/.cache/spatialid/full_size"))
    ap.add_argument("--layouts", type=int, default=8, help="layouts batch_extraction runs (a divisor of 144)")
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--layers", default="0,1,8,16,24,31,32", help="hidden states compared on one image")
    ap.add_argument("--min_free_gib", type=float, default=16.0)
    ap.add_argument("--steps", default="make,fit,extract,forward,reference")
    bazel_bin = os.path.join(ROOT, "bazel-bin")
    ap.add_argument("--batch_extraction", default=os.path.join(bazel_bin, "examples", "batch_extraction"))
    ap.add_argument("--small_id_grid", default=os.path.join(bazel_bin, "examples", "small_id_grid"))
    ap.add_argument("--grid_data", default=os.path.join(bazel_bin, "examples", "grid_data"))
    ap.add_argument("--forward_cli", default=os.path.join(bazel_bin, "tests", "families", "llava_forward_cli"))
    ap.add_argument("--_worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--_arg", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker == "make":
        return worker_make(*args._arg)
    if args._worker == "inputs":
        return worker_inputs(args._arg[0], args._arg[1], args._arg[2], [int(x) for x in args._arg[3].split(",")])
    if args._worker == "reference":
        return worker_reference(*args._arg)

    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "llava-1.5-7b-random")
    steps = args.steps.split(",")
    take_lock(args.min_free_gib)
    # A rerun of some steps keeps the other steps' figures.
    report = {}
    if os.path.isfile(os.path.join(work, "report.json")):
        with open(os.path.join(work, "report.json")) as f:
            report = json.load(f)
    report.update({"available_gib_at_start": available_gib(), "cpu": os.cpu_count()})

    def step(name, cmd_result, what):
        rc, out, err, wall, rss = cmd_result
        if rc != 0 and name != "fit":
            raise SystemExit(f"{what} failed (exit {rc}):\n{out[-2000:]}\n{err[-3000:]}")
        # The machine is shared: the load average says how much of it the step had.
        report[name] = {"wall_seconds": wall, "peak_rss_gib": rss, "load_average_after": os.getloadavg()[0]}
        log(f"{what}: {wall:.1f} s, peak RSS {rss:.2f} GiB, load average {os.getloadavg()[0]:.1f}")
        return rc, out, err

    if "make" in steps or not os.path.isfile(os.path.join(model, "model.safetensors.index.json")):
        log(f"making the random-weight llava-1.5-7b in {model}")
        _, out, _ = step("make", run_self(args, "--_worker=make", f"--_arg={model}"), "making the checkpoint")
        report["make"].update(json.loads(out.strip().splitlines()[-1]))
    with open(os.path.join(model, "model.safetensors.index.json")) as f:
        weight_bytes = json.load(f)["metadata"]["total_size"]
    report["checkpoint"] = {"dir": model, "fp16_bytes": weight_bytes,
                            "files": sorted(os.listdir(model))}
    objects = render_objects(work)

    if "fit" in steps:
        # The default dtype (auto = float32 on the CPU) must be refused before loading.
        rc, _, err = step("fit", measured([args.small_id_grid, "--model=llava-7b", f"--model_dir={model}",
                                           f"--objects_dir={objects}", f"--out={work}/fit_out"]),
                          "small_id_grid with the default --dtype=auto")
        report["fit"].update({"exit": rc, "stderr": err.strip()})
        log(f"exit {rc}: {err.strip()}")

    if "extract" in steps:
        shards = 144 // args.layouts
        rc, out, err = step("extract", measured([
            args.batch_extraction, "--model=llava-7b", f"--model_dir={model}", "--dtype=bfloat16",
            f"--objects_dir={objects}", "--pairs=camel_frog", "--sizes=224", "--no_same_row_or_col",
            f"--shard=0", f"--num_shards={shards}", f"--batch_size={args.batch_size}", "--overwrite",
            f"--out={work}/extract_out", "--layers=reference"]), f"batch_extraction, {args.layouts} layouts, bf16")
        m = re.search(r"batch_extraction: (\d+) images in ([\d.]+) s .*?forward ([\d.]+) s", err)
        if not m:
            raise SystemExit(f"no statistics line:\n{err[-2000:]}")
        images, seconds, forward = int(m.group(1)), float(m.group(2)), float(m.group(3))
        report["extract"].update({"images": images, "extract_seconds": seconds, "forward_seconds": forward,
                                  "seconds_per_image": seconds / images,
                                  "load_seconds": report["extract"]["wall_seconds"] - seconds,
                                  "bf16_weight_gib": weight_bytes / 2**30,
                                  "rss_over_weights": report["extract"]["peak_rss_gib"] / (weight_bytes / 2**30)})

    one = os.path.join(work, "one_image")
    if "forward" in steps or "reference" in steps:
        os.makedirs(one, exist_ok=True)
        grid = os.path.join(work, "grid")
        if not os.path.isdir(grid):
            subprocess.run([args.grid_data, f"--objects_dir={objects}", f"--out={grid}", "--pairs=camel_frog",
                            "--sizes=224"], check=True, capture_output=True)
        image = os.path.join(grid, "camel_frog", "1_2", "3_0_224.png")
        rc, out, err, _, _ = run_self(args, "--_worker=inputs", f"--_arg={model}", f"--_arg={image}",
                                      f"--_arg={one}", f"--_arg={args.layers}")
        if rc != 0:
            raise SystemExit(err[-3000:])
        report["one_image"] = {"image": os.path.relpath(image, work), **json.loads(out.strip().splitlines()[-1])}
    if "forward" in steps:
        rc, out, err = step("forward", measured([
            args.forward_cli, f"--model_dir={model}", f"--request={one}/request.json",
            f"--pixels={one}/pixels.safetensors", "--dtype=bfloat16", f"--out={one}/spatialid.safetensors"]),
            "spatialid's forward (llava_forward_cli), one image, bf16")
    if "reference" in steps:
        rc, out, err = step("reference", run_self(args, "--_worker=reference", f"--_arg={model}", f"--_arg={one}"),
                            "transformers, one image, bf16")
        report["reference"].update(json.loads(out.strip().splitlines()[-1]))
    if os.path.isfile(os.path.join(one, "spatialid.safetensors")) and \
            os.path.isfile(os.path.join(one, "transformers.safetensors")):
        report["hidden_states"] = compare(one)
        for r in report["hidden_states"]:
            log(f"layer {r['layer']:2d}: max |diff| {r['max_abs_diff']:.3g} of scale {r['scale']:.3g} "
                f"(relative {r['relative']:.2e}), min cosine {r['min_cosine']:.6f}")
    with open(os.path.join(work, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
