"""Training losses shared by the recipes (one module per family; import what you need)."""
