#!/usr/bin/env python3
"""Writes the prompt files of configs/{ppo,ppo-lag,repo}.toml (standard library only).

* data/hh-harmless-prompts.jsonl: the first human turn of each Anthropic HH-RLHF harmless-base
  test dialogue (2,312; red-teaming questions, some harmless, many not), as {"prompt": ...}.
  Read from ../shared/data/hh-rlhf-harmless/ (not part of the project; pass --hh to point
  elsewhere).
* data/advbench.txt: AdvBench's 520 harmful instructions, one per line, from the PyRIT 1.1.0
  wheel that scripts/fetch-assets.sh downloads into assets/wheels/.

Usage: python3 scripts/make-rl-prompts.py [--hh PATH] [--wheel PATH] [--out DIR]
Files are written under a temporary name and renamed when complete.
"""

import argparse
import gzip
import json
import os
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADVBENCH_MEMBER = "pyrit/datasets/seed_datasets/local/adv_bench.prompt"


def hh_prompts(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            chosen = json.loads(line)["chosen"]
            first = chosen.split("\n\nAssistant:")[0].split("Human:", 1)[-1].strip()
            if first:
                yield first


def advbench_prompts(wheel):
    """The `- value:` entries of the YAML seed file, with folded continuation lines joined."""
    text = zipfile.ZipFile(wheel).read(ADVBENCH_MEMBER).decode("utf-8")
    current = None
    for line in text.splitlines():
        if line.startswith("- value: "):
            if current is not None:
                yield current
            current = line[len("- value: "):].strip()
        elif current is not None and line.startswith("    ") and ":" not in line.split()[0]:
            current += " " + line.strip()
        elif current is not None and not line.startswith("    "):
            yield current
            current = None
    if current is not None:
        yield current


def write(path, lines):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        n = 0
        for line in lines:
            f.write(line + "\n")
            n += 1
    os.replace(tmp, path)
    print(f"make-rl-prompts: {n} prompts -> {os.path.relpath(path, ROOT)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hh", default=os.path.join(
        ROOT, "..", "shared", "data", "hh-rlhf-harmless", "harmless-base-test.jsonl.gz"))
    ap.add_argument("--wheel", default=os.path.join(
        ROOT, "assets", "wheels", "pyrit-1.1.0-py3-none-any.whl"))
    ap.add_argument("--out", default=os.path.join(ROOT, "data"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write(os.path.join(args.out, "hh-harmless-prompts.jsonl"),
          (json.dumps({"prompt": p}) for p in hh_prompts(args.hh)))
    write(os.path.join(args.out, "advbench.txt"), advbench_prompts(args.wheel))


if __name__ == "__main__":
    main()
