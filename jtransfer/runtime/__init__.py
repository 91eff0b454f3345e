"""Where computation runs: devices, processes, shardings, how stacked models share a
device, batched feature extraction and console progress."""
