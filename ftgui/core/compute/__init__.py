"""Where work runs: the device (CPU, CUDA, MPS) and the processes of a torchrun job."""
