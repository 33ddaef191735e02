import pytest
import torch
from torchvision.models import resnet18

from semifer.config import load_config
from semifer.errors import ConfigError, SemiferError
from semifer.methods import Method
from semifer.models import BACKBONES, FERNet, create_model, list_models, load_backbone_weights, load_model
from semifer.models.classifier import LocalAttention


def test_resnet18_loads_a_torchvision_style_checkpoint_with_report(tmp_path):
    source = resnet18(num_classes=1000)
    torch.nn.init.constant_(source.layer4[1].bn2.weight, 0.123)
    path = tmp_path / "msceleb.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = FERNet("resnet18", 7, dropout=0.5, l2norm=True)
    report = load_backbone_weights(model.backbone, path, strict=True)
    assert torch.allclose(model.backbone.layer4[1].bn2.weight, torch.full((512,), 0.123))
    assert report.missing == [] and report.unexpected == ["fc.bias", "fc.weight"]
    assert "2 unexpected" in str(report)


def test_partial_checkpoint_reports_missing_and_strict_fails(tmp_path):
    state = {k: v for k, v in resnet18().state_dict().items() if not k.startswith("layer4")}
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    model = FERNet("resnet18", 7)
    report = load_backbone_weights(model.backbone, path)
    assert any(k.startswith("layer4") for k in report.missing)
    with pytest.raises(SemiferError, match="strict"):
        load_backbone_weights(model.backbone, path, strict=True)
    with pytest.raises(SemiferError, match="not found"):
        load_backbone_weights(model.backbone, tmp_path / "nope.pth")


def test_adacm_head_is_unit_feature_and_returns_it():
    model = FERNet("small_cnn", 7, dropout=0.5, l2norm=True).eval()
    logits, feature = model(torch.randn(4, 3, 48, 48), features=True)
    assert logits.shape == (4, 7)
    assert torch.allclose(feature.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(logits, model.head(feature))


def test_list_models_names_every_architecture_and_filters():
    assert list_models() == list(BACKBONES)
    assert list_models("vit_*") == ["vit_tiny", "vit_small", "vit_base"]
    assert list_models("nothing*") == []


def test_create_model_from_an_arch_takes_fernet_options_and_a_backbone_file(tmp_path):
    model = create_model("small_cnn", 5, l2norm=True, attention=True)
    assert isinstance(model, FERNet) and model.num_classes == 5 and model.l2norm
    assert isinstance(model.attention, LocalAttention)
    source = FERNet("small_cnn", 7).backbone
    torch.nn.init.constant_(source.stages[0][1].weight, 0.25)
    path = tmp_path / "backbone.pt"
    torch.save(source.state_dict(), path)
    loaded = create_model("small_cnn", pretrained=path)
    assert torch.equal(loaded.backbone.stages[0][1].weight, source.stages[0][1].weight)
    with pytest.raises(ValueError, match="unknown arch"):
        create_model("alexnet")


def test_create_model_from_a_config_loads_its_weights_and_keeps_the_reports(tmp_path):
    source = FERNet("small_cnn", 7).backbone
    torch.nn.init.constant_(source.stages[0][1].weight, 0.5)
    path = tmp_path / "backbone.pt"
    torch.save(source.state_dict(), path)
    cfg = load_config("demo", ["method.name=supervised", f"model.pretrained={path}"])
    for key, value in Method.head.items():
        setattr(cfg.model, key, value)
    model = create_model(cfg, 7, run_dir=tmp_path)
    assert torch.equal(model.backbone.stages[0][1].weight, source.stages[0][1].weight)
    assert (tmp_path / "pretrained_load.txt").read_text().startswith("loaded ")
    fresh = create_model(cfg, 7, pretrained=False)
    assert not torch.equal(fresh.backbone.stages[0][1].weight, source.stages[0][1].weight)
    assert create_model(cfg, 7, dropout=0.3, img_size=64).dropout.p == 0.3


def test_create_model_refuses_a_config_whose_head_is_not_resolved():
    with pytest.raises(ConfigError, match="model.dropout"):
        create_model(load_config("demo", ["method.name=adacm"]), 7)


def test_load_model_opens_a_run_and_its_export_alike(tiny_run, tmp_path):
    from semifer.inference.export import export_model

    model, info = load_model(tiny_run, device="cpu")
    assert not model.training and info.arch == model.arch and len(info.classes) == model.num_classes
    export_model(tiny_run, "safetensors", tmp_path / "export")
    exported, exported_info = load_model(tmp_path / "export", device="cpu")
    assert exported_info.classes == info.classes
    x = torch.randn(2, 3, info.img_size, info.img_size)
    with torch.no_grad():
        assert torch.allclose(model(x), exported(x), atol=1e-6)
