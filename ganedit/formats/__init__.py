"""Checkpoint formats: the native format (config.json + safetensors, `native`), safe reading of foreign
`.pt/.pth` files (`foreign`), and one `convert_<family>.py` module per official format that detects and
converts it (found by name, see `foreign.convert_foreign`)."""
