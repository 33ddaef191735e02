import pytest
import torch
from torchvision.models import resnet18

from semifer.errors import SemiferError
from semifer.models import FERNet, load_backbone_weights


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
