"""Pure numpy/OpenCV forensic operations: arrays in, arrays out."""
