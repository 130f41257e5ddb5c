"""The software-defined assets, one module per part of the night."""
