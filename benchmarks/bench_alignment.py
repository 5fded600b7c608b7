"""Benchmark: paper-form NTK alignment via VJP/JVP products vs the explicit Jacobian.

Setting: P = 2000 inputs of dimension 100, a float32 MLP 100-300-300-1 (tanh, 121,201
parameters), labels from a fixed nonlinear function of the inputs. Both routes run in this
process on the same model and data and compute ``y^T K y / (|K|_F |y|^2)`` (paper 001):

* ``vjp``: :func:`groklab.metrics.ntk.kernel_alignment` with ``exact=False``: the numerator
  from one VJP, ``|K|_F`` from ``N_PROJ`` products ``K Z = J (J^T Z)`` (Hutch++ estimate);
  memory ~ a few parameter-sized vectors per probe batch, no ``P x P`` or ``P x n`` matrix;
* ``explicit``: :func:`groklab.metrics.ntk.empirical_ntk` (per-sample Jacobian ``J`` of shape
  ``P x n_params`` in one piece, then ``K = J J^T``) and
  :func:`groklab.metrics.ntk.kernel_alignment_from_kernel`.

Peak memory is the increase of the process's peak resident set size (``VmHWM`` in
``/proc/self/status``) over its resident size at the start of each route; the peak is reset
before each route by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0), and freed
heap is returned with ``malloc_trim`` in between. RSS counts everything the route touches
(PyTorch's CPU allocator is invisible to ``tracemalloc``, so that module is not used).
Where the reset is unavailable the script falls back to ``resource.getrusage`` and runs
the cheaper route first, so the first number is exact and the second an upper bound.

Run: ``python benchmarks/bench_alignment.py [--threads N] [--projections K]``. Prints a
markdown table and three checks; exits 1 if any fails: (1) the projected alignment is
within 4 standard deviations of the exact one, the standard deviation measured by running
the same estimator with 40 seeds on the explicit K; (2) with the probes of the VJP run, the
estimator on the explicit K gives the same value to 1e-4 (so the VJP/JVP products are
K's); (3) the numerators ``y^T K y`` and ``|J^T y|^2`` agree to 1e-4.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import resource
import sys
import time
from pathlib import Path

import torch
from torch import nn

# Run as a plain script, so make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groklab.metrics.ntk import (  # noqa: E402
    empirical_ntk,
    frobenius_norm_estimate,
    kernel_alignment,
    kernel_alignment_from_kernel,
    ntk_quadratic_form,
)

P, D_IN, HIDDEN = 2000, 100, 300
N_PROJ = 60


def _model(generator: torch.Generator) -> nn.Module:
    model = nn.Sequential(nn.Linear(D_IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN),
                          nn.Tanh(), nn.Linear(HIDDEN, 1))
    with torch.no_grad():
        for p in model.parameters():
            # Standard-parameterisation init with unit-variance preactivations.
            p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(p.shape[-1]))
    return model


def _data(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(P, D_IN, generator=generator)  # (P, D_IN)
    y = (torch.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2]
         + 0.1 * x[:, 3:].sum(1) / math.sqrt(D_IN))  # (P,)
    return x, y


class _PeakRSS:
    """Peak resident memory of a code block, in MiB above the RSS at its start."""

    def __init__(self):
        self.resettable = self._try_reset()
        self._libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None

    @staticmethod
    def _status_kib(field: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    @staticmethod
    def _try_reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            return True
        except OSError:
            return False

    def __enter__(self):
        gc.collect()
        if self._libc is not None:
            self._libc.malloc_trim(0)  # give freed heap back so the baseline is honest
        if self.resettable:
            self._try_reset()
            self._start = self._status_kib("VmRSS")
        else:
            self._start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc):
        peak = (self._status_kib("VmHWM") if self.resettable
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        self.mib = max(peak - self._start, 0) / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--projections", type=int, default=N_PROJ)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    model = _model(gen)
    x, y = _data(gen)
    n_params = sum(p.numel() for p in model.parameters())

    # Warm-up on 8 points: one-time costs (functorch's forward-AD decompositions, thread
    # pools, allocator arenas) belong to neither route.
    kernel_alignment(model, x[:8], y[:8], exact=False, n_projections=6)
    kernel_alignment_from_kernel(empirical_ntk(model, x[:8]), y[:8])

    # Cheaper route first: with the getrusage fallback its number is then exact.
    with _PeakRSS() as mem_vjp:
        t0 = time.perf_counter()
        a_vjp = kernel_alignment(model, x, y, "paper", exact=False,
                                 n_projections=args.projections,
                                 generator=torch.Generator().manual_seed(1))
        t_vjp = time.perf_counter() - t0

    with _PeakRSS() as mem_exp:
        t0 = time.perf_counter()
        K = empirical_ntk(model, x)  # (P, P) via J of shape (P, n_params)
        a_exp = kernel_alignment_from_kernel(K, y, "paper")
        t_exp = time.perf_counter() - t0

    # Numerators are exact on both routes: y^T K y from K vs |J^T y|^2 from one VJP.
    yd = y.double()
    num_exp = float(yd @ K.double() @ yd)
    num_vjp = ntk_quadratic_form(model, x, y)

    # The projected |K|_F is random. Its spread is measured by rerunning the same estimator
    # on the explicit K (cheap products K Z), and with the seed of the VJP run the two must
    # coincide up to float32 rounding: that checks the VJP/JVP products themselves.
    fro_exp = float(torch.linalg.matrix_norm(K.double()))

    def explicit_matmat(Z):
        return Z @ K  # rows K z (K symmetric)

    def estimate(seed):
        return frobenius_norm_estimate(explicit_matmat, P, n_projections=args.projections,
                                       generator=torch.Generator().manual_seed(seed),
                                       dtype=K.dtype)
    spread = torch.tensor([estimate(s) / fro_exp - 1.0 for s in range(100, 140)]).std().item()
    a_same_seed = num_exp / (estimate(1) * float(yd @ yd))
    rel = abs(a_vjp / a_exp - 1.0)
    same = abs(a_vjp / a_same_seed - 1.0)
    num_rel = abs(num_vjp / num_exp - 1.0)
    tol = max(4.0 * spread, 1e-4)
    method = "VmHWM reset" if mem_vjp.resettable else "ru_maxrss (2nd row: upper bound)"
    print(f"P = {P}, MLP {D_IN}-{HIDDEN}-{HIDDEN}-1, {n_params:,} parameters, float32, "
          f"{torch.get_num_threads()} threads, {args.projections} projections; "
          f"memory: peak RSS increase ({method})\n")
    print("| route | time (s) | peak memory (MiB) | alignment |")
    print("|---|---:|---:|---:|")
    print(f"| VJP/JVP (projected) | {t_vjp:.2f} | {mem_vjp.mib:.0f} | {a_vjp:.6f} |")
    print(f"| explicit J, K = J J^T | {t_exp:.2f} | {mem_exp.mib:.0f} | {a_exp:.6f} |")
    print(f"| ratio explicit / VJP | {t_exp / t_vjp:.1f}x | "
          f"{mem_exp.mib / max(mem_vjp.mib, 1e-9):.1f}x | |")
    print(f"\nalignment: relative difference {rel:.2e}; estimator sd {spread:.2e} "
          f"(40 seeds on the explicit K), tolerance 4 sd = {tol:.2e}")
    print(f"same probes on the explicit K: relative difference {same:.2e} (tolerance 1e-4)")
    print(f"numerator y^T K y vs |J^T y|^2: relative difference {num_rel:.2e} (tolerance 1e-4)")
    ok = rel < tol and same < 1e-4 and num_rel < 1e-4
    print("agree" if ok else "DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
