"""Which runtime a :class:`~harness.runtime.base.Runtime` is, narrowed for the type checker.

A fault family that needs what one runtime alone has (signals to a local process group, a Docker
container) dispatches on ``Runtime.kind`` through these guards instead of probing for methods.
They sit above both runtimes (``base`` <- ``local``, ``compose`` <- ``kinds``), so the protocol
itself imports neither; the runtimes are imported for the checker only, because ``compose``
loads the docker SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

from harness.runtime.base import Runtime

if TYPE_CHECKING:
    from harness.runtime.compose import ComposeRuntime
    from harness.runtime.kubernetes import KubernetesRuntime
    from harness.runtime.local import LocalRuntime

__all__ = ["is_compose", "is_kubernetes", "is_local"]


def is_local(runtime: Runtime) -> TypeGuard[LocalRuntime]:
    """The runtime is the embedded local one (signals reach its process groups)."""
    return runtime.kind == "local"


def is_compose(runtime: Runtime) -> TypeGuard[ComposeRuntime]:
    """The runtime is a compose project (its members are Docker containers)."""
    return runtime.kind == "compose"


def is_kubernetes(runtime: Runtime) -> TypeGuard[KubernetesRuntime]:
    """The runtime is a Kubernetes namespace (its members are pods and nodes)."""
    return runtime.kind == "kubernetes"
