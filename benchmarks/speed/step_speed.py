"""Training-step speed of each method against its bound, in fp32 and bf16, with and without torch.compile.

    python -m benchmarks.speed.step_speed [--scales cpu r18 paper] [--cases supervised fixmatch adacm ...]
        [--precisions fp32 bf16] [--compile off on] [--reps 10] [--warmup 3] [--threads N] [--python PATH]

Each (scale, case, precision, compile) runs in a fresh child process (so peak memory is its own) on pre-built
batches: the data pipeline is excluded (see `benchmarks.speed.data_pipeline` for it). A step is what the trainer
does per iteration: the method's forward passes and losses, backward, optimizer, EMA (and Ada-CM's weight
shrink). The bound is the bare network on the same work: one recorded step captures every call the method makes
to the network (its input tensors, keyword arguments, whether gradients were on, and which outputs the loss
reached); the bound replays those calls and back-propagates a trivial loss through the outputs the step's loss
reached, on the same tensors, memory format, autocast dtype, compiled network and threads. No losses of the
method, no optimizer, no EMA. Step and bound repetitions alternate in one process (step first on even
repetitions, bound first on odd ones), so a machine shared with other jobs slows both alike; the ratio bound /
step is taken per repetition and its median and inter-quartile range are reported.

samples/s counts labeled + unlabeled images per step (not views). Scales: `cpu` = preset `fer2013_ssl` (small
CNN, 48 px, 64 + 64); `r18` = the same with ResNet-18 at 112 px, 16 + 16; `paper` = preset `adacm_rafdb_4000`
(ResNet-18, 224 px, 16 + 16, Adam); `toy` = the small CNN with 8 + 8 (a smoke test). fp32 = `train.amp=off`,
bf16 = `train.amp=bf16`, compile = `train.compile=true` (its compilation happens in the warm-up and is reported
as warm-up seconds). On a GPU each row also counts the host syncs of one step. `--python` runs the children in
another interpreter (the USB venv, so semifer and USB are timed on the same torch). USB's rows come from
`benchmarks.peers.usb_peer --speed` (benchmarks/out/usb_speed.json) when present; rows of earlier runs (before
the interleaved bound) keep their step times and have no ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    OUT,
    ROOT,
    command,
    header,
    load_json,
    machine,
    module_command,
    parser,
    peak_rss_mb,
    rows_header,
    write_section,
)

SCALES: dict[str, tuple[str, list[str]]] = {
    "cpu": ("fer2013_ssl", []),
    "r18": (
        "fer2013_ssl",
        ["model.arch=resnet18", "model.pretrained=none", "data.img_size=112", "train.batch_size=16"],
    ),
    "paper": ("adacm_rafdb_4000", []),
    "toy": ("fer2013_ssl", ["train.batch_size=8"]),
}
CASES: dict[str, tuple[str, list[str]]] = {
    "supervised": ("supervised", []),
    "pseudolabel": ("pseudolabel", []),
    "fixmatch": ("fixmatch", []),
    "flexmatch": ("flexmatch", []),
    "mixmatch": ("mixmatch", []),
    "remixmatch": ("remixmatch", []),
    "dta_snl": ("dta_snl", []),
    "adacm": ("adacm", []),
    "adacm, one concatenated pass": ("adacm", ["method.separate_forward=false"]),
    "adacm, official-code style": ("adacm", []),
}
PRECISIONS = {"fp32": "off", "bf16": "bf16"}
POOL = 4096


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, device: Any) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def spread(values: list[float]) -> dict[str, float]:
    """Median and inter-quartile range (the middle half of the repetitions)."""
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {"median": median, "q1": q1, "q3": q3, "iqr": q3 - q1}


class NetworkCalls:
    """Records each call a step makes to the network, then replays them as the step's bound.

    Recorded per call: the input (detached), keyword arguments, whether gradients were on, and whether the
    step's loss back-propagated into the output (a gradient reached it). The replay runs the same calls and
    back-propagates the mean of exactly those outputs, so its backward covers what the step's does.
    """

    def __init__(self, model: Any):
        self.model = model
        self.calls: list[dict[str, Any]] = []

    def record(self, step: Any) -> None:
        import torch

        compiled, self.model._compiled_call_impl = self.model._compiled_call_impl, None  # record eagerly

        def hook(_module: Any, args: tuple, kwargs: dict, out: Any) -> None:
            call = {
                "x": args[0].detach(),
                "kwargs": dict(kwargs),
                "grad": torch.is_grad_enabled(),
                "reached": [False] * (len(out) if isinstance(out, tuple) else 1),
            }
            for i, tensor in enumerate(out if isinstance(out, tuple) else (out,)):
                if tensor.requires_grad:
                    tensor.register_hook(lambda g, i=i, call=call: call["reached"].__setitem__(i, True))
            self.calls.append(call)

        handle = self.model.register_forward_hook(hook, with_kwargs=True)
        try:
            step()
        finally:
            handle.remove()
            self.model._compiled_call_impl = compiled

    def replay(self, autocast: Any) -> None:
        import torch

        self.model.zero_grad(set_to_none=True)
        reached = []
        with autocast:
            for call in self.calls:
                with torch.set_grad_enabled(call["grad"]):
                    out = self.model(call["x"], **call["kwargs"])
                outs = out if isinstance(out, tuple) else (out,)
                reached += [o.float().mean() for o, hit in zip(outs, call["reached"], strict=True) if hit]
        if reached:
            torch.stack(reached).sum().backward()


def host_syncs(step: Any) -> int:
    """How often one step makes the host wait for the GPU (CUDA's sync debug mode, counted as warnings)."""
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def measure(scale: str, case: str, precision: str, compiled: bool, reps: int, warmup: int) -> dict[str, Any]:
    """Run one case in this process, step and bound interleaved, and return its numbers (in the child)."""
    import torch

    from semifer.config import load_config
    from semifer.engine.trainer import TrainData, Trainer
    from semifer.methods import Batch, resolve_method
    from semifer.models import create_model
    from semifer.runtime.distributed import local_device
    from semifer.runtime.precision import autocast

    method_name, overrides = CASES[case]
    preset, scale_overrides = SCALES[scale]
    cfg = load_config(
        preset,
        [
            f"method.name={method_name}",
            *scale_overrides,
            *overrides,
            f"train.amp={PRECISIONS[precision]}",
            f"train.compile={compiled}",
        ],
    )
    device = local_device("auto")
    torch.manual_seed(0)
    spec = resolve_method(cfg.method)
    spec.fill(cfg)
    model = create_model(cfg, 7, pretrained=False)
    method = spec.build(7, POOL)
    b_l = cfg.train.batch_size
    b_u = max(1, round(b_l * cfg.train.unlabeled_ratio))
    size = cfg.data.img_size
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            cfg,
            Path(tmp),
            method,
            model,
            TrainData(None, None, None),
            device,  # type: ignore[arg-type]
            progress=False,
        )

    def batch(n: int, kinds: tuple[str, ...]) -> Batch:
        raw = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
        views = [torch.stack([view(img) for img in raw]) for view in trainer.objective.views(kinds)]
        fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
        return Batch(
            [v.to(device, memory_format=fmt) for v in views],
            torch.randint(0, 7, (n,), device=device),
            torch.randperm(POOL, device=device)[:n],
        )

    labeled = batch(b_l, method.labeled_views)
    unlabeled = batch(b_u, method.unlabeled_views) if method.uses_unlabeled else None
    images = [*labeled.views, *(unlabeled.views if unlabeled else [])]
    if case.endswith("official-code style"):
        import copy

        from benchmarks.peers.official_style_adacm import OfficialStyleAdaCM

        # The authors' code keeps PyTorch's default (contiguous) memory format and plain fp32.
        plain = trainer.model.to(memory_format=torch.contiguous_format)
        ref = OfficialStyleAdaCM(plain, copy.deepcopy(plain).eval(), cfg.train.lr)
        assert unlabeled is not None
        weak1, weak2, strong = (v.contiguous() for v in unlabeled.views)
        labeled.views[0] = labeled.views[0].contiguous()

        def step() -> None:
            ref.step(labeled.views[0], labeled.label, weak1, weak2, strong)
    else:

        def step() -> None:
            trainer._train_step(labeled, unlabeled)

    dtype = None if case.endswith("official-code style") else trainer.amp_dtype
    calls = NetworkCalls(trainer.model)
    calls.record(step)
    context = autocast(device, dtype)

    def bound() -> None:
        calls.replay(context)

    started = time.perf_counter()
    for _ in range(warmup):
        _timed(step, device)
        _timed(bound, device)
    warmup_seconds = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps, bounds = [], []
    for rep in range(reps):
        order = (step, bound) if rep % 2 == 0 else (bound, step)
        first, second = (_timed(fn, device) for fn in order)
        steps.append(first if rep % 2 == 0 else second)
        bounds.append(second if rep % 2 == 0 else first)
    ratios = [b / s for s, b in zip(steps, bounds, strict=True)]
    syncs = host_syncs(step) if device.type == "cuda" else None
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb()
    samples = b_l + (b_u if unlabeled else 0)
    step_spread, bound_spread = spread(steps), spread(bounds)
    return {
        "toolkit": "official style" if "official" in case else "semifer",
        "method": case,
        "scale": scale,
        "precision": precision,
        "compile": compiled,
        "labeled": b_l,
        "unlabeled": b_u if unlabeled else 0,
        "images_per_step": sum(len(v) for v in images),
        "network_calls": len(calls.calls),
        "step_seconds_median": step_spread["median"],
        "step_seconds_iqr": step_spread["iqr"],
        "bound_seconds_median": bound_spread["median"],
        "bound_seconds_iqr": bound_spread["iqr"],
        "ratio_median": spread(ratios)["median"],
        "ratio_q1": spread(ratios)["q1"],
        "ratio_q3": spread(ratios)["q3"],
        "step_seconds": steps,
        "bound_seconds": bounds,
        "warmup_seconds": warmup_seconds,
        "samples_per_s": samples / step_spread["median"],
        "bound_samples_per_s": samples / bound_spread["median"],
        "peak_mem_mb": peak,
        "peak_mem_kind": "cuda allocated" if device.type == "cuda" else "process peak RSS (VmHWM)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "autocast": str(dtype).removeprefix("torch.") if dtype else "none",
        "host_syncs_per_step": syncs,
    }


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Rows of another run replace only the same case on the same torch (a venv run adds its own rows);
    rows from before the precision and compile columns were fp32 and eager."""
    return (
        row["scale"],
        row["toolkit"],
        row["method"],
        row["torch"],
        row.get("precision", "fp32"),
        bool(row.get("compile")),
    )


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--scales", nargs="+", default=["cpu", "r18"], choices=list(SCALES))
    cli.add_argument("--cases", nargs="+", default=["supervised", "fixmatch", "adacm"], choices=list(CASES))
    cli.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    cli.add_argument(
        "--compile",
        nargs="+",
        default=["off"],
        choices=["off", "on"],
        help="eager, compiled or both (compiled rows spend their compilation in the warm-up)",
    )
    cli.add_argument("--reps", type=int, default=10, help="timed step + bound repetitions")
    cli.add_argument("--warmup", type=int, default=3)
    cli.add_argument("--threads", type=int, help="torch threads of the children (default: torch's own)")
    cli.add_argument("--out", type=Path, default=OUT, help="folder of step_speed.json")
    cli.add_argument("--markdown", type=Path, help="write the table to this file, not to BENCHMARKS.md")
    cli.add_argument("--python", default=sys.executable, help="interpreter for the timed children")
    cli.add_argument("--child", nargs=4, metavar=("SCALE", "CASE", "PRECISION", "COMPILE"), help=argparse.SUPPRESS)
    args = cli.parse_args()
    if args.child:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        scale, case, precision, compiled = args.child
        print(json.dumps(measure(scale, case, precision, compiled == "on", args.reps, args.warmup)))
        return

    path = args.out / "step_speed.json"
    blob = json.loads(path.read_text()) if path.exists() else {"rows": []}
    if not args.report_only:
        meta = {"command": command(), "machine": machine()}
        args.out.mkdir(parents=True, exist_ok=True)
        for scale in args.scales:
            for case in args.cases:
                for precision in args.precisions:
                    for compiled in args.compile:
                        if "official" in case and (precision != "fp32" or compiled == "on"):
                            continue  # the authors' code: fp32, eager
                        row = {**child(args, scale, case, precision, compiled), **meta}
                        kept = [
                            r for r in blob["rows"] if row_key(r) != row_key(row) and r["toolkit"] != "bare network"
                        ]
                        blob = {**meta, "rows": [*kept, row]}
                        path.write_text(json.dumps(blob, indent=1))  # after every row: a cut-off run keeps them
    # USB's rows (`benchmarks.peers.usb_peer --speed`) belong with this repository's own table only.
    usb = load_json("usb_speed")["rows"] if args.out == OUT else []
    if args.markdown:
        args.markdown.write_text(table(blob, usb) + "\n")
    else:
        write_section("step_speed", table(blob, usb))


def child(args: argparse.Namespace, scale: str, case: str, precision: str, compiled: str) -> dict[str, Any]:
    cmd = [
        *module_command(__spec__.name, args.python),
        "--child",
        scale,
        case,
        precision,
        compiled,
        "--reps",
        str(args.reps),
        "--warmup",
        str(args.warmup),
        *(["--threads", str(args.threads)] if args.threads else []),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode:
        sys.exit(f"{scale} {case} {precision} compile={compiled} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{scale:5s} {case:28s} {precision} compile={compiled:3s} step {1000 * row['step_seconds_median']:8.1f} ms "
        f"bound {1000 * row['bound_seconds_median']:8.1f} ms  ratio {row['ratio_median']:.2f} "
        f"[{row['ratio_q1']:.2f}, {row['ratio_q3']:.2f}]  warm-up {row['warmup_seconds']:.0f} s",
        flush=True,
    )
    return row


def rate(samples_per_s: float) -> str:
    return f"{samples_per_s:.1f}" if samples_per_s < 100 else f"{samples_per_s:.0f}"


def ms(seconds: float, iqr: float | None = None) -> str:
    return f"{1000 * seconds:.1f}" + (f" ± {500 * iqr:.1f}" if iqr is not None else "")


def table(blob: dict[str, Any], usb: list[dict[str, Any]]) -> str:
    rows = [r for r in blob["rows"] if r["toolkit"] != "bare network"]
    fp32 = {
        (r["scale"], r["toolkit"], r["method"], r["torch"], bool(r.get("compile"))): r
        for r in rows
        if r.get("precision", "fp32") == "fp32"
    }
    eager = {
        (r["scale"], r["toolkit"], r["method"], r["torch"], r.get("precision", "fp32")): r
        for r in rows
        if not r.get("compile")
    }
    interleaved = [r for r in rows if "bound_seconds_median" in r]
    earlier = [r for r in rows if "bound_seconds_median" not in r]
    commands = sorted({r["command"] for r in interleaved})
    meta = max((r["machine"] for r in interleaved), key=lambda m: m["date"], default=blob.get("machine"))
    lines = [
        "### Training-step speed against its bound",
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in commands) + ".",
        header(meta) if meta else "",
        "",
        "Step = the trainer's whole iteration on pre-built batches (forward passes, losses, backward, optimizer, "
        "EMA). Bound = the bare network replaying the step's own network calls on the same tensors, memory "
        "format, autocast dtype, compiled network and threads, back-propagating through the outputs the "
        "step's loss reached (no losses, optimizer or EMA). Step and bound repetitions alternate in one "
        "process; ms = median ± half the inter-quartile range; ratio = bound / step per repetition, median "
        "[first, third quartile]. samples/s = labeled + unlabeled images per step / median step. x fp32 = "
        "step speed-up over the fp32 row with the same compile setting; x eager = over the eager row of the "
        "same precision. cpu = small CNN, 48 px, 64 + 64; r18 = ResNet-18, 112 px, 16 + 16; paper = ResNet-18, "
        "224 px, 16 + 16. Peak memory on CPU is the child process's peak RSS (VmHWM).",
        "",
        "| scale | method | precision | compile | images per step | step ms | bound ms | ratio to bound | "
        "samples/s | x fp32 | x eager | warm-up s | peak MB | threads | device |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in interleaved:
        base = fp32.get((r["scale"], r["toolkit"], r["method"], r["torch"], bool(r["compile"])))
        plain = eager.get((r["scale"], r["toolkit"], r["method"], r["torch"], r["precision"]))
        up = f"{base['step_seconds_median'] / r['step_seconds_median']:.2f}" if base else "-"
        up_c = f"{plain['step_seconds_median'] / r['step_seconds_median']:.2f}" if plain and r["compile"] else "-"
        lines.append(
            f"| {r['scale']} | {r['method']} | {r['precision']} | {'on' if r['compile'] else 'off'} | "
            f"{r['images_per_step']} | {ms(r['step_seconds_median'], r['step_seconds_iqr'])} | "
            f"{ms(r['bound_seconds_median'], r['bound_seconds_iqr'])} | {r['ratio_median']:.2f} "
            f"[{r['ratio_q1']:.2f}, {r['ratio_q3']:.2f}] | {rate(r['samples_per_s'])} | {up} | {up_c} | "
            f"{r['warmup_seconds']:.0f} | {r['peak_mem_mb']:.0f} | {r['threads']} | {r['device']} |"
        )
    older = [*earlier, *usb]
    lines += [
        "",
        "Step times without a bound (fp32, eager; these runs did not time the bound in the same process, "
        "so no ratio is shown). USB's rows come from `usb_peer.py --speed`; semifer's rows with the same torch "
        "ran in the same venv.",
        rows_header([r["machine"] for r in older if "machine" in r]) if older else "",
        "Commands: " + "; ".join(f"`{c}`" for c in dict.fromkeys(r["command"] for r in older if "command" in r)) + ".",
        "",
        "| scale | toolkit | method | images per step | step ms | samples/s | peak MB | torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    views = {(r["scale"], r["method"], r["torch"]): r["images_per_step"] for r in earlier}
    for r in older:
        # A peer's row counts its images its own way; the same algorithm feeds the same tensors as semifer's.
        images = views.get((r["scale"], r["method"], r["torch"])) or r.get("images_per_step") or "-"
        lines.append(
            f"| {r['scale']} | {r['toolkit']} | {r['method']} | {images} | "
            f"{ms(r['step_seconds_median'])} | {rate(r['samples_per_s'])} | {r['peak_mem_mb']:.0f} | "
            f"{r['torch']} |"
        )
    raw = "`benchmarks/out/step_speed.json`" + (", `benchmarks/out/usb_speed.json`" if usb else "")
    lines += ["", f"Raw numbers: {raw}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
