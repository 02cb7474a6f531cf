# Base config of `nanochat sweep` (docs/sweep): tinyshakespeare with the demo's 4096-token
# tokenizer (scripts/demo.sh makes data/shakespeare). The sweep sets depth, block_pattern,
# seed and target_flops for each run; everything else comes from here. On its own (nanochat
# train) it is a d4 all-T model trained to 20 tokens per parameter.

depth = 4

max_seq_len = 512
device_batch_size = 4
total_batch_size = 2048

embedding_lr = 0.2
unembedding_lr = 0.004
matrix_lr = 0.02
mamba_lr = 0.004
weight_decay = 0.0
grad_clip = 1.0

eval_tokens = 8192

data_dir = "data/shakespeare"
