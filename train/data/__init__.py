"""Relighting data: the procedural renderer, albedo textures, the on-disk format and patch datasets."""
