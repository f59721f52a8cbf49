"""Lean runtime for edgelight models on video (numpy and OpenCV only; backends load lazily).

Not built yet: the runners, the CUDA layer and the video pipeline are tracked in their own issue.
"""
