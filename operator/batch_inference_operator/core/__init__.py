"""The pure core: values in, values out. No I/O, no clock, no environment (an import contract keeps it so)."""
