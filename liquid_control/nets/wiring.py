"""Wirings: which neuron talks to which, with what polarity (ncps 1.0.1 semantics).

A wiring holds an ``adjacency_matrix`` (units x units, entries -1/0/+1: polarity of the synapse
src -> dest) and, once built for an input width, a ``sensory_adjacency_matrix`` (inputs x units).
Neurons ``0 .. output_dim-1`` are the motor (output) neurons, as in ncps. ``neuron_groups()`` names the
neurons of each group (sensory / inter / command / motor) for plots. Wherever a cell takes a size, a
wiring object may stand instead (an int means :class:`FullyConnected`).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Wiring:
    """A generic wiring: explicit adjacency matrices plus optional named neuron layers."""

    def __init__(self, units: int, output_dim: int | None = None) -> None:
        self.units = _check_positive_int("units", units)
        self.adjacency_matrix = np.zeros((self.units, self.units), dtype=np.int32)
        self.sensory_adjacency_matrix: np.ndarray | None = None
        self.input_dim: int | None = None
        self.output_dim: int = (
            self.units if output_dim is None else _check_positive_int("output_dim", output_dim)
        )
        if self.output_dim > self.units:
            raise ValueError(f"output_dim ({self.output_dim}) cannot exceed units ({self.units})")
        # layers in processing order (input side first); used by the wired CfC
        self._layers: list[list[int]] = [list(range(self.units))]

    # ----- structure -------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        if not 0 <= layer_id < len(self._layers):
            raise ValueError(f"unknown layer {layer_id} (wiring has {len(self._layers)})")
        return list(self._layers[layer_id])

    def neuron_groups(self) -> dict[str, list[int]]:
        """Neuron ids by group: 'motor', 'command', 'inter' (internal) and 'sensory' (input ids)."""
        motor = list(range(self.output_dim))
        groups = {"motor": motor, "command": [], "inter": list(range(self.output_dim, self.units))}
        groups["sensory"] = list(range(self.input_dim or 0))
        return groups

    def get_type_of_neuron(self, neuron_id: int) -> str:
        for name, ids in self.neuron_groups().items():
            if name != "sensory" and neuron_id in ids:
                return name
        raise ValueError(f"neuron {neuron_id} out of range (units={self.units})")

    # ----- building --------------------------------------------------------------------------
    def is_built(self) -> bool:
        return self.input_dim is not None

    def build(self, input_dim: int) -> None:
        """Fix the input width (creates the sensory synapses); idempotent for the same width."""
        input_dim = _check_positive_int("input_dim", input_dim)
        if self.input_dim is not None:
            if self.input_dim != input_dim:
                raise ValueError(f"wiring was built for {self.input_dim} inputs, not {input_dim}")
            return
        self.input_dim = input_dim
        self.sensory_adjacency_matrix = np.zeros((input_dim, self.units), dtype=np.int32)
        self._build_sensory()

    def _build_sensory(self) -> None:
        """Hook for subclasses: add the sensory synapses (input_dim is set)."""

    def add_synapse(self, src: int, dest: int, polarity: int) -> None:
        if not (0 <= src < self.units and 0 <= dest < self.units):
            raise ValueError(f"synapse {src}->{dest} out of range for {self.units} units")
        if polarity not in (-1, 1):
            raise ValueError(f"polarity must be -1 or +1, got {polarity}")
        self.adjacency_matrix[src, dest] = polarity

    def add_sensory_synapse(self, src: int, dest: int, polarity: int) -> None:
        if self.sensory_adjacency_matrix is None:
            raise ValueError("build(input_dim) the wiring before adding sensory synapses")
        if not (0 <= src < self.sensory_adjacency_matrix.shape[0] and 0 <= dest < self.units):
            raise ValueError(f"sensory synapse {src}->{dest} out of range")
        if polarity not in (-1, 1):
            raise ValueError(f"polarity must be -1 or +1, got {polarity}")
        self.sensory_adjacency_matrix[src, dest] = polarity

    # ----- inspection ------------------------------------------------------------------------
    @property
    def synapse_count(self) -> int:
        return int(np.abs(self.adjacency_matrix).sum())

    @property
    def sensory_synapse_count(self) -> int:
        if self.sensory_adjacency_matrix is None:
            return 0
        return int(np.abs(self.sensory_adjacency_matrix).sum())

    def erev_initializer(self) -> np.ndarray:
        return np.copy(self.adjacency_matrix)

    def sensory_erev_initializer(self) -> np.ndarray:
        if self.sensory_adjacency_matrix is None:
            raise ValueError("wiring is not built (unknown input width)")
        return np.copy(self.sensory_adjacency_matrix)

    def get_config(self) -> dict[str, Any]:
        """A JSON-able description that :func:`wiring_from_config` turns back into this wiring."""
        return {
            "class": "Wiring",
            "units": self.units,
            "output_dim": self.output_dim,
            "input_dim": self.input_dim,
            "adjacency_matrix": self.adjacency_matrix.tolist(),
            "sensory_adjacency_matrix": None
            if self.sensory_adjacency_matrix is None
            else self.sensory_adjacency_matrix.tolist(),
            "layers": [list(layer) for layer in self._layers],
            "groups": {k: v for k, v in self.neuron_groups().items() if k != "sensory"},
        }

    @classmethod
    def from_matrices(
        cls,
        adjacency: np.ndarray,
        sensory_adjacency: np.ndarray,
        output_dim: int,
        layers: list[list[int]] | None = None,
        groups: dict[str, list[int]] | None = None,
    ) -> Wiring:
        """A wiring with the given (copied) matrices, e.g. taken from an ncps model."""
        adjacency = np.asarray(adjacency)
        sensory_adjacency = np.asarray(sensory_adjacency)
        units = adjacency.shape[0]
        if (
            adjacency.shape != (units, units)
            or sensory_adjacency.ndim != 2
            or sensory_adjacency.shape[1] != units
        ):
            raise ValueError(f"bad adjacency shapes {adjacency.shape} / {sensory_adjacency.shape}")
        w = _ExplicitWiring(units, output_dim, groups)
        w.adjacency_matrix = np.rint(adjacency).astype(np.int32)
        w.input_dim = int(sensory_adjacency.shape[0])
        w.sensory_adjacency_matrix = np.rint(sensory_adjacency).astype(np.int32)
        if layers is not None:
            w._layers = [list(map(int, layer)) for layer in layers]
        return w


class _ExplicitWiring(Wiring):
    """A wiring given by its matrices (and optionally named groups)."""

    def __init__(self, units: int, output_dim: int, groups: dict[str, list[int]] | None = None) -> None:
        super().__init__(units, output_dim)
        self._groups = None if groups is None else {k: list(map(int, v)) for k, v in groups.items()}

    def neuron_groups(self) -> dict[str, list[int]]:
        if self._groups is None:
            return super().neuron_groups()
        groups = {k: list(v) for k, v in self._groups.items() if k != "sensory"}
        groups["sensory"] = list(range(self.input_dim or 0))
        return groups


class FullyConnected(Wiring):
    """Every neuron connects to every neuron (and every input to every neuron); polarity drawn
    with probability 1/3 negative, 2/3 positive from ``numpy.random.default_rng(erev_init_seed)``."""

    def __init__(
        self,
        units: int,
        output_dim: int | None = None,
        erev_init_seed: int = 1111,
        self_connections: bool = True,
    ) -> None:
        super().__init__(units, output_dim)
        self.self_connections = self_connections
        self._erev_init_seed = erev_init_seed
        self._rng = np.random.default_rng(erev_init_seed)
        # one draw per synapse in row-major (src, dest) order, skipping self-connections if excluded
        exists = np.ones((self.units, self.units), dtype=bool)
        if not self_connections:
            np.fill_diagonal(exists, False)
        pol = np.zeros((self.units, self.units), dtype=np.int32)
        pol[exists] = self._rng.choice([-1, 1, 1], size=int(exists.sum()))
        self.adjacency_matrix = pol

    def _build_sensory(self) -> None:
        self.sensory_adjacency_matrix = self._rng.choice(
            [-1, 1, 1], size=(self.input_dim, self.units)
        ).astype(np.int32)


class RandomSparse(Wiring):
    """A random sparse wiring: a fraction ``1 - sparsity_level`` of all synapses exists, chosen
    uniformly (recurrent and sensory alike), polarity 1/3 negative."""

    def __init__(
        self, units: int, output_dim: int | None = None, sparsity_level: float = 0.5, seed: int = 1111
    ) -> None:
        super().__init__(units, output_dim)
        if not 0.0 <= sparsity_level < 1.0:
            raise ValueError(f"sparsity_level must be in [0, 1), got {sparsity_level}")
        self.sparsity_level = float(sparsity_level)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self.adjacency_matrix = self._draw(self.units, self.units)

    def _draw(self, rows: int, cols: int) -> np.ndarray:
        n = int(round(rows * cols * (1.0 - self.sparsity_level)))
        flat = np.zeros(rows * cols, dtype=np.int32)
        chosen = self._rng.choice(rows * cols, size=n, replace=False)
        flat[chosen] = self._rng.choice([-1, 1, 1], size=n)
        return flat.reshape(rows, cols)

    def _build_sensory(self) -> None:
        self.sensory_adjacency_matrix = self._draw(self.input_dim, self.units)


class NCP(Wiring):
    """Neural circuit policy wiring: sensory -> inter -> command (recurrent) -> motor.

    Neuron ids: motor ``[0, M)``, command ``[M, M+C)``, inter ``[M+C, M+C+I)`` (as ncps).
    Fan-outs are per source neuron; neurons left unreached get a mean fan-in from random sources.
    Random draws use ``numpy.random.RandomState(seed)``.
    """

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 22222,
    ) -> None:
        n_i = _check_positive_int("inter_neurons", inter_neurons)
        n_c = _check_positive_int("command_neurons", command_neurons)
        n_m = _check_positive_int("motor_neurons", motor_neurons)
        super().__init__(n_i + n_c + n_m, n_m)
        self._sensory_fanout = _check_positive_int("sensory_fanout", sensory_fanout)
        self._inter_fanout = _check_positive_int("inter_fanout", inter_fanout)
        self._recurrent_command_synapses = _check_positive_int(
            "recurrent_command_synapses", recurrent_command_synapses, 0
        )
        self._motor_fanin = _check_positive_int("motor_fanin", motor_fanin)
        if self._motor_fanin > n_c:
            raise ValueError(f"motor_fanin ({motor_fanin}) exceeds the {n_c} command neurons")
        if self._sensory_fanout > n_i:
            raise ValueError(f"sensory_fanout ({sensory_fanout}) exceeds the {n_i} inter neurons")
        if self._inter_fanout > n_c:
            raise ValueError(f"inter_fanout ({inter_fanout}) exceeds the {n_c} command neurons")
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._motor = list(range(0, n_m))
        self._command = list(range(n_m, n_m + n_c))
        self._inter = list(range(n_m + n_c, n_m + n_c + n_i))
        self._layers = [self._inter, self._command, self._motor]

    def neuron_groups(self) -> dict[str, list[int]]:
        return {
            "motor": list(self._motor),
            "command": list(self._command),
            "inter": list(self._inter),
            "sensory": list(range(self.input_dim or 0)),
        }

    def _connect_layer(self, sources: list[int], targets: list[int], fanout: int, sensory: bool) -> None:
        """Each source gets ``fanout`` random targets; unreached targets get a mean fan-in."""
        add = self.add_sensory_synapse if sensory else self.add_synapse
        unreached = set(targets)
        for src in sources:
            for dest in self._rng.choice(targets, size=fanout, replace=False):
                unreached.discard(int(dest))
                add(src, int(dest), int(self._rng.choice([-1, 1])))
        fanin = int(np.clip(int(len(sources) * fanout / len(targets)), 1, len(sources)))
        for dest in sorted(unreached):
            for src in self._rng.choice(sources, size=fanin, replace=False):
                add(int(src), dest, int(self._rng.choice([-1, 1])))

    def _build_sensory(self) -> None:
        rng = self._rng
        sensory = list(range(self.input_dim))
        self._connect_layer(sensory, self._inter, self._sensory_fanout, sensory=True)
        self._connect_layer(self._inter, self._command, self._inter_fanout, sensory=False)
        for _ in range(self._recurrent_command_synapses):
            src, dest = int(rng.choice(self._command)), int(rng.choice(self._command))
            self.add_synapse(src, dest, int(rng.choice([-1, 1])))
        # command -> motor: each motor neuron draws motor_fanin command sources
        unreached = set(self._command)
        for dest in self._motor:
            for src in rng.choice(self._command, size=self._motor_fanin, replace=False):
                unreached.discard(int(src))
                self.add_synapse(int(src), dest, int(rng.choice([-1, 1])))
        fanout = int(
            np.clip(int(len(self._motor) * self._motor_fanin / len(self._command)), 1, len(self._motor))
        )
        for src in sorted(unreached):
            for dest in rng.choice(self._motor, size=fanout, replace=False):
                self.add_synapse(src, int(dest), int(rng.choice([-1, 1])))


class AutoNCP(NCP):
    """An NCP sized from (units, output_size, sparsity_level) with the ncps AutoNCP rules."""

    def __init__(self, units: int, output_size: int, sparsity_level: float = 0.5, seed: int = 22222) -> None:
        units = _check_positive_int("units", units)
        output_size = _check_positive_int("output_size", output_size)
        if output_size >= units - 2:
            raise ValueError(
                f"AutoNCP output_size must be < units - 2 (got {output_size} outputs for {units} units)"
            )
        if not 0.1 <= sparsity_level <= 1.0:
            raise ValueError(f"AutoNCP sparsity_level must be in [0.1, 1.0], got {sparsity_level}")
        density = 1.0 - sparsity_level
        inter_and_command = units - output_size
        command = max(int(0.4 * inter_and_command), 1)
        inter = inter_and_command - command
        self._output_size = output_size
        self._sparsity_level = float(sparsity_level)
        super().__init__(
            inter,
            command,
            output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )


def wiring_from_config(config: dict[str, Any]) -> Wiring:
    """Rebuild a wiring saved with :meth:`Wiring.get_config` (exact matrices and groups)."""
    if config.get("input_dim") is None or config.get("sensory_adjacency_matrix") is None:
        raise ValueError("only built wirings (known input width) can be restored from a config")
    return Wiring.from_matrices(
        np.array(config["adjacency_matrix"]),
        np.array(config["sensory_adjacency_matrix"]),
        int(config["output_dim"]),
        layers=config.get("layers"),
        groups=config.get("groups"),
    )


def resolve_wiring(units_or_wiring: int | Wiring, input_size: int | None = None) -> Wiring:
    """An int means FullyConnected(units); a wiring is used as given. Builds it for ``input_size``."""
    if isinstance(units_or_wiring, Wiring):
        wiring = units_or_wiring
    elif isinstance(units_or_wiring, (int, np.integer)) and not isinstance(units_or_wiring, bool):
        wiring = FullyConnected(_check_positive_int("units", units_or_wiring))
    else:
        raise ValueError(f"units must be a positive int or a Wiring, got {units_or_wiring!r}")
    if input_size is not None:
        wiring.build(input_size)
    if not wiring.is_built():
        raise ValueError("unknown input width: pass in_features/input_size or call wiring.build(n)")
    return wiring
