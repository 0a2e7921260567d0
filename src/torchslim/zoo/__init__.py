"""Reference models registered by name, the test bed for every compression technique.

Plain PyTorch written by hand (no torchvision): standard ``nn`` layers and small block
classes, out-of-place residual adds, so each model traces with torch.export and fx and
exports to ONNX. ``create_model("zoo:resnet20")`` builds one; ``list_models()`` lists them.
"""

# Importing the model files fills the registry.
from torchslim.zoo import (  # noqa: F401
    densenet,
    efficientnet,
    lenet,
    mobilenet,
    mobilenetv3,
    resnet,
    shufflenet,
    squeezenet,
    vgg,
    vit,
)
from torchslim.zoo.registry import (
    ModelInfo,
    create_model,
    example_input,
    list_models,
    model_info,
    register_model,
)

__all__ = ["ModelInfo", "create_model", "example_input", "list_models", "model_info", "register_model"]
