"""Methods: the interface (base), the registry, and spbench's own methods."""

from spbench.methods.base import GenerationSettings, Method, MethodContext, Request
from spbench.methods.registry import get_method_class, method_names

__all__ = ["GenerationSettings", "Method", "MethodContext", "Request", "get_method_class", "method_names"]
