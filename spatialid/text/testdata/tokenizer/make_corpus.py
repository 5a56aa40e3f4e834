"""Writes corpus.jsonl and targets.jsonl, the tokenizer oracle's inputs.

Deterministic (fixed seed, no network); rerun after editing and commit the
outputs. corpus.jsonl holds one JSON string per line: the pipeline's
prompts and object names, chat prompts of every family with their special
tokens, sentences in many scripts, emoji sequences, whitespace runs,
numbers, punctuation, contractions, combining marks (composed and
decomposed), byte-fallback material and random Unicode. targets.jsonl holds
the words whose target token (last sub-token of " " + word) is checked.

    python3 make_corpus.py  # writes next to this file
"""
import json
import os
import random

OBJECTS = ["backpack", "fan", "camel", "frog", "dog", "cake", "log", "robot", "person", "teapot"]
GRID_PROMPT = "Is the frog to the left or right of the camel?"

SCRIPTS = {
    "latin": [
        "Le cœur a ses raisons que la raison ne connaît point.",
        "Über den Wolken muß die Freiheit wohl grenzenlos sein.",
        "¿Dónde está la biblioteca? ¡Qué día tan bonito!",
        "Tiếng Việt có nhiều dấu thanh: à, á, ả, ã, ạ.",
        "Zażółć gęślą jaźń — pójdźże, kiń tę chmurność w głąb flaszy!",
        "Açúcar, pão, coração e ação não são difíceis.",
        "Ærøskøbing ligger på Ærø; smørrebrød er godt.",
        "Þetta er íslenska með ð og þ.",
        "Šťastný žluťoučký kůň úpěl ďábelské ódy.",
        "naïve café résumé façade coöperate piñata",
        "Straße, Maß, Fuß, weiß — ß vs ẞ.",
        "İstanbul'da ılık bir gün; ığdır, şişli, çağ.",
    ],
    "cyrillic": [
        "Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "Лягушка слева или справа от верблюда?",
        "Україна — це ґрунт, їжак, єнот і щастя.",
        "Београд је главни град Србије.",
        "Москва, 2024 год: температура −15 °C.",
    ],
    "greek": [
        "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
        "Η γάτα κάθεται στο τραπέζι· τί κάνεις;",
        "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν.",
    ],
    "arabic": [
        "هل الضفدع على يسار الجمل أم على يمينه؟",
        "مرحبا بالعالم! اللغة العربية جميلة.",
        "الرقم ١٢٣٤٥ مكتوب بالأرقام العربية الشرقية.",
        "بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ",
    ],
    "hebrew": [
        "האם הצפרדע משמאל או מימין לגמל?",
        "שָׁלוֹם עוֹלָם, מה שלומך היום?",
        "עברית נכתבת מימין לשמאל.",
    ],
    "devanagari": [
        "क्या मेंढक ऊँट के बाएँ है या दाएँ?",
        "नमस्ते दुनिया! हिन्दी एक सुंदर भाषा है।",
        "संस्कृतम् जगतः एकतमा अतिप्राचीना भाषा।",
        "१२३४५ हिन्दी अंक हैं।",
    ],
    "thai": [
        "กบอยู่ทางซ้ายหรือขวาของอูฐ",
        "สวัสดีชาวโลก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
        "เด็กๆ กำลังเล่นฟุตบอลที่สนาม",
    ],
    "cjk": [
        "青蛙在骆驼的左边还是右边？",
        "你好，世界！今天天气很好。",
        "蛙はラクダの左にいますか、それとも右にいますか？",
        "日本語のテキスト：ひらがな、カタカナ、漢字。",
        "ｶﾀｶﾅ半角とＡＢＣ全角",
        "𠀀𠀁𠀂 𪚥 𩸽 are rare CJK Extension B characters.",
        "繁體中文：臺灣、香港、澳門。",
    ],
    "korean": [
        "개구리는 낙타의 왼쪽에 있나요, 오른쪽에 있나요?",
        "안녕하세요, 세계! 한국어는 아름답습니다.",
        "ㄱㄴㄷㄹ ㅏㅑㅓㅕ 자모",
    ],
    "other": [
        "ბაყაყი აქლემის მარცხნივ არის თუ მარჯვნივ?",
        "Բարեւ աշխարհ, հայերեն լեզու։",
        "ሰላም ለዓለም፤ አማርኛ።",
        "வணக்கம் உலகம்! தமிழ் மொழி.",
        "হ্যালো বিশ্ব! বাংলা ভাষা।",
        "ສະບາຍດີ ພາສາລາວ",
        "မင်္ဂလာပါ မြန်မာဘာသာ",
        "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ Cherokee",
        "ꦧꦱꦗꦮ Javanese script",
        "𓀀𓀁𓀂 hieroglyphs and 𐌰𐌱𐌲 Gothic",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕗𝕣𝕠𝕘 𝒞𝒶𝓂ℯ𝓁",
    ],
}

EMOJI = [
    "🐸", "🐫", "🐕", "🎂", "🪵", "🤖", "🧍", "🫖", "🎒", "🪭",
    "👍🏻👍🏼👍🏽👍🏾👍🏿", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🏴‍☠️", "🇫🇷🇯🇵🇺🇸",
    "1️⃣2️⃣#️⃣", "❤️‍🔥", "🧑🏿‍🤝‍🧑🏻", "😀😃😄😁😆😅🤣😂", "🙂‍↔️", "🐸🐫 frog camel",
    "The frog 🐸 sits left of the camel 🐫.", "emoji🤖glued🎒together", "☺️ ✌️ ☝️ ✍️",
    "🫠🫡🫢🫣🫤🥹", "⌚⌛⏩⏪", "🐈‍⬛ black cat", "👁️‍🗨️",
]

WHITESPACE = [
    " ", "  ", "   ", "    ", " " * 8, " " * 17, "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n",
    "\r\n\r\n", " \n ", "\t \t", "a  b", "a   b", "a\tb", "a\nb", "a\n\nb", "a \n b",
    "  leading spaces", "trailing spaces  ", "  both  ", "\tTabbed\tline\t",
    "line one\nline two\nline three", "para one\n\npara two", "windows\r\nline\r\nends",
    "mixed \t\n \t\n whitespace", " \u00a0 nbsp \u00a0", "ideographic\u3000space",
    "em\u2003space en\u2002space thin\u2009space", "zero\u200bwidth\u200bspace",
    "\u2028line sep\u2029para sep", "\x0bvertical\x0ctab", "\n" * 20, " " * 40, "\t" * 12,
    "   \n\n   \t  ", "word    \n    word", "a" + " " * 30 + "b",
]

NUMBERS = [
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159", "2.718281828459045", "1,000,000", "1 000 000", "-17", "+44 20 7946 0958",
    "2024-06-01", "12:30:45", "v1.2.3", "0x1F438", "1e-10", "99.9%", "$1,299.99", "€50",
    "The year 1969 and 2001.", "Call 555-0199 now", "room 101, floor 3", "4x4 grid of 16 cells",
    "sizes 74, 124, 174, 224", "896x896 pixels", "١٢٣", "१२३", "一二三", "Ⅻ Ⅳ ⅻ", "½ ¾ ⅓", "²³¹",
    "123abc456def", "a1b2c3", "000000", "9" * 50,
]

PUNCTUATION = [
    "!", "?", ".", "...", "!!!", "?!", "…", "--", "—", "–", "\"quoted\"", "'single'",
    "“curly” ‘quotes’", "«guillemets»", "(parens) [brackets] {braces}", "<angle>", "a/b\\c",
    "foo@bar.com", "https://example.com/path?q=1&r=2#frag", "#hashtag @mention", "C++ and C#",
    "if (x != y) { return x->z; }", "def f(x):\n    return x ** 2\n", "<div class=\"a\">b</div>",
    "x = [1, 2, 3]; y = {'a': 1}", "¡¿‽⁇", "§¶†‡•", "©®™", "→←↑↓⇒", "±×÷≠≤≥∞", "~`^_|",
    "...and then?", "Wait—what?!", "end.", "1.5.", ":-) ;-) :D", "***bold*** __under__",
]

CONTRACTIONS = [
    "it's", "don't", "they're", "I've", "I'm", "we'll", "he'd", "IT'S", "DON'T", "They'RE",
    "I'VE", "You'Ll", "can't won't shouldn't", "the frog's left", "camels' humps", "'s", "'t",
    "'re", "'ve", "'m", "'ll", "'d", "rock 'n' roll", "'tis", "y'all'd've", "o'clock",
    "it’s (curly apostrophe)", "l'homme", "dell'arte",
]

COMBINING = [
    "e\u0301", "\u00e9", "a\u0308", "\u00e4", "A\u030a", "\u212b", "\u00c5", "o\u0302\u0323",
    "o\u0323\u0302", "\u1ecd\u0302", "n\u0303", "\u00f1", "Cafe\u0301", "Caf\u00e9",
    "u\u0308\u0301", "\u01d8", "\u1100\u1161\u11a8", "\uac01", "\u0915\u093c", "\u0958",
    "\ufb01 ligature", "\u2126 ohm", "\u03a9 omega", "x\u0307\u0323", "q\u0307\u0323",
    "\u0041\u0300\u0301\u0302\u0303", "\u0301 leading mark", "e\u0301\u0301\u0301",
    "\u0644\u0627", "\ufefb", "\u1e9b\u0323", "s\u0323\u0307", "\u1e69", "\u00c7\u0301",
    "C\u0327\u0301", "\u1e08", "\u05e9\u05c1\u05b8", "\u0e01\u0e34\u0e48", "\u3099\u304b",
    "\u304b\u3099", "\u304c", "\u1d2c\u1d2e", "\u2460\u2461", "\u00bd", "\u2075",
]

SPECIAL_STRINGS = [
    "<s>", "</s>", "<unk>", "<bos>", "<eos>", "<pad>", "<mask>", "[multimodal]", "<unused0>",
    "<unused42>", "<unused6241>", "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>",
    "<tool_call>", "</tool_call>", "<think>", "</think>", "<|fim_prefix|>",
    "<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>",
    "<end_of_turn>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<|image|>", "<|reserved_special_token_5|>",
    "<image>", "<img>", "</img>", "<IMG_CONTEXT>", "<0x0A>", "<0xFF>", "▁", "Ġ", "Ċ",
    "<s><s>", "</s></s>", " <s> ", "a<s>b", "<s>hello", "hello</s>", "<|im_start|><|im_end|>",
    "<|im_start", "<|im_start|", "|im_start|>", "<<s>>", "<|<|im_end|>|>", "<bos><bos>",
    "<start_of_image><start_of_image>", "text<|image|>text", "<|image|><|image|>",
    "<image><image>", " <image> ", "<unused1><unused2>", "<unused99999>", "<|endoftext|>x",
]


def chat_prompts():
    """Rendered prompts of the five families (one image + text, and text only)."""
    out = []
    questions = [GRID_PROMPT] + [f"Is {b} to the left or right of {a}?"
                                 for a, b in [("camel", "frog"), ("dog", "teapot"), ("fan", "robot")]]
    for q in questions:
        out.append(f"USER: <image>\n{q} ASSISTANT:")
        out.append("USER: " + "<image>" * 576 + f"\n{q} ASSISTANT:")
        out.append(f"<s>USER: <image>\n{q} ASSISTANT:")
        out.append(f"USER: {q} ASSISTANT:")
        out.append(f"<s>[INST] {q} [/INST]")
        out.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                   f"<|vision_start|><|image_pad|><|vision_end|>{q}<|im_end|>\n<|im_start|>assistant\n")
        out.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                   "<|vision_start|>" + "<|image_pad|>" * 1024 + f"<|vision_end|>{q}<|im_end|>\n"
                   "<|im_start|>assistant\n")
        out.append(f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")
        out.append("<|im_start|>user\n<img>" + "<IMG_CONTEXT>" * 256 + f"</img>\n{q}<|im_end|>\n"
                   "<|im_start|>assistant\n")
        out.append(f"<|im_start|>user\n<image>\n{q}<|im_end|>\n<|im_start|>assistant\n")
        out.append("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>"
                   f"{q}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        out.append("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                   f"{q}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        out.append(f"<bos><start_of_turn>user\n<start_of_image>{q}<end_of_turn>\n<start_of_turn>model\n")
        out.append("<bos><start_of_turn>user\n\n\n<start_of_image>" + "<image_soft_token>" * 256 +
                   f"<end_of_image>\n\n{q}<end_of_turn>\n<start_of_turn>model\n")
        out.append(f"<bos><start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n")
    return out


def pipeline_strings():
    out = [GRID_PROMPT, GRID_PROMPT.lower(), GRID_PROMPT.upper(), "left", "right", "frog",
           " frog", " left", " right", " camel", "Frog", " Frog", "LEFT", "Left or right?"]
    for a in OBJECTS:
        for b in OBJECTS:
            if a != b:
                out.append(f"Is {b} to the left or right of {a}?")
    for name in OBJECTS + ["folding fan", "wood", "person standing"]:
        out += [name, " " + name, name.capitalize(), " " + name.capitalize(), name + "s",
                f"the {name}", f"a {name}."]
    return out


def random_unicode(rng, n_strings):
    """Random strings over weighted code point ranges (no surrogates)."""
    ranges = [
        (0x20, 0x7E, 30), (0x00, 0x1F, 2), (0x7F, 0xFF, 6), (0x100, 0x24F, 5), (0x250, 0x2FF, 2),
        (0x300, 0x36F, 4), (0x370, 0x3FF, 3), (0x400, 0x4FF, 4), (0x530, 0x58F, 1),
        (0x590, 0x5FF, 2), (0x600, 0x6FF, 3), (0x900, 0x97F, 3), (0x980, 0xDFF, 3),
        (0xE00, 0xE7F, 2), (0x10A0, 0x10FF, 1), (0x1100, 0x11FF, 1), (0x1E00, 0x1EFF, 2),
        (0x2000, 0x206F, 3), (0x2070, 0x2BFF, 4), (0x3000, 0x30FF, 4), (0x3400, 0x4DBF, 1),
        (0x4E00, 0x9FFF, 6), (0xA000, 0xABFF, 1), (0xAC00, 0xD7A3, 4), (0xE000, 0xF8FF, 1),
        (0xF900, 0xFAFF, 1), (0xFB00, 0xFDFF, 2), (0xFE00, 0xFE6F, 1), (0xFF00, 0xFFFD, 2),
        (0x10000, 0x1FFFF, 3), (0x1F300, 0x1FAFF, 5), (0x20000, 0x2FFFF, 1),
        (0xE0000, 0xE01EF, 1), (0xF0000, 0x10FFFF, 1),
    ]
    weights = [w for _, _, w in ranges]
    out = []
    for _ in range(n_strings):
        length = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55])
        chars = []
        for _ in range(length):
            lo, hi, _ = rng.choices(ranges, weights)[0]
            chars.append(chr(rng.randint(lo, hi)))
        out.append("".join(chars))
    return out


def mixtures(rng, pools, n_strings):
    """Random concatenations of pieces from every category."""
    flat = [s for pool in pools for s in pool]
    glue = ["", " ", "  ", "\n", "\t", " \n", ", ", ". ", "\n\n", "   "]
    out = []
    for _ in range(n_strings):
        k = rng.randint(2, 6)
        parts = [rng.choice(flat) for _ in range(k)]
        s = parts[0]
        for p in parts[1:]:
            s += rng.choice(glue) + p
        out.append(s)
    return out


def long_texts(rng):
    words = ("the quick brown fox jumps over the lazy dog while a frog watches the camel "
             "from the left side of the grid and the robot counts to one hundred").split()
    out = []
    for n in (200, 500, 1000):
        out.append(" ".join(rng.choice(words) for _ in range(n)))
    out.append("a" * 500)
    out.append("ab" * 300)
    out.append("=" * 120)
    out.append("-" * 64 + "\n" + "#" * 64)
    out.append("".join(rng.choice(words) for _ in range(200)))  # one long word (no spaces)
    out.append("\n".join(SCRIPTS["latin"] + SCRIPTS["cjk"] + SCRIPTS["arabic"]))
    out.append(" ".join(EMOJI))
    return out


def main():
    rng = random.Random(20240601)
    script_sentences = [s for group in SCRIPTS.values() for s in group]
    handwritten = (pipeline_strings() + chat_prompts() + script_sentences + EMOJI + WHITESPACE +
                   NUMBERS + PUNCTUATION + CONTRACTIONS + COMBINING + SPECIAL_STRINGS)
    corpus = ["", "a", "A", "Hello, world!", "hello world", "Hello World"] + handwritten
    corpus += [w.upper() for w in script_sentences[:20]]
    corpus += random_unicode(rng, 900)
    corpus += mixtures(rng, [script_sentences, EMOJI, WHITESPACE, NUMBERS, PUNCTUATION,
                             CONTRACTIONS, COMBINING, SPECIAL_STRINGS, pipeline_strings()], 900)
    corpus += long_texts(rng)

    targets = OBJECTS + ["left", "right", "above", "below", "top", "bottom", "front", "behind",
                         "folding fan", "person standing", "wood", "Frog", "CAMEL", "teapots",
                         "frog?", "x", "", "123", "naïve", "café", "лягушка", "青蛙", "개구리",
                         "🐸", "it's", "<image>", "<s>", "don't", "  spaced", "tab\there"]
    targets += sorted({w.strip(".,?!;:") for s in script_sentences[:15] for w in s.split()} - {""})

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for s in corpus:
            f.write(json.dumps(s) + "\n")
    with open(os.path.join(here, "targets.jsonl"), "w", encoding="utf-8") as f:
        for s in targets:
            f.write(json.dumps(s) + "\n")
    print(f"{len(corpus)} corpus strings, {len(targets)} target words")


if __name__ == "__main__":
    main()
