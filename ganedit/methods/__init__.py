"""Training recipes, found by name: every module ``ganedit/methods/<file>.py`` that defines a subclass of
:class:`ganedit.methods.base.Method` with a non-empty ``name`` is a method; ``ganedit train <name>`` runs it.
Adding a method is adding one file (see the module docstring of ``ganedit.methods.base``)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Dict, List, Tuple, Type

from ganedit.errors import ConfigError
from ganedit.methods.base import Method, StepContext, eval_mode, set_requires_grad

__all__ = ["Method", "StepContext", "available_methods", "get_method", "set_requires_grad", "eval_mode"]

_SKIP = {"base"}


def _module_names() -> List[str]:
    import ganedit.methods as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name not in _SKIP and not m.name.startswith("_"))


def _methods_in(module_name: str) -> List[Type[Method]]:
    module = importlib.import_module(f"ganedit.methods.{module_name}")
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Method) and obj.name and obj.__module__ == module.__name__
    ]


def _scan() -> Tuple[Dict[str, Type[Method]], Dict[str, str]]:
    found: Dict[str, Type[Method]] = {}
    broken: Dict[str, str] = {}
    for module_name in _module_names():
        try:
            classes = _methods_in(module_name)
        except Exception as exc:  # one broken recipe must not hide the others; say why it is missing
            broken[module_name] = f"{type(exc).__name__}: {exc}"
            continue
        for cls in classes:
            if cls.name in found and found[cls.name] is not cls:
                raise ConfigError(f"method name {cls.name!r} is defined twice ({found[cls.name].__module__}, {cls.__module__})")
            found[cls.name] = cls
    return found, broken


def available_methods() -> Dict[str, Type[Method]]:
    """All methods by name (imports every module of ganedit.methods)."""
    return _scan()[0]


def get_method(name: str) -> Type[Method]:
    """The Method subclass called ``name``; a ConfigError lists the known names otherwise."""
    if name in _module_names():  # fast path: the usual layout is one file named like its method
        try:
            for cls in _methods_in(name):
                if cls.name == name:
                    return cls
        except ImportError:
            pass
    found, broken = _scan()
    if name in found:
        return found[name]
    known = ", ".join(sorted(found)) or "none"
    extra = "".join(f"; module {m} failed to import ({err})" for m, err in broken.items())
    raise ConfigError(f"unknown method {name!r} (known: {known}){extra}")
