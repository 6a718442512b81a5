"""spikemod.hardware: trained spiking modular networks on Lava (Loihi 2 arithmetic).

Modules, in the order data flows through them:

- :mod:`.export`: validate a trained model and describe it as plain arrays in HDF5;
- :mod:`.mapping`: the snnTorch -> Lava LIF parameter mapping, floating and fixed point;
- :mod:`.host`: what the host computes (input current, readout) and the snnTorch reference;
- :mod:`.reference`: numpy references of Lava's LIF arithmetic, bit for bit;
- :mod:`.simulator`: batched runs in Lava's CPU simulator (needs lava-nc);
- :mod:`.fidelity`: torch vs Lava float vs Lava fixed point on task data (needs lava-nc);
- :mod:`.commands`: the functions behind ``spikemod export``, ``simulate`` and ``fidelity``.

Importing this package does not import Lava; only :mod:`.simulator` and :mod:`.fidelity` do.
"""

from .export import DescriptionError, ExportError, NetworkDescription, describe, load_description, save_description
from .host import input_current, lava_network, read_out, torch_run
from .mapping import LavaNetwork, MappingError, fixed_point_network, float_network
from .reference import reference_run

__all__ = [
    "DescriptionError",
    "ExportError",
    "NetworkDescription",
    "describe",
    "load_description",
    "save_description",
    "input_current",
    "lava_network",
    "read_out",
    "torch_run",
    "LavaNetwork",
    "MappingError",
    "fixed_point_network",
    "float_network",
    "reference_run",
]
