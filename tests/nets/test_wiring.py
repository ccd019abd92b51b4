"""Wirings: same matrices as ncps for the same seed, valid structure, clear errors."""

import numpy as np
import pytest
from ncps import wirings as ncps_wirings

from liquid_control.nets.wiring import (
    NCP,
    AutoNCP,
    FullyConnected,
    RandomSparse,
    Wiring,
    resolve_wiring,
    wiring_from_config,
)

PAIRS = [
    (lambda: ncps_wirings.AutoNCP(20, 3), lambda: AutoNCP(20, 3)),
    (lambda: ncps_wirings.AutoNCP(64, 4, seed=5), lambda: AutoNCP(64, 4, seed=5)),
    (lambda: ncps_wirings.AutoNCP(16, 2, sparsity_level=0.8), lambda: AutoNCP(16, 2, sparsity_level=0.8)),
    (lambda: ncps_wirings.NCP(6, 5, 2, 3, 2, 4, 2), lambda: NCP(6, 5, 2, 3, 2, 4, 2)),
    (lambda: ncps_wirings.FullyConnected(7, 2), lambda: FullyConnected(7, 2)),
    (
        lambda: ncps_wirings.FullyConnected(5, self_connections=False),
        lambda: FullyConnected(5, self_connections=False),
    ),
]


@pytest.mark.parametrize("pair", PAIRS)
def test_same_matrices_as_ncps(pair):
    theirs, ours = pair[0](), pair[1]()
    theirs.build(11)
    ours.build(11)
    np.testing.assert_array_equal(ours.adjacency_matrix, theirs.adjacency_matrix)
    np.testing.assert_array_equal(ours.sensory_adjacency_matrix, theirs.sensory_adjacency_matrix)
    assert ours.output_dim == theirs.output_dim and ours.units == theirs.units
    assert ours.num_layers == theirs.num_layers
    for layer in range(ours.num_layers):
        assert ours.get_neurons_of_layer(layer) == list(theirs.get_neurons_of_layer(layer))


def test_autoncp_group_sizes_follow_the_rules():
    w = AutoNCP(64, 4, sparsity_level=0.5)
    w.build(32)
    groups = w.neuron_groups()
    command = max(int(0.4 * 60), 1)
    assert (
        len(groups["motor"]) == 4
        and len(groups["command"]) == command
        and len(groups["inter"]) == 60 - command
    )
    assert len(groups["sensory"]) == 32
    assert sorted(groups["motor"] + groups["command"] + groups["inter"]) == list(range(64))
    adj, sens = w.adjacency_matrix, w.sensory_adjacency_matrix
    # layered: sensory -> inter only, motor neurons project nowhere, inter never receives from neurons
    assert not sens[:, groups["motor"] + groups["command"]].any()
    assert not adj[groups["motor"], :].any()
    assert not adj[:, groups["inter"]].any()
    assert set(np.unique(adj)) <= {-1, 0, 1}
    assert w.synapse_count == int(np.abs(adj).sum()) < 64 * 64
    assert all(w.get_type_of_neuron(i) == "motor" for i in groups["motor"])


def test_random_sparse_density():
    w = RandomSparse(20, 3, sparsity_level=0.75, seed=3)
    w.build(10)
    assert w.synapse_count == round(400 * 0.25)
    assert w.sensory_synapse_count == round(200 * 0.25)


def test_config_round_trip():
    w = AutoNCP(12, 2)
    w.build(5)
    back = wiring_from_config(w.get_config())
    np.testing.assert_array_equal(back.adjacency_matrix, w.adjacency_matrix)
    np.testing.assert_array_equal(back.sensory_adjacency_matrix, w.sensory_adjacency_matrix)
    assert back.neuron_groups() == w.neuron_groups()
    assert back.num_layers == 3


def test_int_stands_for_fully_connected():
    w = resolve_wiring(6, 3)
    assert isinstance(w, FullyConnected) and w.units == 6 and w.input_dim == 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: AutoNCP(10, 8),  # output_size >= units - 2
        lambda: AutoNCP(10, 0),
        lambda: AutoNCP(-5, 2),
        lambda: AutoNCP(10, 2, sparsity_level=0.05),
        lambda: FullyConnected(-3),
        lambda: FullyConnected(0),
        lambda: NCP(4, 3, 2, 5, 2, 2, 2),  # sensory fanout > inter
        lambda: RandomSparse(5, sparsity_level=1.0),
        lambda: resolve_wiring(-4, 3),
        lambda: resolve_wiring("ten", 3),
    ],
)
def test_bad_arguments_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_rebuild_with_other_width_is_an_error():
    w = Wiring(4)
    w.build(3)
    w.build(3)
    with pytest.raises(ValueError, match="built for 3"):
        w.build(5)
