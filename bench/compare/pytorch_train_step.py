#!/usr/bin/env python3
"""One GPT-2 training step (forward + backward + clip + AdamW) in plain PyTorch eager, fp32.

The comparison point for bench/bench_train.cpp (docs/PERFORMANCE.md, "Training (issue 4)"): the
same GPT-2 124M shapes (12 layers, 768 wide, 12 heads, vocabulary 50257, 1024 positions, tied
head), random weights, random token ids, the same step (zero grads, forward, cross-entropy over the
B*(T-1) next-token targets, backward, gradient norm + clip at 1.0, torch.optim.AdamW lr 1e-4 with
weight decay 0.01 on the matrices only, as HF Trainer groups them).

Run (Debian: `apt-get install python3-torch`, which is PyTorch 1.13.1; any later version works):

    OMP_WAIT_POLICY=PASSIVE python3 bench/compare/pytorch_train_step.py --shapes 4x64,8x128 --steps 5 --threads 2
    python3 bench/compare/pytorch_train_step.py --shapes 4x64 --steps 5 --threads 2   # libgomp's default spin

OMP_WAIT_POLICY must be set in the environment before Python starts (libgomp reads it once).
For each shape it prints tokens/s of the whole step, best and median over --steps steps after
--warmup warm-up steps, and the process's peak RSS so far (run one shape per process for a
per-shape peak).
"""
import argparse
import math
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x, mask):
        B, T, C = x.shape
        h = self.n_head
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, h, C // h).transpose(1, 2)
        k = k.view(B, T, h, C // h).transpose(1, 2)
        v = v.view(B, T, h, C // h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // h))
        att = att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.c_proj(y)
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT2(nn.Module):
    def __init__(self, vocab=50257, n_pos=1024, n_layer=12, n_embd=768, n_head=12):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(n_pos, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.register_buffer("mask", torch.tril(torch.ones(n_pos, n_pos)).view(1, 1, n_pos, n_pos))
        for name, p in self.named_parameters():  # HF's initialisation
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln" in name:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, targets):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x, self.mask)
        logits = self.lm_head(self.ln_f(x))
        # next-token loss over the B*(T-1) positions that have a target, as HF's GPT2LMHeadModel
        return F.cross_entropy(logits[:, :-1, :].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="4x64,8x128")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"PyTorch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; load average {load}", flush=True)
    model = GPT2(n_layer=args.layers)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[{n_params / 1e6:.1f}M parameters]", flush=True)
    for item in args.shapes.split(","):
        B, T = (int(v) for v in item.split("x"))
        g = torch.Generator().manual_seed(1234 + B * 1000 + T)
        idx = torch.randint(0, 50257, (B, T), generator=g)
        times = []
        loss = float("nan")
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss_t = model(idx, idx)
            loss_t.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            dt = time.perf_counter() - t0
            loss = loss_t.item()
            if i >= args.warmup:
                times.append(dt)
        best, med = min(times), statistics.median(times)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"pytorch fp32 B={B} T={T}: step best {best:.3f} s ({B * T / best:.1f} tokens/s), "
              f"median {med:.3f} s ({B * T / med:.1f} tokens/s); loss {loss:.3f}; peak RSS {rss:.0f} MiB",
              flush=True)


if __name__ == "__main__":
    main()
