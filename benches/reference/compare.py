#!/usr/bin/env python3
"""One table of ratios: `saferlhf bench speed --json` against `benches/reference/speed.py --json`
(the same figures by name). Time ratio = PyTorch's seconds / saferlhf's (above 1: saferlhf is
faster); memory ratio = saferlhf's peak / PyTorch's (device memory where both report it, else the
process's resident set).

    python3 benches/reference/compare.py saferlhf.json pytorch.json [--json ratios.json]

Standard library only.
"""

import argparse
import json
import os


def seconds(f):
    for key in ("warm_step_s", "s_per_step", "median_s"):
        if isinstance(f.get(key), (int, float)):
            return f[key]
    return None


def memory(f, key):
    v = f.get(key)
    return v if isinstance(v, (int, float)) and v > 0 else None


def ratio(a, b, digits=2):
    return round(a / b, digits) if a is not None and b else None


def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saferlhf")
    parser.add_argument("pytorch")
    parser.add_argument("--json")
    args = parser.parse_args()
    ours = json.load(open(args.saferlhf))
    theirs = {f["figure"]: f for f in json.load(open(args.pytorch))["figures"]}
    rows = []
    for f in ours["figures"]:
        t = theirs.get(f["figure"], {})
        mem_key = "device_peak_reserved_gb"
        if memory(f, mem_key) is None or memory(t, mem_key) is None:
            mem_key = "peak_rss_gb"
        rows.append(
            {
                "figure": f["figure"],
                "saferlhf_s": seconds(f) if "error" not in f else None,
                "pytorch_s": seconds(t) if "error" not in t else None,
                "saferlhf_first_s": f.get("first_step_s"),
                "pytorch_first_s": t.get("first_step_s"),
                "speedup": ratio(seconds(t), seconds(f)) if "error" not in f and "error" not in t else None,
                "memory": mem_key,
                "saferlhf_gb": memory(f, mem_key),
                "pytorch_gb": memory(t, mem_key),
                "memory_ratio": ratio(memory(f, mem_key), memory(t, mem_key)),
                "error": f.get("error") or t.get("error"),
            }
        )
    print(f"saferlhf on {ours.get('device')} against PyTorch on {json.load(open(args.pytorch)).get('device')}, shape {ours.get('shape')}\n")
    print("| figure | saferlhf s | PyTorch s | PyTorch s / saferlhf s | first step s (saferlhf / PyTorch) | memory | saferlhf GB | PyTorch GB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        first = "–" if r["saferlhf_first_s"] is None else f"{fmt(r['saferlhf_first_s'])} / {fmt(r['pytorch_first_s'])}"
        note = f" ({r['error']})" if r["error"] else ""
        print(
            f"| {r['figure']}{note} | {fmt(r['saferlhf_s'])} | {fmt(r['pytorch_s'])} | {fmt(r['speedup'], 2)} | {first} "
            f"| {'device' if r['memory'].startswith('device') else 'RSS'} | {fmt(r['saferlhf_gb'], 2)} | {fmt(r['pytorch_gb'], 2)} | {fmt(r['memory_ratio'], 2)} |"
        )
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"saferlhf": ours, "pytorch": args.pytorch, "rows": rows}, f, indent=2)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
