"""Methods: the interface (base), the registry, and spbench's own methods."""

from spbench.methods.base import Method
from spbench.methods.registry import get_method_class, method_names

__all__ = ["Method", "get_method_class", "method_names"]
