"""A tiny image classifier for the safety check, built offline and loaded back from disk."""

from __future__ import annotations

from pathlib import Path


def tiny_classifier(path: Path, unsafe: bool) -> Path:
    """A randomly initialised 1-layer ViT with labels safe/nsfw, saved with save_pretrained;
    its classifier head is zeroed and biased so it always picks nsfw (`unsafe`) or safe."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, id2label={0: "safe", 1: "nsfw"}, label2id={"safe": 0, "nsfw": 1},
    )  # fmt: skip
    model = ViTForImageClassification(config)
    head = model.classifier
    assert isinstance(head, torch.nn.Linear)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([-4.0, 4.0] if unsafe else [4.0, -4.0]))
    model.save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path
