# The main job's model: a 4-layer hybrid (the seed's early-T / late-M shape) trained on
# tinyshakespeare with a 4096-token tokenizer (scripts/demo.sh makes the data).
# 4.5 M parameters, 2.3e7 training FLOPs per token. On this machine kind (AMD EPYC,
# 2 cores) the 200 steps of 4096 tokens (≈ 3 epochs) take a few minutes, and val bpb
# falls from about 3.45 (fresh) to about 2.1 (scripts/demo.sh prints both).

depth = 4
block_pattern = ["T", "T", "M", "M"]

max_seq_len = 256
device_batch_size = 8
total_batch_size = 4096
num_iterations = 200

embedding_lr = 0.2
unembedding_lr = 0.004
matrix_lr = 0.02
mamba_lr = 0.004
weight_decay = 0.0
grad_clip = 1.0

eval_every = 50
eval_tokens = 32768
sample_every = 100
save_every = 100

data_dir = "data/shakespeare"
output_dir = "runs/shakespeare_d4"
seed = 42
