# The seed's config for small machines (it was rtx3070_d16.py, sized for a 12 GB GPU):
# depth 16, 10 Transformer layers then 6 Mamba layers, shorter sequences, small batches.
# 300M parameters with a 65536-token vocabulary (the seed's comment said 390M).

depth = 16
block_pattern = ["T"] * 10 + ["M"] * 6

mamba_d_state = 16
mamba_d_conv = 4
mamba_expand = 2
mamba_use_mlp = False

max_seq_len = 1024
device_batch_size = 4
total_batch_size = 524288
target_param_data_ratio = 20

embedding_lr = 0.2
unembedding_lr = 0.004
matrix_lr = 0.02
weight_decay = 0.0
grad_clip = 1.0
