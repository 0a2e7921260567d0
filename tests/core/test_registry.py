import pytest

from torchslim.core.registry import Registry, techniques
from torchslim.errors import UserError


def test_unknown_name_lists_known_ones():
    reg = Registry("widget")
    reg.add("b", 2)
    reg.add("a", 1)
    assert reg.names() == ["a", "b"]
    with pytest.raises(UserError, match=r"unknown widget 'c' \(known: a, b\)"):
        reg.get("c")


def test_registering_twice_is_an_error():
    reg = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)


def test_builtin_techniques_are_registered_with_their_config():
    registry = techniques()
    assert "fold.bn" in registry
    technique = registry.get("fold.bn")
    assert technique.config_cls.name == "fold.bn"
    assert technique.summary
