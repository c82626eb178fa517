#!/usr/bin/env python3
"""Hugging Face transformers on the same card and the same weights as `hwledger bench model`.

Loads a model folder (e.g. `hwledger model synth --preset llama-3.1-8b --seed 1`) in bf16 with
SDPA attention and times `generate` (greedy, a fixed number of new tokens) on random prompts:

  decode batch 1: 512-token prompt, 1 vs 1+N new tokens -> N / (t_N - t_1) tok/s
  prefill: an 8192-token prompt, one new token
  batch 64 x 2048 prompt: 1 vs 64 new tokens -> end to end, and the decode phase alone
          (64 x 63 tokens / (t_64 - t_1))

Prints one JSON object. usage: transformers_baseline.py MODEL_DIR [--b1-tokens 64]
"""
import argparse
import json
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def timed(model, ids, new_tokens, repeats):
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
        assert out.shape[1] == ids.shape[1] + new_tokens
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--b1-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
    model.eval()
    load_s = time.perf_counter() - t
    g = torch.Generator().manual_seed(0)
    V = model.config.vocab_size
    r = {"transformers": transformers.__version__, "torch": torch.__version__,
         "gpu": torch.cuda.get_device_name(0), "load_s": load_s}
    with torch.inference_mode():
        ids = torch.randint(0, V, (1, 512), generator=g).cuda()
        timed(model, ids, 2, 1)  # warm-up
        t1 = timed(model, ids, 1, 2)
        tn = timed(model, ids, 1 + a.b1_tokens, 1)
        r["decode_b1_tok_s"] = a.b1_tokens / (tn - t1)
        ids = torch.randint(0, V, (1, 8192), generator=g).cuda()
        r["prefill_8192_s"] = timed(model, ids, 1, 2)
        ids = torch.randint(0, V, (a.batch, 2048), generator=g).cuda()
        t1 = timed(model, ids, 1, 1)
        t64 = timed(model, ids, 64, 1)
        r["batch"] = a.batch
        r["batch_prefill_s"] = t1
        r["batch_end_to_end_s"] = t64
        r["batch_decode_s"] = t64 - t1
        r["batch_decode_tok_s"] = a.batch * 63 / (t64 - t1)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
