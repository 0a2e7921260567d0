"""Import a user's object by path, ``"package.module:name"`` (``name`` may be dotted, e.g.
``models:Net.build``), with one-line errors naming what failed: the path's form, the module,
the attribute.
"""

from __future__ import annotations

import importlib
from typing import Any

from torchslim.errors import UserError


def import_object(path: str) -> Any:
    """The object ``path`` names; its module is imported (that runs the user's module code)."""
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr or not all(p.isidentifier() for p in attr.split(".")):
        raise UserError(f"'{path}': expected an import path like 'my_pkg.models:make_net'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise UserError(f"'{path}': module '{module_name}' is not importable (no module named "
                            f"'{missing}'; is its folder the current directory or on PYTHONPATH?)") from exc
        raise UserError(f"'{path}': importing module '{module_name}' failed ({exc})") from exc
    except Exception as exc:  # the user's module raised while importing: their code, named; --debug has the traceback
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UserError(f"'{path}': importing module '{module_name}' failed ({type(exc).__name__}: {first})") from exc
    obj: Any = module
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            owner = module_name if i == 0 else f"{module_name}:{'.'.join(attr.split('.')[:i])}"
            raise UserError(f"'{path}': '{owner}' has no attribute '{part}'")
        obj = getattr(obj, part)
    return obj
