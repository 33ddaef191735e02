"""The speed settings: precision (`train.amp`), `train.compile`, loader workers, and a training step that never
waits on the device."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from semifer.config import load_config
from semifer.data.loaders import auto_workers
from semifer.engine.pretraining import Pretrainer
from semifer.engine.run import build_model
from semifer.engine.trainer import TrainData, Trainer
from semifer.errors import ConfigError
from semifer.methods import Batch, build_method
from semifer.runtime import precision
from semifer.runtime.precision import autocast_dtype, cpu_has_native_bf16, grad_scaler

TINY = ["data.train=synthetic:?n=70", "data.workers=0", "train.batch_size=8", "train.ema=0.9"]
CPU, GPU = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(("value", "mode"), [(True, "auto"), (False, "off"), ("BF16", "bf16"), ("fp16", "fp16")])
def test_amp_reads_modes_and_legacy_booleans(value, mode):
    assert load_config("demo", [f"train.amp={value}"]).train.amp == mode


def test_bad_amp_value_names_the_key():
    with pytest.raises(ConfigError, match=r"train.amp must be one of auto\|bf16\|fp16\|off"):
        load_config("demo", ["train.amp=fp8"])


@pytest.mark.parametrize("native", [True, False])
def test_one_precision_rule_for_every_device(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert autocast_dtype(CPU, "auto") == (torch.bfloat16 if native else None)
    assert autocast_dtype(CPU, "bf16") == torch.bfloat16
    assert autocast_dtype(CPU, "off") is None and autocast_dtype(CPU, False) is None
    assert autocast_dtype(torch.device("meta"), "auto") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: native)
    assert autocast_dtype(GPU, "auto") == (torch.bfloat16 if native else torch.float16)
    assert autocast_dtype(GPU, "fp16") == torch.float16
    assert grad_scaler(CPU, torch.float16).is_enabled() and not grad_scaler(CPU, torch.bfloat16).is_enabled()
    if not native:
        with pytest.raises(ConfigError, match="no bf16"):
            autocast_dtype(GPU, "bf16")


def test_native_bf16_detection_agrees_with_linux():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo")
    flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    if flags & {"avx512_bf16", "amx_bf16"}:
        assert cpu_has_native_bf16()


def test_auto_workers_leave_two_cores_to_the_step():
    assert load_config("fer2013_ssl").data.workers is None  # presets take the rule
    assert [auto_workers(c) for c in (1, 2, 4, 8, 16, 64)] == [0, 0, 1, 2, 4, 4]


def _trainer(tmp_path, method: str, *extra: str) -> tuple[Trainer, Batch, Batch | None]:
    cfg = load_config("demo", [*TINY, f"method.name={method}", *extra])
    torch.manual_seed(0)
    model = build_model(cfg, 7)
    m = build_method(cfg.method, 7, 64)
    trainer = Trainer(cfg, tmp_path, m, model, TrainData(None, None, None), CPU, progress=False)  # type: ignore[arg-type]

    def batch(kinds: tuple[str, ...]) -> Batch:
        views = [torch.rand(8, 3, 48, 48).to(memory_format=torch.channels_last) for _ in kinds]
        return Batch(views, torch.randint(0, 7, (8,)), torch.randperm(64)[:8])

    return trainer, batch(m.labeled_views), batch(m.unlabeled_views) if m.uses_unlabeled else None


@pytest.mark.parametrize(("amp", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16), ("off", torch.float32)])
def test_step_runs_in_the_chosen_precision_and_keeps_weights_fp32(tmp_path, amp, dtype):
    trainer, labeled, unlabeled = _trainer(tmp_path, "adacm", f"train.amp={amp}")
    seen = []
    trainer.model.register_forward_hook(lambda _m, _i, out: seen.append(out[0].dtype))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    logs = trainer._train_step(labeled, unlabeled)
    assert seen and set(seen) == {dtype}
    assert torch.isfinite(logs["loss"]) and logs["loss"].dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(v.dtype in (torch.float32, torch.long) for v in trainer.ema.state_dict().values())
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    moved = any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    assert moved or trainer.scaler.get_scale() < 65536.0  # fp16: an overflowing first step is skipped, scale cut


def test_pretrainer_uses_the_same_rule(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    for amp, dtype in (("auto", torch.bfloat16), ("off", None)):
        cfg = load_config(
            "pretrain_fer2013_small",
            [
                "data.train=synthetic:?n=40",
                "data.workers=0",
                f"train.amp={amp}",
                "train.device=cpu",
                "train.batch_size=8",
            ],
        )
        pretrainer = Pretrainer(cfg, tmp_path, progress=False)
        assert pretrainer.amp_dtype == dtype
        loss = pretrainer.train_step(torch.rand(8, 3, 48, 48))
        assert torch.isfinite(loss) and loss.dtype == torch.float32


def test_compile_wraps_the_network_in_place(tmp_path):
    trainer, _, _ = _trainer(tmp_path, "supervised", "train.compile=true")
    eager, _, _ = _trainer(tmp_path, "supervised")
    assert trainer.model._compiled_call_impl is not None and eager.model._compiled_call_impl is None
    assert trainer.model.state_dict().keys() == eager.model.state_dict().keys()
    assert trainer.ema.module._compiled_call_impl is None  # evaluation stays eager


class HostSyncs(TorchDispatchMode):
    """Records the ops that make the host wait for a GPU: reading a value back (`.item()`, `bool(t)`),
    data-dependent shapes (boolean indexing, nonzero, bincount, unique) and tensors built from Python data
    (a blocking host-to-device copy). On a CPU nothing waits, but the same ops run, so they are caught here.
    `F.one_hot` with a class count checks its range only off the GPU, so what it runs is not recorded."""

    SYNCING = {
        "_local_scalar_dense",
        "nonzero",
        "bincount",
        "masked_select",
        "_unique2",
        "unique_dim",
        "unique_consecutive",
        "lift_fresh",
    }

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.paused = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        bool_index = name in ("index", "index_put", "index_put_") and any(
            isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in args[1] if t is not None
        )
        if not self.paused and (name in self.SYNCING or bool_index):
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


class OneHotOnGPU(TorchFunctionMode):
    def __init__(self, syncs: HostSyncs) -> None:
        super().__init__()
        self.syncs = syncs

    def __torch_function__(self, func, types, args=(), kwargs=None):
        gpu_free = getattr(func, "__name__", "") == "one_hot" and (len(args) > 1 or "num_classes" in (kwargs or {}))
        self.syncs.paused += gpu_free
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.syncs.paused -= gpu_free


@contextmanager
def host_syncs() -> Iterator[list[str]]:
    syncs = HostSyncs()
    with OneHotOnGPU(syncs), syncs:
        yield syncs.ops


@pytest.mark.parametrize(
    "method", ["supervised", "pseudolabel", "fixmatch", "flexmatch", "adacm", "dta_snl", "mixmatch", "remixmatch"]
)
def test_training_step_never_waits_on_the_device(tmp_path, method):
    trainer, labeled, unlabeled = _trainer(tmp_path, method, "train.amp=off")
    trainer._train_step(labeled, unlabeled)  # first step: lazy state (optimizer buffers) is made
    with host_syncs() as syncs:
        trainer._train_step(labeled, unlabeled)
    with host_syncs() as host_only:  # MixUp's lambda: a Beta draw on the CPU, where the host waits for nothing
        float(torch.distributions.Beta(0.75, 0.75).sample())
    assert syncs == (host_only if "mixmatch" in method else [])


def test_the_sync_detector_catches_a_sync():
    with host_syncs() as syncs:
        x = torch.arange(4.0)
        x[x > 1].sum().item()
        torch.nn.functional.one_hot(torch.tensor([1, 2]), 3)
    assert syncs == ["index", "_local_scalar_dense", "lift_fresh"]
