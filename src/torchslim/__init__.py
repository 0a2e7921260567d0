"""torchslim: make trained PyTorch models smaller and faster, and measure it."""
