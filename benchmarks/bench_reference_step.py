"""Is our reference loop as fast per step as the published one? Cost per step, same run.

    python benchmarks/bench_reference_step.py [--threads 1] [--epochs 6]

``reference_power.py`` (the baseline of ``bench_power_xdivy.py``) trains groklab's network
(pre-LN, ReLU, batch-first attention) the way the popular reimplementations write their
loops. The most used of them (danielmamay/grokking) trains a post-LN, GELU block with
sequence-first ``nn.MultiheadAttention`` and its head over every position. This script
builds that published block structure beside ours and runs both through the reference's own
epoch (``reference_power.train_epoch`` and ``evaluate``: data loaders, AdamW, warm-up,
per-step ``.item()`` logging, validation), timing one epoch of each (10 training steps and one
pass over the 4656 validation pairs), the order alternated. Only the
cost per step is compared: the two networks are not the same, so their steps to 99% are not.
Writes benchmarks/results/reference_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import reference_power as ours  # noqa: E402


class PublishedBlock(nn.Module):
    """The published decoder block: attention, add, LayerNorm; MLP (4x, GELU), add, LayerNorm;
    sequence-first input, the causal mask rebuilt each call."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(d_model, n_heads)
        self.attention_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.mlp_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (seq, batch, d_model)
        mask = torch.triu(torch.full((len(x), len(x)), -float("inf"), dtype=x.dtype, device=x.device), diagonal=1)
        attended, _ = self.attention(x, x, x, attn_mask=mask)
        x = self.attention_norm(x + attended)
        return self.mlp_norm(x + self.mlp(x))


class PublishedTransformer(nn.Module):
    """Token and position embeddings, the blocks, a final LayerNorm and a head over the
    vocabulary at every position; returns (batch, seq, vocab)."""

    def __init__(self, num_tokens: int, seq_len: int = 5):
        super().__init__()
        self.tokens = nn.Embedding(num_tokens, ours.D_MODEL)
        self.positions = nn.Embedding(seq_len, ours.D_MODEL)
        self.model = nn.Sequential(*[PublishedBlock(ours.D_MODEL, ours.N_HEADS) for _ in range(ours.N_LAYERS)],
                                   nn.LayerNorm(ours.D_MODEL), nn.Linear(ours.D_MODEL, num_tokens))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch, length = inputs.shape
        embedded = self.tokens(inputs) + self.positions(torch.arange(length).unsqueeze(0).expand(batch, length))
        # sequence-first inside, as published; (batch, seq, vocab) out, a view, so our loop reads it
        return self.model(embedded.transpose(0, 1)).transpose(0, 1)


def setup(style: str):
    """(model, optimiser, schedule, loaders) of one loop."""
    torch.manual_seed(0)
    train_loader, val_loader = ours.get_data(0)
    vocab = ours.P + 2
    model = PublishedTransformer(vocab) if style == "published" else \
        ours.Transformer(ours.N_LAYERS, ours.D_MODEL, ours.N_HEADS, ours.D_MLP, vocab, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=ours.LR, betas=ours.BETAS, weight_decay=ours.WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / ours.WARMUP_STEPS))
    return model, optimizer, schedule, train_loader, val_loader


def epoch_seconds_per_step(model, optimizer, schedule, train_loader, val_loader) -> float:
    """One epoch of the reference's own loop (``train_epoch`` then ``evaluate``); seconds per
    training step, validation included."""
    criterion, log = nn.CrossEntropyLoss(), {"step": [], "train_loss": [], "train_acc": []}
    started = time.perf_counter()
    steps = ours.train_epoch(model, train_loader, optimizer, schedule, criterion, torch.device("cpu"), log, 0,
                             max_steps=len(train_loader))
    ours.evaluate(model, val_loader, criterion, torch.device("cpu"))
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loops = {style: setup(style) for style in ("published", "ours")}
    for loop in loops.values():
        epoch_seconds_per_step(*loop)  # warm-up
    seconds: dict[str, list[float]] = {style: [] for style in loops}
    for e in range(args.epochs):
        for style in (("published", "ours") if e % 2 == 0 else ("ours", "published")):
            seconds[style].append(epoch_seconds_per_step(*loops[style]))
    result = {"threads": args.threads, "epochs": args.epochs, "load_average": os.getloadavg(),
              "torch": torch.__version__,
              **{style: {"median_ms": 1e3 * statistics.median(v), "min_ms": 1e3 * min(v)} for style, v in seconds.items()}}
    result["ours_over_published"] = result["ours"]["median_ms"] / result["published"]["median_ms"]
    for style in loops:
        print(f"{style:10s} {result[style]['median_ms']:7.1f} ms a step (median; min {result[style]['min_ms']:.1f}), "
              "its share of the epoch's validation included")
    print(f"ours / published: {result['ours_over_published']:.2f} (load average {result['load_average']})")
    out = Path(__file__).parent / "results" / "reference_step.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
