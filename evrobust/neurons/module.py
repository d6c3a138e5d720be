"""``IFNeuron``: the thin ``nn.Module`` around the multi-step dynamics, with a settable gradient spec."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.neurons.assg import AssgState, assg_multistep
from evrobust.neurons.backends import get_backend, require_support
from evrobust.neurons.functional import check_neuron_params, check_time_major
from evrobust.neurons.spec import DEFAULT_SPEC, GradSpec

__all__ = ["IFNeuron"]


class IFNeuron(nn.Module):
    """Multi-step IF/LIF neuron layer: ``forward(x [T, ...]) -> spikes [T, ...]`` in {0, 1}.

    Stateless between calls (every forward starts from ``u = 0``), without parameters or buffers, so a model's
    ``state_dict`` does not depend on the backend and a checkpoint loads under any backend. The one exception
    is opt-in: :meth:`enable_input_gain` adds DLIF's learnable per-step input gain ``input_gain`` ``[T]``
    (then, and only then, the layer has a parameter and a state-dict key).

    Args:
        backend: ``native`` | ``spikingjelly`` | ``norse`` (see :func:`evrobust.neurons.list_backends`).
        spec: gradient spec (``GradSpec`` or text such as ``"triangle:1"``); settable via ``.spec``, or for a
            whole model temporarily with :func:`evrobust.neurons.gradient_spec`. Crafting-only specs
            (``bptr``, ``ann``, ``assg``, ``pdsg``) are refused here and by the setter: they apply only inside
            ``gradient_spec``.
        tau: leak factor in [0, 1] (1 = IF).
        theta: firing threshold > 0.
    """

    def __init__(
        self,
        backend: str = "native",
        spec: GradSpec | str = DEFAULT_SPEC,
        tau: float = 1.0,
        theta: float = 1.0,
    ) -> None:
        super().__init__()
        check_neuron_params(tau, theta)
        self.tau = float(tau)
        self.theta = float(theta)
        # Only the backend's name is stored (backend objects are shared singletons), so deepcopy and pickling
        # of a model stay cheap and do not drag library state along.
        self._spec = _own_spec(spec)
        require_support(get_backend(backend), self._spec, self.tau, self.theta)
        self._backend_name = backend
        # Per-attack ASSG statistics; set and cleared only by gradient_spec (a plain attribute, not a buffer,
        # so it never reaches a state dict).
        self._assg_state: AssgState | None = None
        # Set and restored only by record_neurons / membrane_noise (evrobust.neurons.recording): plain
        # attributes, never in a state dict, never a persistent switch.
        self._recorder = None
        self._noise_std = 0.0

    def enable_input_gain(self, T: int) -> None:
        """Add DLIF's learnable per-step input gain: the dynamics integrate ``gain[t] * I[t]``.

        ``input_gain`` is a parameter ``[T]`` initialised to ones (so the layer computes exactly what it did
        before until training moves it); calling this twice with the same ``T`` is a no-op.
        """
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise UserInputError(f"input gain needs the number of time steps T >= 1 (got {T!r})")
        gain = getattr(self, "input_gain", None)
        if isinstance(gain, nn.Parameter):
            if gain.shape[0] != T:
                raise UserInputError(
                    f"this layer already has an input gain over {gain.shape[0]} steps, not {T}"
                )
            return
        self.input_gain = nn.Parameter(torch.ones(T))

    @property
    def backend(self) -> str:
        """Name of the backend that runs the dynamics; settable (validated against the current spec)."""
        return self._backend_name

    @backend.setter
    def backend(self, name: str) -> None:
        require_support(get_backend(name), self._spec, self.tau, self.theta)
        self._backend_name = name

    @property
    def spec(self) -> GradSpec:
        """Gradient spec used by the backward pass; settable (a ``GradSpec`` or its text form)."""
        return self._spec

    @spec.setter
    def spec(self, value: GradSpec | str) -> None:
        self._use_spec(_own_spec(value), None)

    def _use_spec(self, spec: GradSpec, state: AssgState | None) -> None:
        """Switch spec (validated against the backend) and ASSG state; for gradient_spec and the setter."""
        require_support(get_backend(self._backend_name), spec, self.tau, self.theta)
        self._spec = spec
        self._assg_state = state

    def forward(self, x: Tensor) -> Tensor:
        """Spikes for input current ``x`` of shape ``[T, ...]`` (time first); same shape and dtype.

        Under the ``ann`` crafting spec the output is ``relu(x) / theta`` instead (same shape). With the input
        gain on, ``x[t]`` is first scaled by ``input_gain[t]``; inside ``membrane_noise`` Gaussian noise is
        added to the (scaled) current; inside ``record_neurons`` the call is recorded.
        """
        check_time_major(x)
        current = x
        gain = self._parameters.get("input_gain")
        if gain is not None:
            if gain.shape[0] != x.shape[0]:
                raise UserInputError(
                    f"this layer's input gain covers {gain.shape[0]} time steps, the input has {x.shape[0]}"
                )
            x = x * gain.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        noise = getattr(self, "_noise_std", 0.0)
        if noise > 0.0:
            x = x + noise * torch.randn_like(x)
        spikes = self._run(x)
        recorder = getattr(self, "_recorder", None)
        if recorder is not None:
            from evrobust.neurons.recording import NeuronTrace  # recording imports this module

            recorder.traces.append(NeuronTrace(self, current, x, spikes))
        return spikes

    def _run(self, x: Tensor) -> Tensor:
        if self._spec.stateful:
            state = getattr(self, "_assg_state", None)
            if state is None:
                raise UserInputError(f"gradient spec {str(self._spec)!r} runs only inside gradient_spec()")
            return assg_multistep(x, state, self.tau, self.theta)
        return get_backend(self._backend_name).run(x, self._spec, self.tau, self.theta)

    def extra_repr(self) -> str:
        gain = self._parameters.get("input_gain")
        extra = f", input_gain=[{gain.shape[0]}]" if gain is not None else ""
        return f"backend={self.backend}, spec={self._spec}, tau={self.tau:g}, theta={self.theta:g}{extra}"


def _own_spec(value: GradSpec | str) -> GradSpec:
    """Parse a spec a neuron may carry as its own; crafting-only specs raise :class:`UserInputError`."""
    spec = GradSpec.parse(value)
    if spec.crafting_only:
        raise UserInputError(
            f"gradient spec {str(spec)!r} is for crafting attacks only (it changes the forward pass, keeps "
            "per-attack statistics or pools statistics over the attacked batch); use it as an attack's spec "
            "or ensemble member, or inside gradient_spec(model, spec), never as a model's own spec"
        )
    return spec
