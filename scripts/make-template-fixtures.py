#!/usr/bin/env python3
"""Render the chat templates of assets/chat-templates/ with transformers, for tests/it/chat_templates.rs.

The templates (real Hugging Face models' ``chat_template``, fetched by ``scripts/fetch-assets.sh``
from llama.cpp's copy in the llama-cpp-python sdist) are rendered with transformers' own renderer
(``transformers.utils.chat_template_utils.render_jinja_template``, Jinja2 in a sandbox) for a few
conversations, and the results written to ``tests/fixtures/chat-templates.json``::

    {"meta": {...},
     "templates": {"<file>": {"sha256": str, "bos_token": str, "eos_token": str}},
     "cases": [{"template": "<file>", "messages": [{"role", "content"}], "add_generation_prompt": bool,
                "extra": {...}, "rendered": str | null, "error": str | null}]}

``rendered`` is null and ``error`` holds transformers' message when the template refuses the
conversation (Gemma 2 has no system role); saferlhf must then fail too. Every case passes
``date_string`` so that the Llama 3.x templates do not read the clock.

Run with the venv of ``scripts/requirements-fixtures.txt`` after ``scripts/fetch-assets.sh``::

    /tmp/hf-fixtures-venv/bin/python scripts/make-template-fixtures.py
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "assets" / "chat-templates"
OUT = ROOT / "tests" / "fixtures" / "chat-templates.json"

# The special-token texts each model's tokenizer_config.json gives (bos, eos).
TOKENS = {
    "Qwen-Qwen2.5-7B-Instruct.jinja": ("", "<|im_end|>"),
    "Qwen-Qwen3-0.6B.jinja": ("", "<|im_end|>"),
    "meta-llama-Llama-3.1-8B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.2-3B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.3-70B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "HuggingFaceTB-SmolLM3-3B.jinja": ("", "<|im_end|>"),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "google-gemma-2-2b-it.jinja": ("<bos>", "<eos>"),
    "microsoft-Phi-3.5-mini-instruct.jinja": ("<s>", "<|endoftext|>"),
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": ("<s>", "</s>"),
}

DATE = {"date_string": "06 Dec 2026"}
CONVERSATIONS = [
    ([{"role": "user", "content": "How do I bake bread?"}], True, DATE),
    (
        [
            {"role": "system", "content": "You answer in one sentence."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "  What is 2+2?\n"},
        ],
        True,
        DATE,
    ),
    (
        [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
        ],
        False,
        DATE,
    ),
    ([{"role": "user", "content": "Say \"ok\" & stop <now>."}], True, dict(DATE, enable_thinking=False)),
]


def main():
    templates, cases = {}, []
    for name, (bos, eos) in TOKENS.items():
        source = (TEMPLATES / name).read_text()
        templates[name] = {
            "sha256": hashlib.sha256(source.encode()).hexdigest(),
            "bos_token": bos,
            "eos_token": eos,
        }
        for messages, add_generation_prompt, extra in CONVERSATIONS:
            case = {
                "template": name,
                "messages": messages,
                "add_generation_prompt": add_generation_prompt,
                "extra": extra,
                "rendered": None,
                "error": None,
            }
            try:
                rendered, _ = render_jinja_template(
                    conversations=[messages],
                    chat_template=source,
                    add_generation_prompt=add_generation_prompt,
                    bos_token=bos,
                    eos_token=eos,
                    **extra,
                )
                case["rendered"] = rendered[0]
            except jinja2.exceptions.TemplateError as e:
                case["error"] = str(e)
            cases.append(case)
            status = "error: " + case["error"] if case["error"] else f"{len(case['rendered'])} chars"
            print(f"{name} ({len(messages)} messages, generation prompt {add_generation_prompt}): {status}")
    out = {
        "meta": {
            "transformers": transformers.__version__,
            "jinja2": jinja2.__version__,
            "python": platform.python_version(),
            "renderer": "transformers.utils.chat_template_utils.render_jinja_template",
            "script": "scripts/make-template-fixtures.py",
        },
        "templates": templates,
        "cases": cases,
    }
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
