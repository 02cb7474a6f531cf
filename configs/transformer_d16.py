# Laptop-sized: depth 16, block_pattern None (None: all Transformer).
# 218.1 M parameters with an 8192-token tokenizer. Its speed on your machine: `bench model --patterns all-T --depths 16 --seqs 512 --batch 4`
# (docs/benchmarks.md has measured figures). Muon's Newton-Schulz costs about one
# forward+backward of 2048 tokens a step, so a larger total_batch_size (here 4 micro-batches)
# spreads it over more tokens.

depth = 16
block_pattern = None

mamba_d_state = 16
mamba_d_conv = 4
mamba_expand = 2
mamba_use_mlp = False

max_seq_len = 512
device_batch_size = 4
total_batch_size = 16384
num_iterations = 2000

embedding_lr = 0.2
unembedding_lr = 0.004
matrix_lr = 0.02
weight_decay = 0.0
grad_clip = 1.0
