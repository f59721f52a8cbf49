"""Data shared by more than one family: the procedural scene renderer, albedo textures, and image files."""
