"""neural-tangents side of benchmarks/bench_ntk.py; runs inside benchmarks/.nt-venv (JAX, CPU).

Usage: python nt_worker.py CASE_NPZ OUT_DIR IMPLEMENTATIONS MODE
Loads the torch weights and inputs exported by bench_ntk.py (CASE_NPZ), rebuilds the same network
as a plain JAX function f(params, x) in standard parameterisation (torch layouts: W (out, in),
conv OIHW on NCHW inputs), and times ``nt.empirical_ntk_fn(f, trace_axes=(), vmap_axes=0,
implementation=...)`` under jit for each implementation (comma-separated: 1 = Jacobian
contraction, 2 = NTK-vector products, 3 = structured derivatives; 3 is also timed with x2=None,
key "3_sym", neural-tangents' path for one input set). An implementation written with a "d"
suffix ("1d", "2d", "3d") is timed as ``nt.empirical_ntk_fn`` is called with its defaults
(``vmap_axes=None``: neural-tangents is not told that the points of a batch are independent),
still under jit and with ``trace_axes=()``; the issue's reference timings were taken that way. Writes OUT_DIR/nt.json
(compile time, min and median time) and OUT_DIR/nt_<impl>.npy (the kernels) in MODE "time", or
OUT_DIR/nt_memory.json (peak RSS above the pre-call RSS during one call after the compiling call)
in MODE "memory".
"""

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import neural_tangents as nt
import numpy as np
from peak_memory import peak_rss_during


def build(arrays):
    """(f, params) for the exported layer list: 'linear' and 'conv' layers with ReLU between."""
    kinds = [str(k) for k in arrays["kinds"]]
    strides = [int(s) for s in arrays["strides"]]
    paddings = [int(p) for p in arrays["paddings"]]
    # dense weights as (in, out), the stax/flax layout: neural-tangents' structured rules then
    # see x @ W (with x @ W.T its structured implementation ran 300x slower in a trial)
    weights = [
        arrays[f"w{i}"].T if kinds[i] == "linear" else arrays[f"w{i}"] for i in range(len(kinds))
    ]
    params = [(jnp.asarray(w), jnp.asarray(arrays[f"b{i}"])) for i, w in enumerate(weights)]

    def f(params, x):
        for i, (kind, (w, b)) in enumerate(zip(kinds, params, strict=True)):
            if kind == "conv":
                x = jax.lax.conv_general_dilated(
                    x,
                    w,
                    window_strides=(strides[i], strides[i]),
                    padding=[(paddings[i], paddings[i])] * 2,
                    dimension_numbers=("NCHW", "OIHW", "NCHW"),
                )
                x = x + b[None, :, None, None]
            else:
                x = x.reshape(x.shape[0], -1) @ w + b
            if i < len(kinds) - 1:
                x = jax.nn.relu(x)
        return x

    return f, params


def main() -> None:
    case_npz, out_dir, mode = sys.argv[1], sys.argv[2], sys.argv[4]
    impls = sys.argv[3].split(",")
    arrays = np.load(case_npz)
    f, params = build(arrays)
    x = jnp.asarray(arrays["x"])
    results = {"jax": jax.__version__, "nt": nt.__version__, "devices": str(jax.devices())}
    runs = [(i, x) for i in impls] + [("3_sym", None) for i in impls if i == "3"]
    for key, x2 in runs:
        impl = nt.NtkImplementation(int(key[0]))
        batch = {} if key.endswith("d") else {"vmap_axes": 0}
        kernel_fn = jax.jit(nt.empirical_ntk_fn(f, trace_axes=(), implementation=impl, **batch))
        try:
            start = time.perf_counter()
            k = kernel_fn(x, x2, params).block_until_ready()  # compile + first run
            compile_s = time.perf_counter() - start
            if mode == "memory":
                _, peak = peak_rss_during(
                    lambda f=kernel_fn, x2=x2: f(x, x2, params).block_until_ready()
                )
                results[key] = {"peak_bytes": peak}
                continue
            times = []
            while len(times) < 7 and sum(times) < 10.0:
                start = time.perf_counter()
                kernel_fn(x, x2, params).block_until_ready()
                times.append(time.perf_counter() - start)
            np.save(os.path.join(out_dir, f"nt_{key}.npy"), np.asarray(k))
            results[key] = {
                "compile_s": compile_s,
                "min_s": min(times),
                "median_s": float(np.median(times)),
                "runs": len(times),
            }
        except Exception as error:  # noqa: BLE001 - reported to the benchmark, not hidden
            results[key] = {"error": f"{type(error).__name__}: {error}"[:300]}
    with open(
        os.path.join(out_dir, "nt_memory.json" if mode == "memory" else "nt.json"), "w"
    ) as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main()
