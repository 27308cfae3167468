"""Hardware targets as package data: one cited TOML file per chip (see README.md here), read by
``spiking_maelstrom.export.targets``."""
