#!/usr/bin/env python3
"""Loads the models `tests/it/families.rs` exported after one RePO step (run it with
SAFERLHF_KEEP_FAMILY_EXPORTS=1) in transformers and compares their logits with saferlhf's on the
fixtures' inputs. Needs the venv of scripts/requirements-fixtures.txt; CI does not run it.

    SAFERLHF_KEEP_FAMILY_EXPORTS=1 cargo test --test families
    /tmp/hf-fixtures-venv/bin/python scripts/check-family-exports.py
"""

import json
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
ok = True
for name in ["tiny-qwen2", "tiny-qwen3", "tiny-llama3"]:
    export = Path(tempfile.gettempdir()) / f"saferlhf-family-export-{name}"
    expected = json.loads((ROOT / "tests" / "fixtures" / name / "expected.json").read_text())
    ours = json.loads((export / "saferlhf-logits.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32, attn_implementation="eager").eval()
    ids = torch.tensor(expected["input_ids"])
    mask = torch.tensor(expected["attention_mask"])
    pos = torch.tensor(expected["position_ids"])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    theirs = torch.tensor(ours["logits"]).reshape(ours["shape"])
    diff = (logits - theirs)[mask.bool()].abs().max().item()
    moved = (torch.tensor(expected["logits"]) - theirs)[mask.bool()].abs().max().item()
    print(f"{name}: {type(model).__name__}, max |transformers - saferlhf| logits at real positions = {diff:.2e} "
          f"(training moved them by up to {moved:.2f} from the fixture's)")
    ok &= diff < 1e-4 and moved > 1e-3
print("ALL EXPORTS MATCH" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
