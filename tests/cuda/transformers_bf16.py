#!/usr/bin/env python3
"""How Hugging Face transformers itself does on the goldens under the bf16 criteria.

For each golden dir (config.json, model.safetensors, reference.safetensors as written by
../shared/tools/make_reference.py) loads the model in bf16 (and in fp32 as a check) on the GPU
and prints, per logits case, the relative L2 error of the logits against the fp32 reference and
the number of rows whose argmax differs where the reference's top-2 margin exceeds 1e-2, plus
the smallest margin (as in tests/cuda/engine_cuda_test.cpp's PrecisionBreakdown) for 'long'.

usage: transformers_bf16.py GOLDEN_DIR...
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def stats(ours, ref):
    err = (torch.linalg.norm((ours - ref).double()) / torch.linalg.norm(ref.double())).item()
    top2 = ref.topk(2, dim=-1)
    best = top2.indices[:, 0]
    margin = top2.values[:, 0] - top2.values[:, 1]
    clear = margin > 1e-2
    bad = int(((ours.argmax(-1) != best) & clear).sum())
    o = ours.clone()
    ob = o.gather(1, best[:, None])[:, 0]
    o.scatter_(1, best[:, None], -float("inf"))
    mine = ob - o.max(-1).values
    min_marg = mine[clear].min().item() if clear.any() else float("inf")
    return err, bad, min_marg


def main():
    print(f"{'golden':12} {'dtype':9} {'attn':6} {'single':9} {'short':9} {'medium':9} {'long':9} bad  min_marg")
    for d in sys.argv[1:]:
        ref = load_file(f"{d}/reference.safetensors")
        cfg = AutoConfig.from_pretrained(d)
        for dtype in (torch.bfloat16, torch.float32):
            for attn in ("sdpa", "eager"):
                model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=dtype, attn_implementation=attn).cuda().eval()
                errs, badc, mm = {}, "", float("inf")
                for case in ("single", "short", "medium", "long"):
                    if f"ids_{case}" not in ref:
                        continue
                    ids = ref[f"ids_{case}"].long()[None].cuda()
                    with torch.no_grad():
                        lg = model(ids).logits[0].float().cpu()
                    e, b, m = stats(lg, ref[f"logits_{case}"])
                    errs[case] = e
                    if b:
                        badc += f"{case[0]}{b}"
                    if case == "long":
                        mm = m
                print(f"{d.rstrip('/').split('/')[-1]:12} {str(dtype).split('.')[-1]:9} {attn:6} "
                      + " ".join(f"{errs.get(c, float('nan')):9.2e}" for c in ("single", "short", "medium", "long"))
                      + f" {badc or '-':4} {mm:9.2e}", flush=True)
                del model


if __name__ == "__main__":
    main()
