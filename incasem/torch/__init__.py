"""PyTorch parts of incasem: the segmentation network and its training loss.

Kept apart from the data pipeline so that planning code (block sizes, configs) can import the
torch-free shape arithmetic in :mod:`incasem.torch.models.shapes` without pulling in torch.
"""
