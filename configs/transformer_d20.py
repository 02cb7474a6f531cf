# The seed's baseline: nanochat's pure Transformer at depth 20.
# 561M parameters with a 65536-token vocabulary (C = 1280, 10 heads).
# A GPU-sized run; on a CPU use it to check configs load, not to train.

depth = 20
block_pattern = None  # None: every layer is a Transformer block, as before the hybrid fork

max_seq_len = 2048
device_batch_size = 32
total_batch_size = 524288
target_param_data_ratio = 20

embedding_lr = 0.2
unembedding_lr = 0.004
matrix_lr = 0.02
weight_decay = 0.0
grad_clip = 1.0
