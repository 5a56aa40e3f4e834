"""Encode throughput of spatialid's tokenizer vs HF `tokenizers`, same corpus, same run.

Runs //benchmarks:tokenizer_benchmark (Google Benchmark, BM_EncodeCorpus)
and then times HF `tokenizers` from Python on the same corpus and
tokenizer.json files, and prints strings/second for both and their ratio:
  - C++ on 1 thread vs HF `Tokenizer.encode` called once per string;
  - C++ on 2 threads vs HF `Tokenizer.encode_batch` (Rust threads, all cores).
Each figure is the best of --repetitions runs with warm caches on both
sides. Other work on the machine slows both sides alike only if it is
steady, so run it on a quiet machine.

One command:
  bazel run //benchmarks:tokenizer_benchmark_compare
or, with a binary built elsewhere:
  $SPATIALID_PYTHON benchmarks/tokenizer_benchmark_compare.py --binary=bazel-bin/benchmarks/tokenizer_benchmark
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

NAMES = ["llama2", "llama3", "qwen3", "gemma3"]
CORPUS = "spatialid/text/testdata/tokenizer/corpus.jsonl"


def load_corpus(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def run_cpp(binary, corpus, tokenizers, repetitions):
    proc = subprocess.run(
        [binary, f"--corpus={corpus}", f"--tokenizers={tokenizers}",
         "--benchmark_filter=BM_EncodeCorpus", "--benchmark_format=json",
         f"--benchmark_repetitions={repetitions}"],
        capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"tokenizer_benchmark failed:\n{proc.stderr}")
    best = {}  # (name, threads) -> (wall seconds, CPU seconds) per iteration, best of runs
    for run in json.loads(proc.stdout)["benchmarks"]:
        if run.get("run_type") != "iteration":
            continue
        # BM_EncodeCorpus/<name>/real_time/threads:<n>, times in ms per iteration
        parts = run["run_name"].split("/")
        key = (parts[1], int(parts[-1].split(":")[1]))
        wall, cpu = best.get(key, (float("inf"), float("inf")))
        best[key] = (min(wall, run["real_time"] / 1e3), min(cpu, run["cpu_time"] / 1e3))
    return best


def time_hf(tokenizer, corpus, repetitions):
    """Best wall and CPU seconds of encode (one string at a time) and wall of encode_batch."""
    tokenizer.encode_batch(corpus)  # warm the BPE cache, as the C++ side is warm
    single = single_cpu = batch = float("inf")
    for _ in range(repetitions):
        start, start_cpu = time.perf_counter(), time.process_time()
        for text in corpus:
            tokenizer.encode(text)
        single = min(single, time.perf_counter() - start)
        single_cpu = min(single_cpu, time.process_time() - start_cpu)
        start = time.perf_counter()
        tokenizer.encode_batch(corpus)
        batch = min(batch, time.perf_counter() - start)
    return single, single_cpu, batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", help="tokenizer_benchmark binary (default: bazel build it)")
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--tokenizers", default=os.path.join(
        os.environ.get("SPATIALID_ASSETS", ""), "tokenizers"))
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()

    from tokenizers import Tokenizer  # the venv's tokenizers (pinned in third_party/PINS)
    import tokenizers

    binary = args.binary
    if binary is None:
        subprocess.run(["bazel", "build", "//benchmarks:tokenizer_benchmark"], check=True)
        binary = "bazel-bin/benchmarks/tokenizer_benchmark"
    corpus = load_corpus(args.corpus)
    cpp = run_cpp(binary, args.corpus, args.tokenizers, args.repetitions)

    print(f"corpus: {len(corpus)} strings, {sum(len(s.encode()) for s in corpus)} bytes; "
          f"HF tokenizers {tokenizers.__version__}; {os.cpu_count()} CPUs; "
          f"best of {args.repetitions}")
    print("strings/second; 'wall' = elapsed time, 'cpu' = CPU time of the encoding thread "
          "(steadier on a busy machine)")
    print(f"{'tokenizer':<9} {'C++ 1 thr':>10} {'HF encode':>10} {'wall':>6} {'cpu':>6}   "
          f"{'C++ 2 thr':>10} {'HF batch':>10} {'wall':>6}")
    ratios = {"wall": [], "cpu": [], "batch": []}
    for name in NAMES:
        hf = Tokenizer.from_file(os.path.join(args.tokenizers, name, "tokenizer.json"))
        single, single_cpu, batch = time_hf(hf, corpus, args.repetitions)
        n = len(corpus)
        c1 = n / cpp[(name, 1)][0]
        c1_cpu = n / cpp[(name, 1)][1]
        # With two threads each encodes the whole corpus per iteration.
        c2 = 2 * n / cpp[(name, 2)][0]
        h1, h1_cpu, hb = n / single, n / single_cpu, n / batch
        ratios["wall"].append(c1 / h1)
        ratios["cpu"].append(c1_cpu / h1_cpu)
        ratios["batch"].append(c2 / hb)
        print(f"{name:<9} {c1:>10,.0f} {h1:>10,.0f} {c1 / h1:>5.2f}x {c1_cpu / h1_cpu:>5.2f}x   "
              f"{c2:>10,.0f} {hb:>10,.0f} {c2 / hb:>5.2f}x")
    geo = {k: math.prod(v) ** (1 / len(v)) for k, v in ratios.items()}
    print(f"geometric mean: {geo['wall']:.2f}x (wall) / {geo['cpu']:.2f}x (cpu) vs HF encode, "
          f"{geo['batch']:.2f}x vs HF encode_batch")


if __name__ == "__main__":
    main()
