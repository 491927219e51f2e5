"""Peer baseline: a tiny Llama-style decoder in plain PyTorch (CPU, fp32).

Measures training and inference throughput (tokens/s) on the same model shape as
our own implementation, for comparison. Model: token embedding, pre-norm blocks of
RMSNorm -> causal MHA with rotary embeddings (rotate-half, theta 1e4) on q/k ->
residual, RMSNorm -> SwiGLU MLP -> residual; final RMSNorm; untied LM head; no biases.
One JSON line per result: train (AdamW step), infer_generate (greedy KV-cache decode;
ms_per_step = one generated position for the whole batch, prefill amortised) and
infer_forward (no-grad full-sequence forward, like an evaluation/calibration pass).

Example: /usr/bin/python3 bench/peer/torch_baseline.py --mode both --threads 1. Real shapes: e.g.
--d-model 896 --layers 24 --heads 14 --kv-heads 2 --ffn 4864 --vocab 151936 (Qwen2.5-0.5B);
--device cuda on a GPU machine. With OpenBLAS
and several threads also set OMP_WAIT_POLICY=PASSIVE (libgomp spin-waits fight its pool).
"""
import argparse
import ctypes
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.h, self.kv, self.hd = heads, kv_heads, d // heads
        self.q, self.o = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.k, self.v = (nn.Linear(d, kv_heads * self.hd, bias=False) for _ in range(2))

    def forward(self, x, cos, sin, pos, cache):
        B, T, D = x.shape
        q = self.q(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k, v = (m(x).view(B, T, self.kv, self.hd).transpose(1, 2) for m in (self.k, self.v))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if cache is not None:  # preallocated (B, KV, max_len, hd) buffers
            cache[0][:, :, pos:pos + T], cache[1][:, :, pos:pos + T] = k, v
            k, v = cache[0][:, :, :pos + T], cache[1][:, :, :pos + T]
        if self.kv != self.h:  # grouped-query attention: each key/value head serves h/kv query heads
            k, v = (t.repeat_interleave(self.h // self.kv, 1) for t in (k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.hd)  # (B, H, T, pos+T)
        if T > 1:  # query i (absolute pos+i) may not see keys j > pos+i
            mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).triu(pos + 1)
            att = att.masked_fill(mask, float("-inf"))
        y = att.softmax(-1) @ v
        return self.o(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, d, ffn):
        super().__init__()
        self.gate, self.up = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, d, heads, kv_heads, ffn):
        super().__init__()
        self.n1, self.attn, self.n2, self.mlp = RMSNorm(d), Attention(d, heads, kv_heads), RMSNorm(d), MLP(d, ffn)

    def forward(self, x, cos, sin, pos, cache):
        x = x + self.attn(self.n1(x), cos, sin, pos, cache)
        return x + self.mlp(self.n2(x))


class Llama(nn.Module):
    def __init__(self, vocab, d, layers, heads, kv_heads, ffn, max_len, theta=10000.0):
        super().__init__()
        assert d % heads == 0 and (d // heads) % 2 == 0, "d_model must split into heads of even size"
        assert heads % kv_heads == 0, "heads must be a multiple of kv-heads"
        self.kv, self.hd = kv_heads, d // heads
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads, kv_heads, ffn) for _ in range(layers))
        self.norm, self.head = RMSNorm(d), nn.Linear(d, vocab, bias=False)
        inv = 1.0 / theta ** (torch.arange(0, self.hd, 2).float() / self.hd)
        ang = torch.outer(torch.arange(max_len).float(), inv).repeat(1, 2)  # (max_len, hd)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def new_cache(self, batch, max_len):
        shape, dev = (batch, self.kv, max_len, self.hd), self.cos.device
        return [(torch.zeros(shape, device=dev), torch.zeros(shape, device=dev)) for _ in self.blocks]

    def forward(self, idx, pos=0, cache=None):
        T = idx.shape[1]
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        x = self.emb(idx)
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, pos, None if cache is None else cache[i])
        return self.head(self.norm(x))


def setup_blas(threads):
    """Debian's torch calls whichever libblas.so.3 is selected (reference BLAS or OpenBLAS,
    which keeps its own thread pool); name it and bound OpenBLAS by --threads too."""
    with open("/proc/self/maps") as f:
        path = next((ln.split()[-1] for ln in f if "libblas.so" in ln), "unknown")
    try:
        blas = ctypes.CDLL("libblas.so.3")
        blas.openblas_set_num_threads(threads)
        blas.openblas_get_corename.restype = ctypes.c_char_p
        return f"{path} (OpenBLAS {blas.openblas_get_corename().decode()} kernels, {threads} threads)"
    except (OSError, AttributeError):
        return path


@torch.no_grad()
def generate(model, prompt, new_tokens):
    """Greedy decoding with the KV cache: one prefill, then one token per step."""
    B, P = prompt.shape
    cache = model.new_cache(B, P + new_tokens)
    logits = model(prompt, 0, cache)[:, -1]
    toks, outs = [logits.argmax(-1, keepdim=True)], [logits]
    for i in range(new_tokens - 1):
        logits = model(toks[-1], P + i, cache)[:, -1]
        toks.append(logits.argmax(-1, keepdim=True))
        outs.append(logits)
    return torch.cat(toks, 1), torch.stack(outs, 1)


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) / reps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in [("d-model", 128), ("layers", 4), ("heads", 4), ("ffn", 512), ("vocab", 32),
                          ("seq", 64), ("batch", 16), ("steps", 30), ("warmup", 5), ("threads", os.cpu_count()),
                          ("gen-batch", 16), ("prompt", 16), ("new-tokens", 48), ("gen-reps", 5), ("seed", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--kv-heads", type=int, default=None, help="key/value heads (GQA); default --heads")
    p.add_argument("--mode", choices=("train", "infer", "both"), default="both")
    p.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (float32, eager)")
    a = p.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    blas = setup_blas(a.threads) if dev.type == "cpu" else torch.cuda.get_device_name(dev)
    torch.manual_seed(a.seed)
    kv = a.kv_heads or a.heads
    model = Llama(a.vocab, a.d_model, a.layers, a.heads, kv, a.ffn, max(a.seq, a.prompt + a.new_tokens)).to(dev)
    n_params = sum(t.numel() for t in model.parameters())
    g = torch.Generator().manual_seed(a.seed + 1)
    base = {"framework": "torch", "device": str(dev), "params": n_params, "threads": torch.get_num_threads(),
            "blas": blas, "d_model": a.d_model, "layers": a.layers, "heads": a.heads, "kv_heads": kv,
            "batch": a.batch, "seq": a.seq}

    def emit(mode, tokens, sec, **kw):  # tokens processed per step, seconds per step
        print(json.dumps({**base, "mode": mode, "tokens_per_s": round(tokens / sec, 1),
                          "ms_per_step": round(sec * 1e3, 3), **kw}), flush=True)

    if a.mode in ("train", "both"):
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        data = iter(torch.randint(0, a.vocab, (a.warmup + a.steps, a.batch, a.seq + 1), generator=g).to(dev))
        losses = []

        def step():
            xy = next(data)
            logits = model(xy[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, a.vocab), xy[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sec = timed(step, a.warmup, a.steps)
        emit("train", a.batch * a.seq, sec, loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4))

    if a.mode in ("infer", "both"):
        model.eval()
        prompt = torch.randint(0, a.vocab, (a.gen_batch, a.prompt), generator=g).to(dev)
        toks, logits = generate(model, prompt, a.new_tokens)
        with torch.no_grad():  # KV-cache sanity check against a full causal forward
            ref = model(torch.cat((prompt, toks[:, :-1]), 1))[:, a.prompt - 1:]
        err = (ref - logits).abs().max().item()
        assert err < 1e-3, f"KV cache mismatch: {err}"
        sec = timed(lambda: generate(model, prompt, a.new_tokens), 1, a.gen_reps)
        emit("infer_generate", a.gen_batch, sec / a.new_tokens, gen_batch=a.gen_batch,
             prompt=a.prompt, new_tokens=a.new_tokens, kv_max_abs_err=err)
        x = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g).to(dev)
        with torch.no_grad():
            sec = timed(lambda: model(x), a.warmup, a.steps)
        emit("infer_forward", a.batch * a.seq, sec)


if __name__ == "__main__":
    main()
