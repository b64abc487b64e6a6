"""Empirical NTK: symlab's methods vs the torch.func tutorial's two methods vs neural-tangents.

Run: .venv/bin/python benchmarks/bench_ntk.py [--quick] [--no-nt] [--memory-gb 2] [--threads 1]
     [--cases mlp,cnn] [--sizes 8,32,128] [--device cpu|cuda] [--json rows.json]

On a GPU: `python benchmarks/bench_ntk.py --device cuda --sizes 8,32,128,512 --memory-gb 40`
times symlab's and the tutorial's methods on the device (neural-tangents is skipped there: its
benchmark environment is a CPU-only JAX). Device times synchronise before and after each call;
device memory is the peak of torch.cuda.max_memory_allocated above the pre-call allocation, so
--memory-gb is then a budget in device memory. TF32 is switched off for matmuls and cuDNN
convolutions so that the kernels are compared at float32 precision.

Cases (float32, full kernel Theta(x, x) of shape (N, N, K, K); x1 = x and x2 = a copy of x, which
symlab detects as equal and treats as x2=None (factors once, half of each Gram); structured_x2
passes x reversed, so symlab does the full two-sided work; structured_sym and nt_structured_sym
pass x2=None):
- mlp: 64 -> 512 -> 512 -> 512 -> 10 (ReLU), N = 128 (and smaller N for the baselines that do
  not fit in memory at N = 128: the tutorial's NTK-vector products vmap all N^2 K cotangents at
  once, N^2 K P floats).
- cnn: 3x16x16 -> Conv(16, 3x3, pad 1) -> ReLU -> Conv(32, 3x3, stride 2, pad 1) -> ReLU ->
  flatten -> Linear(10).

Each (case, N) runs in fresh worker processes (the torch methods together in one process, so the
ratios are between runs of one process; neural-tangents in benchmarks/.nt-venv, created on first
use from benchmarks/requirements-nt.txt). Time: min and median of up to 7 runs after a warm-up
call (for neural-tangents the warm-up includes jit compilation, reported separately); ratios use
the min, the least load-sensitive estimate on a shared machine; every torch method is called once
before any is timed, so all are timed in the same allocator state (glibc's adaptive mmap
threshold otherwise favours the methods timed after the big ones). Memory, in a second
worker process: peak resident set size above the pre-call RSS during one call after a warm-up,
sampled every 0.5 ms by a thread reading /proc/self/statm, with MALLOC_MMAP_THRESHOLD_=65536 so
that freed large buffers leave the RSS (that setting slows allocation, so it is off for timing).
One torch/BLAS/XLA thread per worker (--threads to change). neural-tangents is timed twice: with
vmap_axes=0 (told that points are independent: its fast path) and with its defaults
(vmap_axes=None; rows *_default), the call the issue's reference timings used. Kernels are
checked against symlab's structured kernel (max |difference| / max |kernel|). A method is
skipped at a size where its predicted memory exceeds --memory-gb.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import peak_rss_during  # noqa: E402

HERE = Path(__file__).resolve().parent
NT_VENV = HERE / ".nt-venv"
SYMLAB = ["structured", "auto", "jacobian", "ntvp"]
# structured_sym: x2=None; structured_x2: x2 = x in reversed order, so symlab cannot see that it
# holds the same points and does the full two-sided work (its kernel is un-flipped for checking)
EXTRA = ["structured_sym", "structured_x2"]
TUTORIAL = ["tutorial_jc", "tutorial_ntvp"]
NT_IMPLS = {1: "nt_jc", 2: "nt_ntvp", 3: "nt_structured"}
NT_SYM = {3: "nt_structured_sym"}  # x2=None: neural-tangents' own one-input-set path
# neural-tangents called with its defaults (vmap_axes=None), as in the reference timings
NT_DEFAULT = {"1d": "nt_jc_default", "2d": "nt_ntvp_default", "3d": "nt_structured_default"}
NT_FILES = {name: f"nt_{i}" for i, name in NT_IMPLS.items()}
NT_FILES.update({name: f"nt_{i}_sym" for i, name in NT_SYM.items()})
NT_FILES.update({name: f"nt_{i}" for i, name in NT_DEFAULT.items()})


# --- the torch.func tutorial's two methods, as published (pytorch/tutorials:
# --- intermediate_source/neural_tangent_kernels.py), used as baselines ---------------------------
def empirical_ntk_jacobian_contraction(fnet_single, params, x1, x2):
    # Compute J(x1)
    jac1 = vmap(jacrev(fnet_single), (None, 0))(params, x1)
    jac1 = jac1.values()
    jac1 = [j.flatten(2) for j in jac1]
    # Compute J(x2)
    jac2 = vmap(jacrev(fnet_single), (None, 0))(params, x2)
    jac2 = jac2.values()
    jac2 = [j.flatten(2) for j in jac2]
    # Compute J(x1) @ J(x2).T
    result = torch.stack(
        [torch.einsum("Naf,Mbf->NMab", j1, j2) for j1, j2 in zip(jac1, jac2, strict=True)]
    )
    result = result.sum(0)
    return result


def empirical_ntk_ntk_vps(func, params, x1, x2):
    def get_ntk(x1, x2):
        def func_x1(params):
            return func(params, x1)

        def func_x2(params):
            return func(params, x2)

        output, vjp_fn = vjp(func_x1, params)

        def get_ntk_slice(vec):
            # This computes vec @ J(x2).T; vec is one row of the identity matrix
            vjps = vjp_fn(vec)
            # This computes J(X1) @ vjps
            _, jvps = jvp(func_x2, (params,), vjps)
            return jvps

        basis = torch.eye(output.numel(), dtype=output.dtype, device=output.device).view(
            output.numel(), -1
        )
        return vmap(get_ntk_slice)(basis)

    # get_ntk(x1, x2) computes the NTK for a single pair of points; vmap over all pairs
    return vmap(vmap(get_ntk, (None, 0)), (0, None))(x1, x2)


# --- cases --------------------------------------------------------------------------------------
def build_case(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if name == "mlp":
        widths = [64, 512, 512, 512, 10]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers), (64,)
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, 10),
        ), (3, 16, 16)
    raise ValueError(f"case: expected 'mlp' or 'cnn', got {name!r}")


def export_case(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    """Weights (torch layouts) and inputs as .npz for both workers."""
    arrays, kinds, strides, paddings = {"x": x.numpy()}, [], [], []
    layers = [m for m in model if isinstance(m, nn.Linear | nn.Conv2d)]
    for i, m in enumerate(layers):
        arrays[f"w{i}"] = m.weight.detach().numpy()
        arrays[f"b{i}"] = m.bias.detach().numpy()
        conv = isinstance(m, nn.Conv2d)
        kinds.append("conv" if conv else "linear")
        strides.append(m.stride[0] if conv else 1)
        paddings.append(m.padding[0] if conv else 0)
    arrays.update(kinds=np.array(kinds), strides=np.array(strides), paddings=np.array(paddings))
    np.savez(path, **arrays)


def predicted_bytes(method: str, n: int, k: int, p: int) -> int:
    """Dominant memory of a method (float32): Jacobians 2 N K P, NTVP tangents N^2 K P (tutorial)."""
    if method in (
        "tutorial_jc",
        "jacobian",
        "nt_jc",
        "nt_ntvp",
        "nt_jc_default",
        "nt_ntvp_default",
    ):
        return 2 * n * k * p * 4
    if method == "tutorial_ntvp":
        return n * n * k * p * 4
    return 0  # structured needs no Jacobian; symlab's ntvp chunks its basis to a 1 GiB budget


# --- measurement helpers ------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device: torch.device) -> tuple[list[float], torch.Tensor]:
    """Run times of up to 7 calls (at most ~10 s in all; on a GPU up to 25 calls within ~1 s, as
    its calls take milliseconds) after a warm-up call, and the result."""
    out = fn()  # warm-up
    synchronize(device)
    most, within = (25, 1.0) if device.type == "cuda" else (7, 10.0)
    times: list[float] = []
    while len(times) < most and sum(times) < 10.0 and (len(times) < 7 or sum(times) < within):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times, out


def peak_device_bytes(fn, device: torch.device) -> int:
    """Peak device memory allocated by torch during one call, above the allocation before it."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - base)


def torch_worker(
    case_npz: str, case: str, out_dir: str, methods: list[str], mode: str, device_name: str
) -> None:
    """Times (mode "time": writes torch.json + kernels) or measures the peak memory of (mode
    "memory": writes torch_memory.json; resident memory on the CPU, allocated device memory on a
    GPU) symlab's and the tutorial's methods in ONE process, on device ``device_name``."""
    from symlab.ntk import empirical_ntk

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    device = torch.device(device_name)
    if device.type == "cuda":  # compare kernels at float32 precision, not TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    arrays = np.load(case_npz)
    model, _ = build_case(case)
    layers = [m for m in model if isinstance(m, nn.Linear | nn.Conv2d)]
    with torch.no_grad():
        for i, m in enumerate(layers):
            m.weight.copy_(torch.from_numpy(arrays[f"w{i}"]))
            m.bias.copy_(torch.from_numpy(arrays[f"b{i}"]))
    model.to(device)
    x = torch.from_numpy(arrays["x"]).to(device)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def fnet_single(params, x):
        return functional_call(model, params, (x.unsqueeze(0),)).squeeze(0)

    calls = {
        "tutorial_jc": lambda: empirical_ntk_jacobian_contraction(fnet_single, params, x, x),
        "tutorial_ntvp": lambda: empirical_ntk_ntk_vps(fnet_single, params, x, x),
    }
    # x2 is a copy: symlab detects that it equals x1 (one O(N d) comparison) and treats it as x1;
    # structured_x2 (x2 = x reversed) shows the cost when x2 holds other points
    x2 = x.clone()
    for m in SYMLAB:
        calls[m] = lambda m=m: empirical_ntk(model, x, x2, method=m)
    calls["structured_sym"] = lambda: empirical_ntk(model, x, method="structured")
    flipped = x.flip(0)
    calls["structured_x2"] = lambda: empirical_ntk(model, x, flipped, method="structured").flip(1)
    results = {"torch": torch.__version__}
    if mode == "time":
        # one call of every method first: glibc raises its mmap threshold after large frees, so
        # without this the first method timed would pay page faults the later ones do not
        # (measured: structured 5.4 vs 3.5 ms at N = 8 for the same work, first vs later)
        for method in methods:
            calls[method]()
    for method in methods:
        if mode == "memory":
            calls[method]()  # warm-up
            if device.type == "cuda":
                peak = peak_device_bytes(calls[method], device)
            else:
                _, peak = peak_rss_during(calls[method])
            results[method] = {"peak_bytes": peak}
            continue
        times, kernel = time_call(calls[method], device)
        np.save(Path(out_dir) / f"{method}.npy", kernel.detach().cpu().numpy())
        results[method] = {
            "min_s": min(times),
            "median_s": float(np.median(times)),
            "runs": len(times),
        }
        del kernel
    name = "torch_memory.json" if mode == "memory" else "torch.json"
    (Path(out_dir) / name).write_text(json.dumps(results))


# --- driver -------------------------------------------------------------------------------------
def ensure_nt_venv() -> Path | None:
    """benchmarks/.nt-venv/bin/python with neural-tangents importable, creating it if missing."""
    python = NT_VENV / "bin" / "python"
    if not python.exists():
        print("creating benchmarks/.nt-venv (pip install -r benchmarks/requirements-nt.txt) ...")
        subprocess.run([sys.executable, "-m", "venv", str(NT_VENV)], check=False)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(HERE / "requirements-nt.txt")],
            check=False,
        )
    check = (
        subprocess.run(
            [str(python), "-c", "import neural_tangents"],
            capture_output=True,
            text=True,
            check=False,
        )
        if python.exists()
        else None
    )
    if check is None or check.returncode != 0:
        print("neural-tangents unavailable:", (check.stderr[-300:] if check else "no venv"))
        return None
    return python


THREADS = 1  # set from --threads in main()
DEVICE = "cpu"  # set from --device in main()


def worker_env(memory: bool) -> dict[str, str]:
    """THREADS threads for torch, BLAS and XLA (XLA: one thread, or its own default of every core
    when THREADS > 1); for memory runs only, a fixed mmap threshold (it slows allocation down)."""
    env = dict(os.environ)
    if memory:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    env.update(
        OMP_NUM_THREADS=str(THREADS),
        MKL_NUM_THREADS=str(THREADS),
        TF_CPP_MIN_LOG_LEVEL="3",
        JAX_PLATFORMS="cpu",
    )
    if THREADS == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else:
        env.pop("XLA_FLAGS", None)
    return env


def run_row(case: str, n: int, nt_python: Path | None, budget: int, tmp: Path) -> list[dict]:
    model, shape = build_case(case)
    x = torch.randn(n, *shape, generator=torch.Generator().manual_seed(1))
    p = sum(q.numel() for q in model.parameters())
    k = 10
    out = tmp / f"{case}_{n}"
    out.mkdir()
    npz = out / "case.npz"
    export_case(model, x, npz)
    every = SYMLAB + TUTORIAL + list(NT_IMPLS.values()) + list(NT_DEFAULT.values())
    fits = {m for m in every if predicted_bytes(m, n, k, p) <= budget}
    methods = [m for m in SYMLAB + TUTORIAL if m in fits] + EXTRA
    if "structured" not in methods:
        methods.insert(0, "structured")
    slow = []
    if n > 32 and DEVICE == "cpu":  # N^2 K [FP] NTK-vector products: minutes at N = 128 on one core
        slow = [m for m in methods if m == "ntvp"]
        methods = [m for m in methods if m not in slow]
    for mode in ("time", "memory"):
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--torch-worker",
                str(npz),
                case,
                str(out),
                ",".join(methods),
                mode,
                DEVICE,
            ],
            env=worker_env(mode == "memory"),
            check=True,
        )
    results = json.loads((out / "torch.json").read_text())
    memory = json.loads((out / "torch_memory.json").read_text())
    rows = [{"case": case, "n": n, "method": m, **results[m], **memory[m]} for m in methods]
    impls = [str(i) for i, name in NT_IMPLS.items() if name in fits]
    impls += [i for i, name in NT_DEFAULT.items() if name in fits]
    if nt_python is not None and impls:
        for mode in ("time", "memory"):
            subprocess.run(
                [str(nt_python), str(HERE / "nt_worker.py"), str(npz), str(out)]
                + [",".join(map(str, impls)), mode],
                env=worker_env(mode == "memory"),
                check=False,
            )
        nt: dict = {}
        for name in ("nt.json", "nt_memory.json"):
            part = json.loads((out / name).read_text()) if (out / name).exists() else {}
            for key, value in part.items():
                nt[key] = {**nt.get(key, {}), **value} if isinstance(value, dict) else value
        for i in impls:
            result = nt.get(i, {"error": "no result"})
            name = NT_DEFAULT[i] if i in NT_DEFAULT else NT_IMPLS[int(i)]
            rows.append({"case": case, "n": n, "method": name, **result})
            if i == "3":
                result = nt.get("3_sym", {"error": "no result"})
                rows.append({"case": case, "n": n, "method": NT_SYM[3], **result})
    skipped = sorted(set(every) - fits)
    reference = np.load(out / "structured.npy").astype(np.float64)
    scale = np.abs(reference).max()
    for row in rows:
        path = out / f"{NT_FILES.get(row['method'], row['method'])}.npy"
        if path.exists():
            row["rel_err"] = float(
                np.abs(np.load(path).astype(np.float64) - reference).max() / scale
            )
    for m in slow:
        rows.append({"case": case, "n": n, "method": m, "error": "skipped: minutes at this N"})
    for m in skipped:
        rows.append(
            {
                "case": case,
                "n": n,
                "method": m,
                "error": f"skipped: predicted {predicted_bytes(m, n, k, p) / 2**30:.1f} GiB",
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    """One line per row; "x structured" = min time / structured's min time at the same (case, N)."""
    by_key = {(r["case"], r["n"]): r for r in rows if r["method"] == "structured"}
    print(
        f"\n{'case':5} {'N':>4} {'method':15} {'min (s)':>9} {'median (s)':>10} {'compile (s)':>11} "
        f"{'peak (MiB)':>14} {'x structured':>12} {'rel err':>9}"
    )
    for r in rows:
        if "min_s" not in r:
            print(f"{r['case']:5} {r['n']:>4} {r['method']:15} {r.get('error', '')}")
            continue
        ratio = r["min_s"] / by_key[(r["case"], r["n"])]["min_s"]
        compile_s = f"{r['compile_s']:.2f}" if "compile_s" in r else "-"
        print(
            f"{r['case']:5} {r['n']:>4} {r['method']:15} {r['min_s']:9.4f} {r['median_s']:10.4f} "
            f"{compile_s:>11} {r['peak_bytes'] / 2**20:14.1f} {ratio:12.1f} "
            f"{r.get('rel_err', float('nan')):9.1e}"
        )


def print_ratios(rows: list[dict]) -> None:
    """Speed-ups (ratio of min times) of symlab's structured rows over the baselines, per (case, N):
    structured (x2 an equal copy, detected) and structured_x2 (other points: two-sided work) over
    each group's fastest, and like-for-like: structured_x2 vs nt_structured (both two-sided),
    structured_sym vs nt_structured_sym (both x2=None)."""
    for case, n in sorted({(r["case"], r["n"]) for r in rows}):
        cell = {r["method"]: r for r in rows if (r["case"], r["n"]) == (case, n) and "min_s" in r}
        nt_all = list(NT_IMPLS.values()) + list(NT_SYM.values())
        groups = (
            ("neural-tangents (vmap_axes=0)", nt_all),
            ("neural-tangents (defaults, vmap_axes=None)", list(NT_DEFAULT.values())),
            ("tutorial", TUTORIAL),
        )
        for ours in ("structured", "structured_x2"):
            if ours not in cell:
                continue
            for group, names in groups:
                timed = [(cell[m]["min_s"], m) for m in names if m in cell]
                if timed:
                    best = min(timed)
                    print(
                        f"{case} N={n}: {ours} over {group}'s best ({best[1]}): "
                        f"{best[0] / cell[ours]['min_s']:.1f}x"
                    )
        for ours, theirs in (
            ("structured_x2", "nt_structured"),
            ("structured_sym", "nt_structured_sym"),
        ):
            if ours in cell and theirs in cell:
                print(
                    f"{case} N={n}: {ours} over {theirs}: "
                    f"{cell[theirs]['min_s'] / cell[ours]['min_s']:.1f}x"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N only (a smoke run)")
    parser.add_argument("--no-nt", action="store_true", help="skip neural-tangents")
    parser.add_argument(
        "--memory-gb", type=float, default=2.0, help="skip methods predicted above this"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per worker (torch, BLAS, XLA)"
    )
    parser.add_argument(
        "--cases", default="mlp,cnn", help="comma-separated cases to run (mlp, cnn)"
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated N (default 8,32,128; --quick: 8)"
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device for symlab and the tutorial: cpu or cuda"
    )
    parser.add_argument(
        "--torch-worker", nargs=6, metavar=("NPZ", "CASE", "OUT", "METHODS", "MODE", "DEVICE")
    )
    args = parser.parse_args()
    if args.torch_worker:
        npz, case, out, methods, mode, device = args.torch_worker
        torch_worker(npz, case, out, methods.split(","), mode, device)
        return
    global THREADS, DEVICE
    THREADS = args.threads
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device: expected cpu or cuda, got {args.device!r}")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device: expected cpu or cuda, got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device: cuda was asked for but torch sees no CUDA device")
    DEVICE = str(device)
    try:
        ns = [int(n) for n in args.sizes.split(",")] if args.sizes else None
    except ValueError:
        ns = [0]
    if ns is not None and (not ns or min(ns) < 1):
        parser.error(f"--sizes: expected comma-separated positive integers, got {args.sizes!r}")
    if ns is None:
        ns = [8] if args.quick else [8, 32, 128]
    on_gpu = device.type == "cuda"
    if on_gpu and not args.no_nt:
        print("neural-tangents skipped on --device cuda (its environment is a CPU-only JAX)")
    nt_python = None if args.no_nt or on_gpu else ensure_nt_venv()
    cases = args.cases.split(",")
    if not cases or not set(cases) <= {"mlp", "cnn"}:
        parser.error(f"--cases: expected a comma-separated subset of mlp,cnn, got {args.cases!r}")
    sizes = {case: ns for case in cases}
    budget = int(args.memory_gb * 2**30)
    where = (
        f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
        if on_gpu
        else f"{os.cpu_count()} CPUs, {THREADS} thread(s) per worker"
    )
    print(f"torch {torch.__version__}, {where}, float32")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, ns in sizes.items():
            for n in ns:
                rows += run_row(case, n, nt_python, budget, Path(tmp))
    print_table(rows)
    print_ratios(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
