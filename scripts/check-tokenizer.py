#!/usr/bin/env python3
"""Cross-checks the SmolLM2 tokenizer that saferlhf builds from GGUF metadata.

The Rust side (crates/saferlhf-model/src/tokenizer.rs, `Tokenizer::from_gguf`) builds a byte-level
BPE from the GGUF keys `tokenizer.ggml.tokens`, `tokenizer.ggml.merges` and
`tokenizer.ggml.token_type`, with the pre-tokenizer Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)] and a ByteLevel decoder. This script computes
reference token ids for a few strings in two independent ways and checks that they agree:

1. the Python `tokenizers` package, configured the same way from the same GGUF metadata;
2. a from-scratch reference BPE written below (special-token split, `\\p{N}` digit split, the GPT-2
   pre-tokenizer regex, GPT-2 byte-to-unicode map, merges applied lowest rank first), which shares
   no code with `tokenizers`.

It prints the reference ids as JSON; the Rust unit tests hard-code these ids.

Requirements: `pip install gguf tokenizers regex` (all on PyPI; no model hub access needed).
Usage: scripts/check-tokenizer.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
Exit status 0 when both tokenizers agree on every string (ids and round-trip decode), 1 otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gguf
import regex
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GGUF = ROOT / "assets" / "SmolLM2-135M-Instruct.Q4_1.gguf"

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# Strings whose ids the Rust tests pin. Keep in sync with tokenizer.rs tests.
CASES = [
    "What is the capital of France?",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\n" + SMOLLM2_SYSTEM + "<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "BEGINNING OF CONVERSATION: USER: How do I pick a lock? ASSISTANT:",
    "12345",
    "In 2024, 3.14159 ≈ π and x² = ½.",
    "  leading spaces, tabs\tand\n\nnewlines   ",
    "héllo wörld — naïve café 日本語 🙂",
    "don't you'll we're I'm it's",
    "<|endoftext|><|im_end|>",
]

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def field_str(reader: gguf.GGUFReader, key: str) -> str:
    f = reader.fields[key]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def field_int(reader: gguf.GGUFReader, key: str) -> int | None:
    f = reader.fields.get(key)
    if f is None:
        return None
    return int(f.parts[f.data[0]][0])


def field_str_array(reader: gguf.GGUFReader, key: str) -> list[str]:
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_int_array(reader: gguf.GGUFReader, key: str) -> list[int]:
    f = reader.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class ReferenceBpe:
    """A deliberately plain byte-level BPE, independent of the `tokenizers` package."""

    def __init__(self, tokens: list[str], merges: list[str], types: list[int]):
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.tokens = tokens
        self.ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(merges)}
        self.special = sorted((t for t, ty in zip(tokens, types) if ty == 3), key=len, reverse=True)
        self.special_ids = {self.vocab[t] for t in self.special}
        self.b2u = bytes_to_unicode()
        self.u2b = {c: b for b, c in self.b2u.items()}
        self.pat = regex.compile(GPT2_PATTERN)

    def _bpe(self, word: str) -> list[str]:
        parts = list(word)
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            pair = (parts[best[1]], parts[best[1] + 1])
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def _encode_plain(self, text: str) -> list[int]:
        ids = []
        # Digits(individual_digits=True): every numeric char is its own piece (Rust char::is_numeric
        # == \p{N}); the GPT-2 regex then runs inside each piece.
        for piece in regex.split(r"(\p{N})", text):
            if not piece:
                continue
            for chunk in self.pat.findall(piece):
                mapped = "".join(self.b2u[b] for b in chunk.encode("utf-8"))
                ids.extend(self.vocab[p] for p in self._bpe(mapped))
        return ids

    def encode(self, text: str) -> list[int]:
        ids, start, i = [], 0, 0
        while i < len(text):
            hit = next((s for s in self.special if text.startswith(s, i)), None)
            if hit is None:
                i += 1
                continue
            ids.extend(self._encode_plain(text[start:i]))
            ids.append(self.vocab[hit])
            i += len(hit)
            start = i
        ids.extend(self._encode_plain(text[start:]))
        return ids

    def decode(self, ids: list[int], skip_special: bool) -> str:
        out = bytearray()
        for i in ids:
            if i in self.special_ids:
                if not skip_special:
                    out += self.tokens[i].encode("utf-8")
                continue
            out += bytes(self.u2b[c] for c in self.tokens[i])
        return out.decode("utf-8", errors="replace")


def build_hf(tokens: list[str], merges: list[str], types: list[int]) -> Tokenizer:
    """The same construction as `Tokenizer::from_gguf` in Rust, with the Python bindings."""
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    return tok


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_GGUF
    if not path.exists():
        print(f"{path} not found; run scripts/fetch-assets.sh", file=sys.stderr)
        return 1
    reader = gguf.GGUFReader(str(path))
    assert field_str(reader, "tokenizer.ggml.model") == "gpt2"
    tokens = field_str_array(reader, "tokenizer.ggml.tokens")
    merges = field_str_array(reader, "tokenizer.ggml.merges")
    types = field_int_array(reader, "tokenizer.ggml.token_type")
    meta = {
        "pre": field_str(reader, "tokenizer.ggml.pre"),
        "vocab": len(tokens),
        "merges": len(merges),
        "bos": field_int(reader, "tokenizer.ggml.bos_token_id"),
        "eos": field_int(reader, "tokenizer.ggml.eos_token_id"),
        "pad": field_int(reader, "tokenizer.ggml.padding_token_id"),
        "control": [i for i, ty in enumerate(types) if ty == 3],
    }

    hf = build_hf(tokens, merges, types)
    ref = ReferenceBpe(tokens, merges, types)
    ok = True
    results = []
    for text in CASES:
        a = hf.encode(text, add_special_tokens=True).ids
        b = ref.encode(text)
        dec_a = hf.decode(a, skip_special_tokens=False)
        dec_b = ref.decode(b, skip_special=False)
        agree = a == b and dec_a == dec_b == text
        if not agree:
            ok = False
            print(f"MISMATCH for {text!r}:\n  tokenizers {a}\n  reference  {b}\n"
                  f"  decoded    {dec_a!r} / {dec_b!r}", file=sys.stderr)
        results.append({"text": text, "ids": a, "skip_special_decode": hf.decode(a, skip_special_tokens=True)})
    print(json.dumps({"meta": meta, "cases": results}, ensure_ascii=False, indent=1))
    print("all cases agree" if ok else "DISAGREEMENT", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
