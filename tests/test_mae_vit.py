"""MAE for a ViT (`semifer pretrain` with model.arch=vit_*): visible tokens only in the encoder, the mask
ratio, the loss on masked patches against normalised targets, un-shuffling, MAE's checkpoint key names."""

import pytest
import torch
from timm.layers import DropPath

from semifer.config import load_config
from semifer.engine.pretraining import Pretrainer, pretrain
from semifer.errors import ConfigError
from semifer.models import BACKBONES, FERNet, load_backbone_weights
from semifer.pretrain import masked_patch_loss, pretrain_options, random_patch_mask
from semifer.pretrain.mae import masked_autoencoder
from semifer.pretrain.masking import patch_targets, pixel_mask
from semifer.pretrain.vit_mae import ViTMaskedAutoencoder, shuffle_indices, sincos_pos_embed

PRETRAIN = [
    "data.train=synthetic:?n=32",
    "data.workers=0",
    "train.epochs=1",
    "train.iters_per_epoch=2",
    "train.batch_size=4",
    "model.arch=vit_tiny",
    "pretrain.decoder_dim=32",
    "pretrain.decoder_depth=1",
    "pretrain.decoder_heads=2",
    "pretrain.norm_pix_loss=true",
    "pretrain.preview=2",
]


def tiny_mae(patch: int = 6) -> ViTMaskedAutoencoder:
    torch.manual_seed(0)
    return ViTMaskedAutoencoder(BACKBONES["vit_tiny"](img_size=48, patch_size=patch, drop_path=0.0), 32, 1, 2)


def test_encoder_sees_only_the_visible_tokens_and_the_class_token():
    model = tiny_mae().eval()
    seen = []
    model.backbone.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    mask = random_patch_mask(3, 64, 0.75)
    model(torch.randn(3, 3, 48, 48), mask)
    assert seen == [torch.Size([3, 1 + 64 - 48, 192])]  # 1 + 0.25 N


def test_hidden_pixels_never_reach_the_encoder():
    model = tiny_mae().eval()
    torch.manual_seed(1)
    images, mask = torch.randn(2, 3, 48, 48), random_patch_mask(2, 64, 0.75)
    hidden = pixel_mask(mask, 6, 48, 48).bool().expand(-1, 3, -1, -1)
    with torch.no_grad():
        out = model(images, mask)
        assert torch.equal(out, model(torch.where(hidden, torch.randn_like(images), images), mask))
        visible_changed = torch.where(hidden, images, images + 1.0)
        assert not torch.allclose(out, model(visible_changed, mask))


def test_mask_ratio_is_exact_per_image_and_drawn_per_image():
    torch.manual_seed(0)
    for patches in (64, 144, 196):
        mask = random_patch_mask(6, patches, 0.75)
        assert mask.sum(dim=1).tolist() == [round(0.75 * patches)] * 6
        assert len({tuple(row.tolist()) for row in mask}) == 6


def test_ids_restore_unshuffles_and_visible_tokens_come_first():
    torch.manual_seed(0)
    mask = random_patch_mask(4, 64, 0.75)
    tokens = torch.randn(4, 64, 5)
    ids_shuffle, ids_restore = shuffle_indices(mask)
    shuffled = torch.gather(tokens, 1, ids_shuffle.unsqueeze(-1).expand(-1, -1, 5))
    assert torch.equal(torch.gather(shuffled, 1, ids_restore.unsqueeze(-1).expand(-1, -1, 5)), tokens)
    for row in range(4):
        visible = set(ids_shuffle[row, :16].tolist())
        assert visible == set((mask[row] == 0).nonzero().flatten().tolist())


def test_loss_counts_masked_patches_only_against_normalised_targets():
    model = tiny_mae()
    torch.manual_seed(2)
    images, mask = torch.randn(2, 3, 48, 48), random_patch_mask(2, 64, 0.75)
    prediction = model(images, mask)
    loss = masked_patch_loss(prediction, images, mask, 6, norm_pix=True)
    hidden = pixel_mask(mask, 6, 48, 48).bool().expand(-1, 3, -1, -1)
    changed = torch.where(hidden, prediction, prediction + 3.0)
    assert torch.equal(masked_patch_loss(changed, images, mask, 6, norm_pix=True), loss)
    loss.backward()
    assert model.decoder_pred.weight.grad.abs().sum() > 0 and model.mask_token.grad.abs().sum() > 0
    assert model.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    targets = patch_targets(images * 3 + 1, 6, norm_pix=True)
    assert torch.allclose(targets.mean(dim=-1), torch.zeros(2, 64), atol=1e-5)
    assert torch.allclose(targets.var(dim=-1), torch.ones(2, 64), atol=1e-3)


def test_fixed_sincos_position_embeddings_as_mae():
    table = sincos_pos_embed(16, 3)
    assert table.shape == (1, 10, 16) and torch.all(table[0, 0] == 0)
    row, col = 2, 1
    token = table[0, 1 + row * 3 + col]
    assert token[0] == pytest.approx(torch.tensor(float(col)).sin().item())  # first half: the column
    assert token[4] == pytest.approx(torch.tensor(float(col)).cos().item())
    assert token[8] == pytest.approx(torch.tensor(float(row)).sin().item())  # second half: the row
    model = tiny_mae()
    assert not model.backbone.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad
    assert torch.equal(model.backbone.pos_embed, sincos_pos_embed(192, 8))


def test_mae_format_checkpoint_round_trip_into_a_vit_fernet(tmp_path):
    model = tiny_mae()
    state = model.mae_state_dict()
    for key in (
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "blocks.0.attn.qkv.weight",
        "norm.weight",
        "mask_token",
        "decoder_embed.weight",
        "decoder_pos_embed",
        "decoder_blocks.0.attn.qkv.weight",
        "decoder_norm.weight",
        "decoder_pred.weight",
    ):
        assert key in state, key
    assert not any(k.startswith(("backbone.", "fc_norm.")) for k in state)
    path = tmp_path / "checkpoint-mae.pth"
    torch.save({"model": state, "epoch": 1}, path)  # the layout of MAE's official checkpoints
    net = FERNet("vit_tiny", 7, img_size=48, patch_size=6)
    report = load_backbone_weights(net.backbone, path)
    decoder = {k for k in state if k.startswith("decoder_") or k == "mask_token"}
    assert set(report.unexpected) == decoder | {"norm.weight", "norm.bias"}  # MAE's fine-tuning drops `norm`
    assert report.missing == ["fc_norm.bias", "fc_norm.weight"]  # ... and starts fc_norm fresh, as MAE asserts
    assert report.mismatched == [] and report.resampled == []
    for key, value in model.encoder_state_dict().items():
        if not key.startswith("norm."):
            assert torch.equal(net.backbone.state_dict()[key], value), key


def test_vit_patch_is_the_masking_patch_and_options_are_checked():
    assert pretrain_options(load_config("pretrain_mae", ["model.arch=vit_tiny"])).patch_size == 6
    assert pretrain_options(load_config("pretrain_mae", ["model.arch=vit_tiny", "data.img_size=224"])).patch_size == 16
    assert pretrain_options(load_config("pretrain_mae_vit_tiny_fer2013")).patch_size == 6
    with pytest.raises(ConfigError, match="differs from the ViT's patch 6"):
        pretrain_options(load_config("pretrain_mae", ["model.arch=vit_tiny", "pretrain.patch_size=8"]))
    opts = pretrain_options(load_config("pretrain_mae", ["model.arch=vit_tiny"]))
    cnn = masked_autoencoder(BACKBONES["small_cnn"](), 48, pretrain_options(load_config("pretrain_mae")))
    assert isinstance(masked_autoencoder(BACKBONES["vit_tiny"](drop_path=0.0), 48, opts), ViTMaskedAutoencoder)
    assert not isinstance(cnn, ViTMaskedAutoencoder)


def test_semifer_pretrain_with_a_vit_writes_an_mae_encoder_that_fine_tuning_loads(tmp_path):
    cfg = load_config("pretrain_mae", [*PRETRAIN, f"out_dir={tmp_path}"])
    result = pretrain(cfg, progress=False)
    assert result.history[-1]["step"] == 2 and result.history[-1]["train/loss"] > 0
    assert cfg.train.lr == pytest.approx(1.5e-4 * 4 / 256)
    assert (result.run_dir / "plots" / "reconstructions.png").is_file()
    net = FERNet("vit_tiny", 7, img_size=48)
    report = load_backbone_weights(net.backbone, result.checkpoint)
    assert report.unexpected == ["norm.bias", "norm.weight"] and report.missing == ["fc_norm.bias", "fc_norm.weight"]
    trained = torch.load(result.run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert torch.equal(net.backbone.blocks[0].attn.qkv.weight, trained["backbone.blocks.0.attn.qkv.weight"])


def test_mae_pretrains_without_drop_path_unless_asked(tmp_path):
    plain = Pretrainer(load_config("pretrain_mae", [*PRETRAIN, f"out_dir={tmp_path}"]), tmp_path, progress=False)
    assert isinstance(plain.model, ViTMaskedAutoencoder)
    assert not any(isinstance(m, DropPath) for m in plain.model.modules())
    asked = Pretrainer(load_config("pretrain_mae", [*PRETRAIN, "model.drop_path=0.2"]), tmp_path, progress=False)
    assert any(isinstance(m, DropPath) for m in asked.model.modules())
