"""Reference: Power et al. (2022) x/y mod 97 in plain PyTorch, the way users write it today.

This is the baseline of ``bench_power_xdivy.py``. It follows the conventions of the widely
used public reimplementations (danielmamay/grokking, itself modelled on openai/grok's
training script), not groklab:

* data: the full table ``x / y mod p`` for ``0 <= x < p``, ``1 <= y < p`` in
  ``cartesian_prod`` order (x major), tokens ``x op y =`` with ``op = p + 1`` and
  ``eq = p`` (vocabulary p + 2), wrapped in a ``TensorDataset``; a seeded split (or the
  indices the caller passes in); ``DataLoader(batch_size=512, shuffle=True)`` for training
  and a validation ``DataLoader`` of the same batch size;
* model: ``nn.Embedding`` tokens + ``nn.Embedding`` positions, per block ``nn.LayerNorm``
  + ``nn.MultiheadAttention(batch_first=True)`` called with a float ``-inf`` causal mask
  rebuilt each forward and the default ``need_weights=True``, + ``nn.LayerNorm`` + an
  ``nn.Sequential(Linear, ReLU, Linear)`` MLP, a final ``nn.LayerNorm`` and an
  ``nn.Linear`` head over the whole vocabulary applied at every position, the last position
  read out; PyTorch's default initialisation everywhere;
* optimisation: ``AdamW(lr=1e-3, betas=(0.9, 0.98), weight_decay=1.0)`` with a
  ``LambdaLR`` linear warm-up over 10 steps (``min(1, (step + 1) / 10)``, the same
  schedule as danielmamay's ``LinearLR(start_factor=0.1, total_iters=9)``),
  ``nn.CrossEntropyLoss``;
* logging: per step ``loss.item()`` and the batch accuracy ``.item()`` appended to Python
  lists (what ``wandb.log`` of those tensors amounts to); once per epoch a no-grad pass over
  the validation loader, accumulating correct counts and summed loss.

Where groklab's ``power-xdivy`` preset differs from danielmamay's defaults we take
groklab's setting, so that both sides train the same network on the same data: pre-LN
residual blocks (danielmamay: post-LN), ReLU (GELU), d_mlp 512 = 4 x 128, 2 layers,
4 heads, 50% train, batch 512. What stays the repos' own is how the code is written
(DataLoader, nn.MultiheadAttention, default init, per-step host syncs), which is the point
of the comparison. No sleeps, no artificial slowness.

Run alone: ``python benchmarks/reference_power.py --seed 0``.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Optional

import torch
from torch import nn

P = 97
TRAIN_FRACTION = 0.5
BATCH_SIZE = 512
D_MODEL = 128
N_HEADS = 4
D_MLP = 512
N_LAYERS = 2
LR = 1e-3
BETAS = (0.9, 0.98)
WEIGHT_DECAY = 1.0
WARMUP_STEPS = 10
TARGET_ACC = 0.99


def division_mod_p_data(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(N, 4)`` = ``x op y =`` and labels ``x / y mod p`` for y != 0."""
    eq_token, op_token = p, p + 1
    x = torch.arange(0, p)
    y = torch.arange(1, p)
    x, y = torch.cartesian_prod(x, y).T  # x major: (0,1), (0,2), ..., (p-1,p-1)
    inverse = torch.tensor([pow(int(v), p - 2, p) for v in range(p)])  # Fermat; p prime
    labels = x * inverse[y] % p
    eq = torch.ones_like(x) * eq_token
    op = torch.ones_like(x) * op_token
    inputs = torch.stack([x, op, y, eq], dim=1)
    return inputs, labels


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_mlp: int):
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_mlp), nn.ReLU(), nn.Linear(d_mlp, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq_len = x.shape[1]
        attn_mask = torch.full((seq_len, seq_len), -float("inf"), device=x.device, dtype=x.dtype)
        attn_mask = torch.triu(attn_mask, diagonal=1)
        h = self.attn_norm(x)
        a, _ = self.self_attn(h, h, h, attn_mask=attn_mask)
        x = x + a
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_mlp: int, num_tokens: int, seq_len: int):
        super().__init__()
        self.token_embeddings = nn.Embedding(num_tokens, d_model)
        self.position_embeddings = nn.Embedding(seq_len, d_model)
        self.blocks = nn.Sequential(*[DecoderBlock(d_model, num_heads, d_mlp) for _ in range(num_layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_tokens)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch_size, context_len = inputs.shape
        positions = torch.arange(context_len, device=inputs.device).unsqueeze(0).expand(batch_size, -1)
        x = self.token_embeddings(inputs) + self.position_embeddings(positions)
        x = self.blocks(x)
        return self.head(self.ln_f(x))  # (batch, seq, vocab)


def get_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def get_data(seed: int, train_idx: Optional[torch.Tensor] = None):
    """Train and validation loaders. ``train_idx`` (indices into the x-major table) fixes the
    split; otherwise a ``random_split`` seeded with ``seed``."""
    inputs, labels = division_mod_p_data(P)
    dataset = torch.utils.data.TensorDataset(inputs, labels)
    if train_idx is None:
        train_size = int(TRAIN_FRACTION * len(dataset))
        split_gen = torch.Generator().manual_seed(seed)
        train_dataset, val_dataset = torch.utils.data.random_split(
            dataset, [train_size, len(dataset) - train_size], generator=split_gen
        )
    else:
        is_train = torch.zeros(len(dataset), dtype=torch.bool)
        is_train[train_idx] = True
        train_dataset = torch.utils.data.Subset(dataset, torch.nonzero(is_train).squeeze(1).tolist())
        val_dataset = torch.utils.data.Subset(dataset, torch.nonzero(~is_train).squeeze(1).tolist())
    train_loader = torch.utils.data.DataLoader(train_dataset, batch_size=BATCH_SIZE, shuffle=True)
    val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=BATCH_SIZE, shuffle=False)
    return train_loader, val_loader


def train_epoch(model, train_loader, optimizer, scheduler, criterion, device, log, step, max_steps) -> int:
    model.train()
    for inputs, labels in train_loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        output = model(inputs)[:, -1, :]
        loss = criterion(output, labels)
        acc = (torch.argmax(output, dim=1) == labels).sum() / len(labels)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        log["step"].append(step)
        log["train_loss"].append(loss.item())
        log["train_acc"].append(acc.item())
        if step == max_steps:
            break
    return step


def evaluate(model, val_loader, criterion, device) -> tuple[float, float]:
    model.eval()
    correct = 0
    loss = 0.0
    for inputs, labels in val_loader:
        inputs, labels = inputs.to(device), labels.to(device)
        with torch.no_grad():
            output = model(inputs)[:, -1, :]
            correct += (torch.argmax(output, dim=1) == labels).sum()
            loss += criterion(output, labels) * len(labels)
    n = len(val_loader.dataset)
    return float(correct / n), float(loss / n)


def run(
    seed: int = 0,
    max_steps: int = 20000,
    device: Optional[torch.device] = None,
    train_idx: Optional[torch.Tensor] = None,
    target_acc: float = TARGET_ACC,
) -> dict:
    """Train until the first epoch-end evaluation with validation accuracy >= ``target_acc``
    (or ``max_steps``). Returns steps, seconds (everything from building the data on), whether
    the target was reached, the last validation accuracy and the logs."""
    start = time.perf_counter()
    device = device or get_device()
    torch.manual_seed(seed)
    train_loader, val_loader = get_data(seed, train_idx)
    model = Transformer(N_LAYERS, D_MODEL, N_HEADS, D_MLP, num_tokens=P + 2, seq_len=4).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / WARMUP_STEPS))
    criterion = nn.CrossEntropyLoss()
    log: dict[str, list] = {"step": [], "train_loss": [], "train_acc": [], "val_step": [], "val_acc": [], "val_loss": []}
    step, reached, val_acc = 0, False, 0.0
    num_epochs = math.ceil(max_steps / len(train_loader))
    for _epoch in range(num_epochs):
        step = train_epoch(model, train_loader, optimizer, scheduler, criterion, device, log, step, max_steps)
        val_acc, val_loss = evaluate(model, val_loader, criterion, device)
        log["val_step"].append(step)
        log["val_acc"].append(val_acc)
        log["val_loss"].append(val_loss)
        if val_acc >= target_acc:
            reached = True
            break
        if step >= max_steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"steps": step, "seconds": seconds, "reached": reached, "val_acc": val_acc, "log": log}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=20000)
    args = parser.parse_args()
    out = run(args.seed, args.max_steps)
    status = "reached" if out["reached"] else "did NOT reach"
    print(f"{status} {TARGET_ACC:.0%} val acc: {out['steps']} steps, {out['seconds']:.1f} s (val acc {out['val_acc']:.4f})")


if __name__ == "__main__":
    main()
