"""``AugmentConfig``: which training-batch augmentations to apply and how strongly (the
transforms themselves are in :mod:`nasdepth.data.augment`). No torch here: a study file's
``augment`` block is checked without it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from nasdepth.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class AugmentConfig:
    """``flip``: probability of a horizontal flip; ``crop_padding``: pad by this many pixels
    (zeros) and crop back at a random offset; ``rotation``: max degrees either way;
    ``color_jitter``: strength s of random brightness/contrast (and saturation for RGB)
    factors in [1 - s, 1 + s]. All zero: off."""

    flip: float = 0.0
    crop_padding: int = 0
    rotation: float = 0.0
    color_jitter: float = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.flip or self.crop_padding or self.rotation or self.color_jitter)

    def validate(self, source: str = "the training settings") -> AugmentConfig:
        checks = (("flip", 0.0, 1.0), ("rotation", 0.0, 180.0), ("color_jitter", 0.0, 1.0))
        for key, low, high in checks:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
                raise ConfigError(source, f"augment.{key}", v, f"a number in [{low}, {high}]")
        p = self.crop_padding
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise ConfigError(source, "augment.crop_padding", p, "an int >= 0")
        return self

    def check_input(self, input_shape: tuple[int, ...], source: str) -> None:
        """Flips and crops need 1-D or 2-D samples; rotation and colour need images."""
        if not self.enabled:
            return
        if len(input_shape) == 1:
            raise ConfigError(source, "augment", self.to_dict(),
                              "off for flat features (augmentation needs 1-D or 2-D samples)")
        if len(input_shape) == 2 and (self.rotation or self.color_jitter):
            raise ConfigError(source, "augment", self.to_dict(),
                              "flip and crop_padding only for 1-D samples")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, source: str = "the training settings") -> AugmentConfig:
        if isinstance(d, AugmentConfig):
            return d.validate(source)
        if not d:
            return cls()
        if not isinstance(d, dict):
            raise ConfigError(source, "augment", d,
                              "a mapping such as {flip: 0.5, crop_padding: 2}")
        valid = {f.name for f in fields(cls)}
        for key in d:
            if key not in valid:
                raise UnknownNameError(source, "augment key", key, valid)
        return cls(**d).validate(source)
