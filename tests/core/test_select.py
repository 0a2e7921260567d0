from torch import nn

from torchslim.core.select import select_layers


def _net():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()),
        nn.Sequential(nn.Conv2d(2, 2, 3), nn.Linear(2, 2)),
        nn.Linear(2, 3),
    )


def test_types_and_prefix_patterns():
    net = _net()
    assert [n for n, _ in select_layers(net, (nn.Conv2d,))] == ["0.0", "1.0"]
    assert [n for n, _ in select_layers(net, (nn.Conv2d, nn.Linear), exclude=("1",))] == ["0.0", "2"]
    assert [n for n, _ in select_layers(net, (nn.Linear,), include=("1",))] == ["1.1"]


def test_regex_patterns_match_whole_names():
    net = _net()
    assert [n for n, _ in select_layers(net, (nn.Module,), include=(r"re:\d\.0",))] == ["0.0", "1.0"]
    assert [n for n, _ in select_layers(net, (nn.Linear,), exclude=("re:1",))] == ["1.1", "2"]
