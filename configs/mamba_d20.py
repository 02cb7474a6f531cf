# The seed's pure Mamba model at depth 20: every layer a Mamba-1 mixer, no MLP.
# 375M parameters with a 65536-token vocabulary (Di = 2560, N = 16). The seed's comment
# said 561M, which is the Transformer d20's count.

depth = 20
block_pattern = ["M"] * 20

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
