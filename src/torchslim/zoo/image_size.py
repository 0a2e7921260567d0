"""Size rules shared by the model files: the small-image switch, image-size and width checks."""

from __future__ import annotations

from torchslim.errors import UserError

# At or below this size a model switches to its small-image (CIFAR/MNIST) variant.
SMALL_IMAGE_MAX = 64


def check_image_size(model: str, image_size: int, minimum: int, multiple: int = 1) -> None:
    """Raise UserError unless ``image_size`` is an int >= ``minimum`` and divisible by ``multiple``."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < minimum:
        raise UserError(f"model {model!r}: image_size must be an integer >= {minimum}, got {image_size!r}")
    if image_size % multiple:
        raise UserError(f"model {model!r}: image_size must be a multiple of {multiple}, got {image_size}")


def check_width_mult(model: str, width_mult: float, key: str = "width_mult") -> float:
    """``width_mult`` as a float in (0, 4] (a width or depth multiplier named ``key``), else a UserError."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not 0 < width_mult <= 4:
        raise UserError(f"model {model!r}: {key} must be a number in (0, 4], got {width_mult!r}")
    return float(width_mult)
