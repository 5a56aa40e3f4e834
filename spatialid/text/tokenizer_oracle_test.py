"""spatialid's tokenizer against HF `tokenizers` on the four real tokenizer files.

For each of llama2, llama3, qwen3 and gemma3 (tokenizer.json from the npm
packages tools/setup.sh fetches) and for every string of
testdata/tokenizer/corpus.jsonl (>= 2,000: pipeline prompts, chat prompts
with special tokens, many scripts, emoji, whitespace, numbers, combining
marks, random Unicode), the C++ ids must equal HF's with and without
special tokens, and the decoded text must equal HF's decode with and
without skip_special_tokens. Random id sequences check decoding alone;
tokens added at run time (as processors add `<image>`) check the added-token
flags; the target token of every word checks the reference rule
(`tokenizer.tokenize(" " + word)[-1]` in transformers); and the
`//examples:tokenize` tool is driven end to end. Each case prints its
figures (strings compared, mismatches).
"""
import json
import os
import random
import subprocess
import sys
import unicodedata
import unittest

# run_py_test.py puts only this file's folder on sys.path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "python"))
import oracle_lib  # noqa: E402
from tokenizers import AddedToken, Tokenizer  # noqa: E402

NAMES = ["llama2", "llama3", "qwen3", "gemma3"]
MIN_CORPUS = 2000

# Tokens processors add at run time: LLaVA's <image>/<pad>, InternVL's
# <img>/</img>/<IMG_CONTEXT>, plus tokens exercising every AddedToken flag.
EXTRA_TOKENS = [
    {"content": "<image>", "special": True, "normalized": False},
    {"content": "<pad>", "special": True, "normalized": False},
    {"content": "<img>", "special": True, "normalized": False},
    {"content": "</img>", "special": True, "normalized": False},
    {"content": "<IMG_CONTEXT>", "special": True, "normalized": False},
    {"content": "<left_mask>", "special": True, "normalized": False, "lstrip": True},
    {"content": "<right_mask>", "special": True, "normalized": False, "rstrip": True},
    {"content": "<both_mask>", "special": False, "normalized": False, "lstrip": True,
     "rstrip": True},
    {"content": "frogword", "special": False, "normalized": False, "single_word": True},
    {"content": "camel hump", "special": False, "normalized": True},
    {"content": "Ünïcödé", "special": False, "normalized": True},
    {"content": "frog", "special": False, "normalized": True, "single_word": True},
]
EXTRA_STRINGS = [
    "USER: <image>\nIs the frog to the left or right of the camel? ASSISTANT:",
    "<img><IMG_CONTEXT><IMG_CONTEXT></img>\nIs the dog left?",
    "a   <left_mask>   b", "a   <right_mask>   b", "x  <both_mask>  y", "<left_mask>",
    "  <right_mask>", "<both_mask><both_mask>", "frogword", "a frogword b", "afrogword",
    "frogwordy", "_frogword", "frogword!", "the camel hump is big", "camel  hump", "Ünïcödé",
    "U\u0308n\u0131\u0308co\u0308de\u0301", "a frog", "frogs", "the frog's", "frog-like", "(frog)",
    "froggy frog", "<pad><image><pad>", " <image> ", "<image>\n<image>",
]


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def testdata(name):
    return oracle_lib.runfile(f"spatialid/text/testdata/tokenizer/{name}")


def run_driver(tokenizer_json, mode, items, add_tokens=None, pretrained_dir=None):
    tmp = oracle_lib.tmpdir()
    os.makedirs(tmp, exist_ok=True)
    inp = os.path.join(tmp, f"driver_{mode}_{os.getpid()}.jsonl")
    with open(inp, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item) + "\n")
    source = (f"--pretrained_dir={pretrained_dir}" if pretrained_dir else
              f"--tokenizer={tokenizer_json}")
    args = [oracle_lib.runfile("spatialid/text/tokenizer_oracle_driver"), source,
            f"--mode={mode}", f"--input={inp}"]
    if add_tokens is not None:
        extra = os.path.join(tmp, f"extra_tokens_{os.getpid()}.json")
        with open(extra, "w", encoding="utf-8") as f:
            json.dump(add_tokens, f)
        args.append(f"--add_tokens={extra}")
    proc = oracle_lib.run(args)
    # Not splitlines(): decoded text may hold U+2028 and other line breaks.
    out = [json.loads(line) for line in proc.stdout.split("\n") if line]
    if len(out) != len(items):
        raise AssertionError(f"driver printed {len(out)} results for {len(items)} inputs")
    return out


def hf_added_token(spec):
    return AddedToken(spec["content"], single_word=spec.get("single_word", False),
                      lstrip=spec.get("lstrip", False), rstrip=spec.get("rstrip", False),
                      normalized=spec.get("normalized", not spec.get("special", False)),
                      special=spec.get("special", False))


class TokenizerOracleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.corpus = load_jsonl(testdata("corpus.jsonl"))
        cls.targets = load_jsonl(testdata("targets.jsonl"))

    def tokenizer_json(self, name):
        return os.path.join(oracle_lib.tokenizer_dir(name), "tokenizer.json")

    def compare_encodings(self, name, hf, texts, ours):
        mismatches = []
        for text, got in zip(texts, ours):
            special = hf.encode(text, add_special_tokens=True).ids
            plain = hf.encode(text, add_special_tokens=False).ids
            want = {"special": special, "plain": plain,
                    "decoded": hf.decode(special, skip_special_tokens=False),
                    "decoded_skip": hf.decode(special, skip_special_tokens=True)}
            for key, value in want.items():
                if got[key] != value:
                    mismatches.append((key, text, got[key], value))
        return mismatches

    def report(self, what, count, mismatches):
        print(f"{what}: {count} compared, {len(mismatches)} mismatches", flush=True)
        detail = "\n".join(f"  {key} for {text!r}:\n    ours {got!r}\n    hf   {want!r}"
                           for key, text, got, want in mismatches[:5])
        self.assertEqual(len(mismatches), 0, f"{what}: first mismatches:\n{detail}")

    def check_corpus(self, name):
        self.assertGreaterEqual(len(self.corpus), MIN_CORPUS)
        path = self.tokenizer_json(name)
        hf = Tokenizer.from_file(path)
        ours = run_driver(path, "encode", self.corpus)
        mismatches = self.compare_encodings(name, hf, self.corpus, ours)
        self.report(f"{name} corpus (ids with/without special tokens, decode, decode skip)",
                    len(self.corpus), mismatches)

    def check_added_tokens(self, name):
        path = self.tokenizer_json(name)
        hf = Tokenizer.from_file(path)
        hf.add_tokens([hf_added_token(t) for t in EXTRA_TOKENS])
        texts = EXTRA_STRINGS + self.corpus[:300]
        ours = run_driver(path, "encode", texts, add_tokens=EXTRA_TOKENS)
        mismatches = self.compare_encodings(name, hf, texts, ours)
        self.report(f"{name} with {len(EXTRA_TOKENS)} added tokens", len(texts), mismatches)
        # The added ids themselves, as HF numbers them.
        ids = [hf.token_to_id(t["content"]) for t in EXTRA_TOKENS]
        self.assertNotIn(None, ids)

    def check_decode(self, name):
        path = self.tokenizer_json(name)
        hf = Tokenizer.from_file(path)
        size = hf.get_vocab_size(with_added_tokens=True)
        byte_ids = [hf.token_to_id(f"<0x{b:02X}>") for b in range(256)]
        byte_ids = [i for i in byte_ids if i is not None]
        special_ids = sorted(hf.get_added_tokens_decoder().keys())[:50]
        rng = random.Random(7)
        sequences = []
        for _ in range(600):
            n = rng.randint(1, 24)
            seq = []
            for _ in range(n):
                pool = rng.random()
                if pool < 0.25 and byte_ids:
                    seq.append(rng.choice(byte_ids))
                elif pool < 0.35:
                    seq.append(rng.choice(special_ids))
                elif pool < 0.37:
                    seq.append(size + rng.randint(0, 1000))  # unknown ids are skipped
                else:
                    seq.append(rng.randrange(size))
            sequences.append(seq)
        ours = run_driver(path, "decode", sequences)
        mismatches = []
        for seq, got in zip(sequences, ours):
            for key, skip in (("decoded", False), ("decoded_skip", True)):
                want = hf.decode(seq, skip_special_tokens=skip)
                if got[key] != want:
                    mismatches.append((key, seq, got[key], want))
        self.report(f"{name} decode of random id sequences", len(sequences), mismatches)

    def check_targets(self, name):
        from transformers import AutoTokenizer
        path = self.tokenizer_json(name)
        folder = oracle_lib.tokenizer_dir(name)
        hf = Tokenizer.from_file(path)
        auto = AutoTokenizer.from_pretrained(folder)
        mismatches = []
        # tokenizer.json as written vs HF tokenizers.
        for word, got in zip(self.targets, run_driver(path, "target", self.targets)):
            enc = hf.encode(" " + word, add_special_tokens=False)
            want = (enc.tokens[-1], enc.ids[-1])
            if (got["token"], got["id"]) != want:
                mismatches.append(("tokenizers", word, (got["token"], got["id"]), want))
        # The folder as transformers loads it vs the reference's own rule,
        # tokenizer.tokenize(" " + word)[-1].
        for word, got in zip(self.targets, run_driver(None, "target", self.targets,
                                                      pretrained_dir=folder)):
            token = auto.tokenize(" " + word)[-1]
            want = (token, auto.convert_tokens_to_ids(token))
            if (got["token"], got["id"]) != want:
                mismatches.append(("transformers", word, (got["token"], got["id"]), want))
        self.report(f"{name} target tokens (last sub-token of ' ' + word), tokenizers and "
                    "transformers rules", 2 * len(self.targets), mismatches)

    def check_transformers(self, name):
        """The folder loaded like AutoTokenizer gives AutoTokenizer's ids."""
        from transformers import AutoTokenizer
        folder = oracle_lib.tokenizer_dir(name)
        auto = AutoTokenizer.from_pretrained(folder)
        ours = run_driver(None, "encode", self.corpus, pretrained_dir=folder)
        mismatches = []
        for text, got in zip(self.corpus, ours):
            for key, special in (("special", True), ("plain", False)):
                want = auto(text, add_special_tokens=special)["input_ids"]
                if got[key] != want:
                    mismatches.append((key, text, got[key], want))
        self.report(f"{name} corpus vs transformers AutoTokenizer (ids with/without special "
                    "tokens)", len(self.corpus), mismatches)


    def test_model_type_decides_the_class(self):
        """config.json's model_type can make AutoTokenizer ignore tokenizer_config's class.

        transformers maps "llava" to the generic TokenizersBackend, so a LLaVA
        checkpoint's tokenizer.json runs as written even though its config says
        LlamaTokenizer; ours must follow, or the text after <image> tokenizes
        differently from the reference's processor.
        """
        import shutil
        from transformers import AutoTokenizer
        # Special tokens of each vocabulary followed by text, as <image> is in a prompt.
        prompts = [f"USER: {special}\nIs the frog to the left or right of the camel? ASSISTANT:"
                   for special in ("<s>", "</s>", "<|im_start|>", "<start_of_turn>",
                                   "<|begin_of_text|>")] + [" x", "a\n\n b"]
        texts = prompts + self.corpus[:400]
        # llava-hf/llava-1.5-7b-hf's tokenizer_config.json says "legacy": false,
        # which LlamaTokenizer would honour (no ▁ after a special token) and
        # TokenizersBackend ignores.
        for name, model_type, legacy in (("llama2", "llava", False), ("llama2", "llava", None),
                                         ("llama2", "mllama", False), ("llama3", "mllama", None),
                                         ("qwen3", "qwen2_vl", None), ("qwen3", "internvl", None),
                                         ("gemma3", "gemma3", None)):
            folder = os.path.join(oracle_lib.tmpdir(), f"tok_{name}_{model_type}_{legacy}")
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(oracle_lib.tokenizer_dir(name), folder)
            if legacy is not None:
                with open(os.path.join(folder, "tokenizer_config.json")) as f:
                    config = json.load(f)
                config["legacy"] = legacy
                with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
                    json.dump(config, f)
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump({"model_type": model_type}, f)
            auto = AutoTokenizer.from_pretrained(folder)
            ours = run_driver(None, "encode", texts, pretrained_dir=folder)
            mismatches = []
            for text, got in zip(texts, ours):
                want = auto(text, add_special_tokens=True)["input_ids"]
                if got["special"] != want:
                    mismatches.append(("special", text, got["special"], want))
            self.report(f"{name} (legacy={legacy}) as a {model_type} checkpoint "
                        f"({type(auto).__name__}) vs "
                        "AutoTokenizer", len(texts), mismatches)


def add_cases(name):
    setattr(TokenizerOracleTest, f"test_corpus_{name}", lambda self: self.check_corpus(name))
    setattr(TokenizerOracleTest, f"test_added_tokens_{name}",
            lambda self: self.check_added_tokens(name))
    setattr(TokenizerOracleTest, f"test_decode_{name}", lambda self: self.check_decode(name))
    setattr(TokenizerOracleTest, f"test_targets_{name}", lambda self: self.check_targets(name))
    setattr(TokenizerOracleTest, f"test_transformers_{name}",
            lambda self: self.check_transformers(name))


for _name in NAMES:
    add_cases(_name)


def metaspace(scheme, split=True):
    return {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}


def split(regex, behavior, invert):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": behavior, "invert": invert}


def sequence(kind, items):
    key = {"normalizer": "normalizers", "pre_tokenizer": "pretokenizers",
           "decoder": "decoders", "post_processor": "processors"}[kind]
    return {"type": "Sequence", key: items}


SPM_DECODER = sequence("decoder", [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}])

# Components the four real files do not use, swapped into the Llama 2 file
# (its byte fallback makes every string encodable) or the Qwen file
# (byte-level): each variant is checked against HF on the same JSON.
LLAMA2_VARIANTS = {
    "metaspace_first": {"normalizer": None, "pre_tokenizer": metaspace("first"),
                        "decoder": metaspace("first")},
    "metaspace_always_unsplit": {"normalizer": None, "pre_tokenizer": metaspace("always", False),
                                 "decoder": SPM_DECODER},
    "metaspace_never": {"normalizer": None, "pre_tokenizer": metaspace("never"),
                        "decoder": metaspace("never")},
    "nfkc_lowercase_strip": {
        "normalizer": sequence("normalizer", [{"type": "NFKC"}, {"type": "Lowercase"},
                                              {"type": "Strip", "strip_left": True,
                                               "strip_right": True}]),
        "pre_tokenizer": sequence("pre_tokenizer", [{"type": "WhitespaceSplit"},
                                                    metaspace("always")])},
    "nfd_strip_accents_whitespace": {
        "normalizer": sequence("normalizer", [
            {"type": "NFD"}, {"type": "StripAccents"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Strip", "strip_left": False, "strip_right": True}]),
        "pre_tokenizer": sequence("pre_tokenizer", [{"type": "Whitespace"}, metaspace("always")])},
    "nfkd_digits_punctuation": {
        "normalizer": {"type": "NFKD"},
        "pre_tokenizer": sequence("pre_tokenizer", [
            {"type": "Punctuation", "behavior": "Contiguous"},
            {"type": "Digits", "individual_digits": True}, metaspace("first")])},
    "digits_grouped_punctuation_isolated": {
        "normalizer": None,
        "pre_tokenizer": sequence("pre_tokenizer", [
            {"type": "Digits", "individual_digits": False}, {"type": "Punctuation"},
            metaspace("always")])},
    "bert_post_processor": {"post_processor": {"type": "BertProcessing", "sep": ["</s>", 2],
                                               "cls": ["<s>", 1]}},
    "roberta_post_processor": {"post_processor": {
        "type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1],
        "trim_offsets": True, "add_prefix_space": True}},
    "template_bos_eos_in_sequence": {"post_processor": sequence("post_processor", [
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
         "use_regex": False},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                            "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}])},
    "no_fuse_unk_no_byte_fallback": {"model": {"fuse_unk": False, "byte_fallback": False}},
}
for _behavior in ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]:
    for _invert in (False, True):
        LLAMA2_VARIANTS[f"split_{_behavior}_{'inverted' if _invert else 'plain'}"] = {
            "normalizer": None,
            "pre_tokenizer": sequence("pre_tokenizer", [
                split("\\s+|\\d|(?=[A-Z])", _behavior, _invert), metaspace("always")])}

QWEN_VARIANTS = {
    "byte_level_gpt2_regex_prefix_space": {
        "normalizer": {"type": "NFKC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                          "use_regex": True}},
    "byte_level_nfd_lowercase": {
        "normalizer": sequence("normalizer", [{"type": "NFD"}, {"type": "Lowercase"}])},
    "byte_level_normalizer_no_regex": {
        "normalizer": sequence("normalizer", [
            {"type": "Replace", "pattern": {"String": "\r\n"}, "content": "\n"},
            {"type": "Prepend", "prepend": "> "}]),
        "pre_tokenizer": sequence("pre_tokenizer", [
            split("\\p{N}{1,3}", "Isolated", False),
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
             "use_regex": False}])},
}


class ComponentOracleTest(unittest.TestCase):
    """Every implemented component, including those the four files do not use,
    against HF on tokenizer.json variants written at test time."""

    @classmethod
    def setUpClass(cls):
        corpus = load_jsonl(testdata("corpus.jsonl"))
        # Short strings of every kind, a few hundred per variant keeps it fast.
        # The Unicode data differ between the libraries: the Rust `regex`
        # crate behind HF's Whitespace pre-tokenizer knows Unicode 16, HF's
        # normalisation tables (unicode-normalization-alignments) predate
        # some Unicode 13 compatibility mappings (U+AB69), the system
        # Oniguruma and utf8proc know Unicode 15. Strings with a character
        # unassigned in Unicode 14 (Python's unicodedata) or one HF's
        # normalisation tables treat differently from Unicode 14 would test
        # those versions, not the components, so they are left out here.
        # The corpus cases above keep every string.
        from tokenizers import normalizers as hf_normalizers
        forms = {"NFC": hf_normalizers.NFC(), "NFD": hf_normalizers.NFD(),
                 "NFKC": hf_normalizers.NFKC(), "NFKD": hf_normalizers.NFKD()}

        def same_unicode_data(text):
            return (all(unicodedata.category(c) != "Cn" for c in text) and
                    all(n.normalize_str(text) == unicodedata.normalize(f, text)
                        for f, n in forms.items()))
        short = [t for t in corpus if len(t) < 400][::4]
        cls.texts = [t for t in short if same_unicode_data(t)] + EXTRA_STRINGS
        print(f"component variants: {len(cls.texts)} strings ({len(short) - len(cls.texts) + len(EXTRA_STRINGS)} "
              "left out for Unicode-version differences)")

    def run_variants(self, base, variants):
        with open(os.path.join(oracle_lib.tokenizer_dir(base), "tokenizer.json"),
                  encoding="utf-8") as f:
            base_json = json.load(f)
        total, mismatches = 0, []
        for label, patch in variants.items():
            variant = json.loads(json.dumps(base_json))
            for key, value in patch.items():
                if key == "model":
                    variant["model"].update(value)
                else:
                    variant[key] = value
            path = os.path.join(oracle_lib.tmpdir(), f"variant_{label}.json")
            os.makedirs(oracle_lib.tmpdir(), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(variant, f)
            hf = Tokenizer.from_file(path)
            ours = run_driver(path, "encode", self.texts)
            found = TokenizerOracleTest.compare_encodings(self, label, hf, self.texts, ours)
            mismatches += [(f"{label}: {key}", text, got, want) for key, text, got, want in found]
            total += len(self.texts)
        return total, mismatches

    def test_llama2_based_variants(self):
        total, mismatches = self.run_variants("llama2", LLAMA2_VARIANTS)
        TokenizerOracleTest.report(self, f"{len(LLAMA2_VARIANTS)} Llama-2-based component "
                                   "variants", total, mismatches)

    def test_qwen3_based_variants(self):
        total, mismatches = self.run_variants("qwen3", QWEN_VARIANTS)
        TokenizerOracleTest.report(self, f"{len(QWEN_VARIANTS)} Qwen-based byte-level variants",
                                   total, mismatches)

    def test_trained_bpe_with_subword_prefix_and_suffix(self):
        """continuing_subword_prefix, end_of_word_suffix, unk without fusing, a
        WordPiece-style vocabulary: trained by HF itself on a small text."""
        from tokenizers import models, pre_tokenizers, trainers
        tmp = oracle_lib.tmpdir()
        os.makedirs(tmp, exist_ok=True)
        total, mismatches = 0, []
        for fuse in (False, True):
            hf = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##",
                                      end_of_word_suffix="</w>", fuse_unk=fuse))
            hf.pre_tokenizer = pre_tokenizers.Whitespace()
            trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["[UNK]", "[CLS]"],
                                          continuing_subword_prefix="##",
                                          end_of_word_suffix="</w>")
            hf.train_from_iterator(self.texts[:200], trainer)
            path = os.path.join(tmp, f"trained_bpe_fuse_{fuse}.json")
            hf.save(path)
            hf = Tokenizer.from_file(path)
            ours = run_driver(path, "encode", self.texts)
            found = TokenizerOracleTest.compare_encodings(self, "trained", hf, self.texts, ours)
            mismatches += found
            total += len(self.texts)
        TokenizerOracleTest.report(self, "HF-trained BPE with ## prefix and </w> suffix", total,
                                   mismatches)


class TokenizeToolTest(unittest.TestCase):
    """//examples:tokenize prints the ids HF computes, one line per input line."""

    def tool(self):
        return oracle_lib.runfile("examples/tokenize")

    def test_ids_tokens_and_errors(self):
        lines = ["Is the frog to the left or right of the camel?",
                 "<|im_start|>user\tIs dog left?<|im_end|>", "café 🐸  12345", ""]
        for name in NAMES:
            path = os.path.join(oracle_lib.tokenizer_dir(name), "tokenizer.json")
            hf = Tokenizer.from_file(path)
            stdin = "\n".join(lines) + "\n"
            plain = oracle_lib.run([self.tool(), f"--tokenizer={path}"], input=stdin)
            want = [" ".join(map(str, hf.encode(l).ids)) for l in lines]
            self.assertEqual(plain.stdout.split("\n")[:-1], want, name)
            no_special = oracle_lib.run([self.tool(), f"--tokenizer={path}", "--no_special"],
                                        input=stdin)
            want = [" ".join(map(str, hf.encode(l, add_special_tokens=False).ids)) for l in lines]
            self.assertEqual(no_special.stdout.split("\n")[:-1], want, name)
            with_tokens = oracle_lib.run([self.tool(), f"--tokenizer={path}", "--tokens"],
                                         input=lines[0] + "\n")
            enc = hf.encode(lines[0])
            want = " ".join(f"{i}:{t}" for i, t in zip(enc.ids, enc.tokens))
            self.assertEqual(with_tokens.stdout, want + "\n", name)
            decoded = oracle_lib.run([self.tool(), f"--tokenizer={path}", "--decode"],
                                     input=" ".join(map(str, enc.ids)) + "\n")
            self.assertEqual(decoded.stdout, hf.decode(enc.ids, skip_special_tokens=False) + "\n")
        print(f"tokenize tool: {len(NAMES)} tokenizers x {len(lines)} lines match HF")

        help_out = subprocess.run([self.tool(), "--help"], capture_output=True, text=True)
        self.assertIn("--tokenizer", help_out.stdout + help_out.stderr)
        self.assertIn("--no_special", help_out.stdout + help_out.stderr)

        missing = subprocess.run([self.tool(), "--tokenizer=/nonexistent/tokenizer.json"],
                                 input="x\n", capture_output=True, text=True)
        self.assertNotEqual(missing.returncode, 0)
        self.assertEqual(len(missing.stderr.strip().splitlines()), 1, missing.stderr)
        self.assertIn("/nonexistent/tokenizer.json", missing.stderr)

        no_flag = subprocess.run([self.tool()], input="x\n", capture_output=True, text=True)
        self.assertNotEqual(no_flag.returncode, 0)
        self.assertIn("--tokenizer", no_flag.stderr)

        bad = os.path.join(oracle_lib.tmpdir(), "unsupported_tokenizer.json")
        os.makedirs(oracle_lib.tmpdir(), exist_ok=True)
        with open(bad, "w") as f:
            json.dump({"model": {"type": "WordPiece", "vocab": {}}}, f)
        unsupported = subprocess.run([self.tool(), f"--tokenizer={bad}"], input="x\n",
                                     capture_output=True, text=True)
        self.assertNotEqual(unsupported.returncode, 0)
        self.assertIn("WordPiece", unsupported.stderr)
        self.assertIn(bad, unsupported.stderr)


if __name__ == "__main__":
    unittest.main()
