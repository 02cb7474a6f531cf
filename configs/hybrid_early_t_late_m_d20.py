# The seed's hybrid at depth 20: 12 Transformer layers, then 8 Mamba layers.
# 487M parameters with a 65536-token vocabulary.

depth = 20
block_pattern = ["T"] * 12 + ["M"] * 8

mamba_d_state = 16
mamba_d_conv = 4
mamba_expand = 2
mamba_use_mlp = False

max_seq_len = 2048
device_batch_size = 32
total_batch_size = 524288
target_param_data_ratio = 20

embedding_lr = 0.2
unembedding_lr = 0.004
matrix_lr = 0.02
weight_decay = 0.0
grad_clip = 1.0
