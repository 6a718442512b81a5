"""spikemod: functional specialization in sparse modular rate-based and spiking networks."""

__version__ = "0.1.0"
