"""ViT backbones (timm): the backbone contract, MAE's pooled feature, checkpoint loading with resampling,
layer-wise lr decay, drop path, and a ViT FERNet trained by several methods, evaluated, averaged and in DDP."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from timm.layers import DropPath

from semifer.config import load_config
from semifer.engine.ema import ModelEMA
from semifer.engine.optim import build_optimizer, build_scheduler
from semifer.engine.run import build_model, train
from semifer.errors import ConfigError
from semifer.models import BACKBONES, FERNet, load_backbone_weights, load_model

TINY = [
    "data.train=synthetic:?n=140",
    "data.test=synthetic:?split=test&n=35",
    "data.split=per_class:2",
    "data.img_size=48",
    "data.workers=0",
    "train.batch_size=4",
    "train.iters_per_epoch=2",
    "train.epochs=1",
    "train.eval_batch_size=64",
    "model.arch=vit_tiny",
    "model.patch_size=12",
    "train.optimizer=adamw",
    "train.lr=1e-4",
    "train.weight_decay=0.05",
    "train.layer_decay=0.75",
]


@pytest.mark.parametrize("arch,dim", [("vit_tiny", 192), ("vit_small", 384), ("vit_base", 768)])
def test_backbone_contract_at_48px(arch, dim):
    backbone = BACKBONES[arch](img_size=48, patch_size=16).eval()
    x = torch.randn(2, 3, 48, 48)
    fmap = backbone.forward_map(x)
    assert backbone.feature_dim == dim and fmap.shape == (2, dim, 3, 3)
    assert backbone(x).shape == (2, dim)
    assert len(backbone.feature_map_stages()) == 12


def test_patch_and_input_size_from_48_to_224():
    assert BACKBONES["vit_tiny"](img_size=48).patch_embed.proj.kernel_size == (6, 6)  # the CPU default, 8x8
    big = BACKBONES["vit_tiny"](img_size=224).eval()
    assert big.patch_embed.proj.kernel_size == (16, 16)
    assert big.forward_map(torch.randn(1, 3, 224, 224)).shape == (1, 192, 14, 14)
    with pytest.raises(ValueError, match="patch_size 7 must divide data.img_size 48"):
        BACKBONES["vit_tiny"](img_size=48, patch_size=7)
    with pytest.raises(ValueError, match="ViT archs only"):
        BACKBONES["small_cnn"](patch_size=8)


def test_map_holds_the_patch_tokens_and_the_feature_is_maes_mean_then_fc_norm():
    backbone = BACKBONES["vit_tiny"](img_size=48, patch_size=12).eval()
    torch.nn.init.normal_(backbone.fc_norm.weight)
    x = torch.randn(3, 3, 48, 48)
    tokens = backbone.forward_features(x)[:, 1:]  # the class token is left out
    fmap = backbone.forward_map(x)
    assert torch.equal(fmap[:, :, 1, 2], tokens[:, 1 * 4 + 2])
    expected = backbone.fc_norm(tokens.mean(dim=1))
    assert torch.allclose(backbone(x), expected, atol=1e-5)
    assert torch.allclose(
        backbone(x), backbone.forward_head(backbone.forward_features(x), pre_logits=True), atol=1e-5
    )  # timm's own avg-pool + fc_norm head agrees


def test_dta_snl_attention_acts_on_the_token_map():
    cfg = load_config("demo", ["method.name=dta_snl", "model.arch=vit_tiny", "model.patch_size=12", "data.img_size=48"])
    model = build_model(cfg, 7)
    model.eval()
    x = torch.randn(2, 3, 48, 48)
    base, out = model.backbone.forward_map(x), model.feature_map(x)
    assert out.shape == base.shape == (2, 192, 4, 4)
    assert not torch.allclose(out, base)  # x * (1 + a) with a in (0, 1)
    assert torch.all(out.abs() >= base.abs() - 1e-6) and torch.all(out.abs() <= 2 * base.abs() + 1e-6)
    logits, feature = model(x, features=True)
    assert torch.allclose(feature, model.backbone.pool_map(out), atol=1e-6) and logits.shape == (2, 7)


def test_drop_path_is_maes_01_by_default_and_configurable():
    blocks = BACKBONES["vit_tiny"]().blocks
    rates = [b.drop_path1.drop_prob if isinstance(b.drop_path1, DropPath) else 0.0 for b in blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)  # timm's linear rule, as MAE fine-tunes
    assert rates == sorted(rates) and len(set(rates)) == 12
    off = build_model(
        load_config("demo", ["method.name=supervised", "model.arch=vit_tiny", "model.drop_path=0", "data.img_size=48"]),
        7,
    )
    assert not any(isinstance(m, DropPath) for m in off.modules())
    backbone = BACKBONES["vit_tiny"](img_size=48, patch_size=12, drop_path=0.5).train()
    x = torch.randn(2, 3, 48, 48)
    assert not torch.allclose(backbone(x), backbone(x))  # stochastic in training
    backbone.eval()
    assert torch.equal(backbone(x), backbone(x))


def test_layer_wise_lr_decay_groups():
    cfg = load_config(
        "demo",
        [
            "method.name=supervised",
            "train.optimizer=adamw",
            "train.lr=1e-3",
            "train.weight_decay=0.05",
            "train.layer_decay=0.75",
        ],
    ).train
    model = FERNet("vit_tiny", 7, img_size=48, patch_size=12)
    optimizer = build_optimizer(model, cfg)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    depth = 12
    expected = {
        "backbone.patch_embed.proj.weight": 0.75 ** (depth + 1),
        "backbone.cls_token": 0.75 ** (depth + 1),
        "backbone.pos_embed": 0.75 ** (depth + 1),
        "backbone.blocks.0.attn.qkv.weight": 0.75**depth,
        "backbone.blocks.11.mlp.fc2.bias": 0.75,
        "backbone.fc_norm.weight": 1.0,
        "head.weight": 1.0,
    }
    for name, scale in expected.items():
        group = group_of[id(names[name])]
        assert group["lr_scale"] == pytest.approx(scale) and group["lr"] == pytest.approx(1e-3 * scale), name
    for name in ("backbone.cls_token", "backbone.pos_embed", "backbone.blocks.3.norm1.weight", "head.bias"):
        assert group_of[id(names[name])]["weight_decay"] == 0.0, name
    assert group_of[id(names["backbone.blocks.3.attn.qkv.weight"])]["weight_decay"] == 0.05
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # the logged lr is the head's
    scheduler = build_scheduler(optimizer, cfg, 100)
    optimizer.step()
    scheduler.step()
    embed = group_of[id(names["backbone.pos_embed"])]
    assert embed["lr"] / optimizer.param_groups[0]["lr"] == pytest.approx(0.75 ** (depth + 1))


def test_layer_decay_needs_a_layered_backbone():
    cfg = load_config("demo", ["method.name=supervised", "train.layer_decay=0.75"]).train
    with pytest.raises(ConfigError, match="train.layer_decay=0.75 needs a backbone with layers"):
        build_optimizer(torch.nn.Sequential(torch.nn.Linear(4, 4)), cfg)
    plain = load_config("demo", ["method.name=supervised"]).train
    groups = build_optimizer(FERNet("small_cnn", 7), plain).param_groups
    assert [g["weight_decay"] for g in groups] == [plain.weight_decay, 0.0]  # CNN grouping unchanged


@pytest.mark.parametrize(
    "arch, layer_of",
    [
        (
            "small_cnn",
            {"backbone.stages.0.0.weight": 0, "backbone.stages.2.1.0.weight": 2, "backbone.stages.3.0.1.bias": 3},
        ),
        (
            "resnet18",
            {
                "backbone.conv1.weight": 0,
                "backbone.bn1.bias": 0,
                "backbone.layer1.0.conv1.weight": 1,
                "backbone.layer4.1.bn2.weight": 4,
            },
        ),
    ],
)
def test_layer_decay_on_a_cnn_scales_its_stages(arch, layer_of):
    """A CNN's stages are its layers: stage i of L gets decay^(L - i), the head the full lr."""
    cfg = load_config("demo", ["method.name=supervised", "train.lr=0.1", "train.layer_decay=0.5"]).train
    model = FERNet(arch, 7)
    optimizer = build_optimizer(model, cfg)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    depth = model.backbone.num_layers
    for name, layer in layer_of.items():
        assert lr_of[id(params[name])] == pytest.approx(0.1 * 0.5 ** (depth - layer)), name
    head = [n for n in params if not n.startswith("backbone.")]
    assert head and all(lr_of[id(params[n])] == pytest.approx(0.1) for n in head)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_timm_checkpoint_at_another_size_loads_with_resampled_embeddings(tmp_path):
    source = BACKBONES["vit_tiny"](img_size=224, patch_size=16)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("fc_norm")}
    state["head.weight"] = torch.zeros(1000, 192)
    path = tmp_path / "vit_tiny_224.pth"
    torch.save({"model": state}, path)
    model = FERNet("vit_tiny", 7, img_size=48, patch_size=6)
    report = load_backbone_weights(model.backbone, path)
    assert report.unexpected == ["head.weight"] and report.missing == ["fc_norm.bias", "fc_norm.weight"]
    assert report.mismatched == [] and len(report.resampled) == 2 and "pos_embed 14x14->8x8" in str(report)
    assert model.backbone.pos_embed.shape == (1, 65, 192)
    assert torch.equal(model.backbone.pos_embed[:, 0], source.pos_embed[:, 0])  # the class token's is kept
    assert torch.equal(model.backbone.blocks[5].mlp.fc1.weight, source.blocks[5].mlp.fc1.weight)


@pytest.mark.parametrize("method", ["supervised", "fixmatch", "adacm"])
def test_vit_fernet_trains_with_methods_ema_and_evaluates(tmp_path, method):
    cfg = load_config("demo", [*TINY, f"out_dir={tmp_path}", f"method.name={method}", "train.ema=0.9"])
    result = train(cfg, progress=False)
    assert result.final is not None and 0.0 <= result.final.accuracy <= 1.0
    trainer = result.trainer
    assert trainer.step == 2 and torch.isfinite(torch.tensor(result.history[-1]["train/loss"]))
    model, info = load_model(result.run_dir / "checkpoints" / "last.pt", device="cpu")
    assert info.arch == "vit_tiny" and model.backbone.patch_size == 12
    ema = trainer.ema.module.state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())


def test_ema_averages_every_vit_weight():
    model = FERNet("vit_tiny", 7, img_size=48, patch_size=12)
    ema = ModelEMA(model, 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for (name, p), q in zip(model.named_parameters(), ema.module.parameters(), strict=True):
        assert torch.allclose(q, p - 0.5), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ddp_ranks_keep_a_vit_in_lockstep(tmp_path):
    worker = Path(__file__).parent / "helpers" / "ddp_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        str(worker),
        str(tmp_path),
        *TINY,
        "method.name=supervised",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert a["world"] == 2
    for key, value in a["model"].items():
        assert torch.allclose(value, b["model"][key], atol=1e-6), key
