"""`jtransfer.data.batches` under the name the job modules import (the batch order belongs to
data, which never imports train)."""

from jtransfer.data.batches import batch_indices, epoch_permutation, index_stream, steps_per_epoch

__all__ = ["batch_indices", "epoch_permutation", "index_stream", "steps_per_epoch"]
