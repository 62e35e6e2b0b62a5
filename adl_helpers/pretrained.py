"""Pretrained backbones (being written)."""
